"""Train one agent run: build the env and agent from a run config, resume, checkpoint, save.

A run config (``RUN_DIR/config.yaml``) is :class:`RunConfig`: ``algo``, ``env_id``,
``env_kwargs``, ``num_envs``, ``steps``, ``seed``, ``device``, ``hyperparams``, ``init_from``.
It is written once the env and the agent are built (so a config the agent refuses leaves no run
behind), and a run resumed before its first checkpoint still starts from ``init_from``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import ltm_gym  # noqa: F401  (registers the env ids)
from ltm_gym.core import ConfigError, atomic_write, config_changes, from_dict, load_config

from .base import Agent
from .registry import make


@dataclass
class RunConfig:
    algo: str = "reinforce"
    env_id: str = "ltm_gym/LLMMemory-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 8
    steps: int = 20_000
    seed: int = 0
    device: str = "auto"
    hyperparams: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    """Agent file the run starts from (another run's agent, or a differentiable writer's writer.pt)."""

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunConfig":
        return load_config(cls, Path(run_dir) / "config.yaml")

    def save(self, run_dir: str | Path) -> None:
        text = yaml.safe_dump(asdict(self), sort_keys=False)
        atomic_write(Path(run_dir) / "config.yaml", lambda tmp: tmp.write_text(text))


def stored_changes(cfg: RunConfig, run_dir: Path) -> list[str]:
    """How ``cfg`` differs from the run config stored in ``run_dir`` (``steps`` may grow)."""
    if not (Path(run_dir) / "config.yaml").is_file():
        return []
    stored = asdict(RunConfig.load(run_dir))
    stored["steps"] = cfg.steps
    return config_changes(stored, asdict(cfg))


def hyperparams(algo: str) -> dict[str, Any]:
    """The shipped hyper-parameter preset of ``algo`` (``agents/<algo>``)."""
    from ltm_gym.core.config import load_preset_dict

    return load_preset_dict(f"agents/{algo}")


def build(cfg: RunConfig, run_dir: Path | None, num_envs: int | None = None) -> tuple[Any, Agent]:
    """The vector env and the agent of a run config."""
    env = gym.make_vec(cfg.env_id, num_envs=num_envs or cfg.num_envs, vectorization_mode="vector_entry_point",
                       **cfg.env_kwargs)
    agent = make(cfg.algo, env, run_dir=run_dir, seed=cfg.seed, device=cfg.device, **cfg.hyperparams)
    return env, agent


def train_run(cfg: RunConfig | dict, run_dir: Path, save_every: int = 5000, progress: bool = True) -> Agent:
    """Train (or resume) the run in ``run_dir`` up to ``cfg.steps`` env steps; returns the agent."""
    if isinstance(cfg, dict):
        cfg = from_dict(RunConfig, cfg)
    run_dir = Path(run_dir)
    changes = stored_changes(cfg, run_dir)
    if changes:
        raise ConfigError(f"{run_dir} holds a run of another config ({', '.join(changes[:4])}); resume it with "
                          "its own config, or start this one in a new run directory")
    env, agent = build(cfg, run_dir)
    ckpt = run_dir / agent.file_name
    if ckpt.is_file():
        agent.load(ckpt, restore_env=True)
        print(f"resumed at {agent.num_timesteps} env steps")
    elif cfg.init_from is not None:
        agent.init_from(cfg.init_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir)
    next_save = [agent.num_timesteps + save_every]

    def checkpoint(a: Agent, stats: dict) -> None:
        if a.num_timesteps >= next_save[0]:
            a.save(ckpt)
            next_save[0] = a.num_timesteps + save_every

    try:
        agent.learn(cfg.steps, callback=checkpoint, progress=progress)
    except KeyboardInterrupt:
        agent.save(ckpt)
        print(f"interrupted: saved {ckpt}; continue with --run-dir {run_dir} --resume")
        raise
    agent.save(ckpt)
    env.close()
    return agent
