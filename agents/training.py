"""Train one agent run: build the env and agent from a run config, resume, checkpoint, save.

A run config is a plain dict (written to RUN_DIR/config.yaml): ``algo``, ``env_id``,
``env_kwargs``, ``num_envs``, ``steps``, ``seed``, ``device``, ``hyperparams``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import ltm_gym  # noqa: F401  (registers the env ids)

from .registry import make


def agent_file(run_dir: Path, algo: str) -> Path:
    return Path(run_dir) / ("agent.pt" if algo == "reinforce" else "agent.zip")


def build(cfg: dict[str, Any], run_dir: Path | None, num_envs: int | None = None):
    """The vector env and the agent of a run config."""
    env = gym.make_vec(cfg["env_id"], num_envs=num_envs or cfg["num_envs"], vectorization_mode="vector_entry_point",
                       **cfg["env_kwargs"])
    agent = make(cfg["algo"], env, run_dir=run_dir, seed=cfg["seed"], device=cfg["device"], **cfg["hyperparams"])
    return env, agent


def init_from(agent: Any, path: Path, algo: str) -> None:
    """Start from another run's weights (e.g. pre-trained on EmbeddingMimic-v0, hypothesis 1)."""
    if algo == "reinforce":
        import torch

        agent.policy.load_state_dict(torch.load(path, weights_only=False)["policy"])
    else:
        agent.model.set_parameters(str(path), exact_match=True)


def train_run(cfg: dict[str, Any], run_dir: Path, init: Path | None = None, save_every: int = 5000,
              progress: bool = True) -> Any:
    """Train (or resume) the run in ``run_dir`` up to ``cfg["steps"]`` env steps; returns the agent."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env, agent = build(cfg, run_dir)
    ckpt = agent_file(run_dir, cfg["algo"])
    if ckpt.is_file():
        agent.load(ckpt)
        print(f"resumed at {agent.num_timesteps} env steps")
    elif init is not None:
        init_from(agent, Path(init), cfg["algo"])
    next_save = [agent.num_timesteps + save_every]

    def checkpoint(a: Any, stats: dict) -> None:
        if a.num_timesteps >= next_save[0]:
            agent.save(ckpt)
            next_save[0] = a.num_timesteps + save_every

    try:
        agent.learn(cfg["steps"], callback=checkpoint, progress=progress)
    except KeyboardInterrupt:
        agent.save(ckpt)
        print(f"interrupted: saved {ckpt}; continue with --run-dir {run_dir} --resume")
        raise
    agent.save(ckpt)
    env.close()
    return agent
