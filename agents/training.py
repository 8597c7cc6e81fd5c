"""Train one agent run: build the env and agent from a run config, resume, checkpoint, save.

A run config (``RUN_DIR/config.yaml``) is :class:`RunConfig`: ``algo``, ``env_id``,
``env_kwargs``, ``num_envs``, ``steps``, ``seed``, ``device``, ``hyperparams``, ``init_from``.
It is written once the env and the agent are built (so a config the agent refuses leaves no run
behind), and a run resumed before its first checkpoint still starts from ``init_from``.

Under torchrun (``WORLD_SIZE`` > 1) the ranks join one process group; each builds an env of
``num_envs / R`` documents (``num_envs`` is the total) and REINFORCE trains data-parallel
(:mod:`ltm_gym.agents.reinforce`); rank 0 alone writes the run directory, logs and checkpoints. The SB3
algorithms step one process's env and are refused there.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import ltm_gym  # noqa: F401  (registers the env ids)
from ltm_gym.core import (ArtifactError, ConfigError, UserError, announce, atomic_write, choose_device, config_changes,
                          from_dict, load_config, lock_run_dir, unlock_run_dir)
from ltm_gym.core.distributed import DistInfo, agree_max, broadcast_object, current, from_environment, init_distributed
from ltm_gym.core.interrupt import Interrupted, stop_requested, stop_signals

from .base import Agent
from .registry import hyperparams, make  # noqa: F401  (hyperparams: the CLI's import)


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
    """Agent file the run starts from (another run's agent, or a differentiable writer's writer.pt),
    or another run's directory (its agent file: a curriculum continues a run of an easier level)."""
    study: dict[str, str] | None = None
    """The study the run trained on (its absolute path and fingerprint), recorded when it starts:
    resuming or evaluating the run on another study is refused."""

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunConfig":
        """The config a run wrote; an empty file (a run killed while writing it, or truncated
        since) is an error naming it, not a run of the defaults."""
        path = Path(run_dir) / "config.yaml"
        if path.is_file() and not path.read_text().strip():
            raise ArtifactError(path, "run config", ValueError("the file is empty"),
                                "delete the run directory and start the run again")
        return load_config(cls, path)

    def save(self, run_dir: str | Path) -> None:
        text = yaml.safe_dump(asdict(self), sort_keys=False)
        atomic_write(Path(run_dir) / "config.yaml", lambda tmp: tmp.write_text(text))


def stored_changes(cfg: RunConfig, run_dir: Path) -> list[str]:
    """How ``cfg`` differs from the run config stored in ``run_dir`` (``steps`` may grow)."""
    if not (Path(run_dir) / "config.yaml").is_file():
        return []
    stored = asdict(RunConfig.load(run_dir))
    stored["steps"] = cfg.steps
    stored["study"] = cfg.study      # checked against the env's own study (check_study)
    return config_changes(stored, asdict(cfg))


def check_study(cfg: RunConfig, env: Any, run_dir: Path) -> None:
    """Refuse an env whose study is not the one the run recorded (``cfg.study``); a run that
    recorded none (started before runs recorded their study, or on an env without one) passes."""
    used = getattr(getattr(env, "backend", None), "study", None)
    if cfg.study is None or used is None or used["fingerprint"] == cfg.study["fingerprint"]:
        return
    raise ConfigError(f"{run_dir} was trained on the study at {cfg.study['path']} (fingerprint "
                      f"{cfg.study['fingerprint']}); its env now loads {used['path']} (fingerprint "
                      f"{used['fingerprint']}), another study or a rebuilt one: use the run's own study "
                      f"(--env-kwargs study_dir=... or LTM_GYM_STUDY_DIR)")


DATA_PARALLEL = ("reinforce",)
"""The algorithms that train under torchrun."""


def join(cfg: RunConfig) -> DistInfo:
    """The process group of a torchrun launch (a single process otherwise), after checking that
    the run can be split: a data-parallel algorithm, and ``num_envs`` a multiple of the ranks."""
    world = from_environment().world_size
    if world > 1 and cfg.algo not in DATA_PARALLEL:
        raise ConfigError(f"--algo {cfg.algo} under torchrun ({world} processes): the Stable-Baselines3 algorithms "
                          f"step one process's env; launch it without torchrun ({', '.join(DATA_PARALLEL)} trains "
                          "data-parallel)")
    if cfg.num_envs % world:
        raise ConfigError(f"--num-envs {cfg.num_envs} under torchrun ({world} processes): the total number of envs "
                          f"must be a multiple of the processes")
    return init_distributed(choose_device(cfg.device))


def build(cfg: RunConfig, run_dir: Path | None, num_envs: int | None = None) -> tuple[Any, Agent]:
    """The vector env and the agent of a run config (this rank's share of the envs under torchrun)."""
    info = join(cfg) if num_envs is None else DistInfo()
    env = gym.make_vec(cfg.env_id, num_envs=num_envs or cfg.num_envs // info.world_size,
                       vectorization_mode="vector_entry_point", **cfg.env_kwargs)
    agent = make(cfg.algo, env, run_dir=run_dir, seed=cfg.seed, device=cfg.device, preset=False, **cfg.hyperparams)
    return env, agent


def train_run(cfg: RunConfig | dict, run_dir: Path, save_every: int = 5000, progress: bool = True) -> Agent:
    """Train (or resume) the run in ``run_dir`` up to ``cfg.steps`` env steps; returns the agent.
    The directory is locked meanwhile (another run into it is refused); SIGINT/SIGTERM end the run
    at the next update with a checkpoint (:class:`ltm_gym.core.interrupt.Interrupted`)."""
    if isinstance(cfg, dict):
        cfg = from_dict(RunConfig, cfg)
    run_dir = Path(run_dir)
    took = lock_run_dir(run_dir) if from_environment().is_main else False   # under torchrun rank 0 holds it
    try:
        changes = stored_changes(cfg, run_dir)
        if changes:
            raise ConfigError(f"{run_dir} holds a run of another config ({', '.join(changes[:4])}); resume it "
                              "with its own config, or start this one in a new run directory")
        return _train_locked(cfg, run_dir, save_every, progress)
    finally:
        if took:
            unlock_run_dir(run_dir)


def start_file(init_from: str | Path, agent: Agent) -> Path:
    """The file ``init_from`` names: itself, or in a run directory the agent's own file."""
    path = Path(init_from)
    if not path.is_dir():
        return path
    if not (path / agent.file_name).is_file():
        found = [name for name in ("agent.pt", "agent.zip") if (path / name).is_file()] or ["no agent file"]
        raise UserError(f"init_from {path}: a {type(agent).__name__} starts from a run directory with "
                        f"{agent.file_name}, a run of the same algorithm (this one has {found[0]})")
    return path / agent.file_name


def _train_locked(cfg: RunConfig, run_dir: Path, save_every: int, progress: bool) -> Agent:
    if cfg.study is None and (run_dir / "config.yaml").is_file():
        cfg.study = RunConfig.load(run_dir).study          # resuming: the study the run recorded
    env, agent = build(cfg, run_dir)
    check_study(cfg, env, run_dir)
    if cfg.study is None:
        cfg.study = getattr(getattr(env, "backend", None), "study", None)
    ckpt = run_dir / agent.file_name
    info = from_environment()
    if broadcast_object(ckpt.is_file(), current()):     # rank 0 decides for all
        agent.load(ckpt, restore_env=True)
        if info.is_main:
            print(f"resumed at {agent.num_timesteps} env steps")
    elif cfg.init_from is not None:
        agent.init_from(start_file(cfg.init_from, agent))
    if info.is_main:
        cfg.save(run_dir)
        announce(run_dir)
    next_save = [agent.num_timesteps + save_every]
    stopped: list[tuple[int, int]] = []   # (signal, env steps of the checkpoint written for it)

    def checkpoint(a: Agent, stats: dict) -> bool:
        """After every update (REINFORCE) or rollout (SB3): a point the run resumes from exactly.
        Under torchrun every rank stops at the same update when any of them received a signal."""
        signum = agree_max(stop_requested() or 0, current()) or None
        if a.num_timesteps >= next_save[0] or signum is not None:
            a.save(ckpt)
            if info.is_main:
                print(f"checkpoint: {ckpt} ({a.num_timesteps} env steps)", flush=True)
            next_save[0] = a.num_timesteps + save_every
        if signum is not None:
            stopped.append((signum, a.num_timesteps))
            return False
        return True

    rollout = agent.rollout_steps()
    if rollout is not None and agent.num_timesteps < cfg.steps and info.is_main:
        per, why = rollout
        end = agent.num_timesteps + -(-(cfg.steps - agent.num_timesteps) // per) * per
        if end != cfg.steps:
            print(f"{cfg.algo}: {per} env steps an update ({why}): this run ends at {end} env steps, "
                  f"the first update boundary at or past {cfg.steps}", flush=True)
    if agent.num_timesteps < cfg.steps:                 # a finished run, resumed, has nothing to learn
        with stop_signals():
            agent.learn(cfg.steps - agent.num_timesteps, callback=checkpoint, progress=progress)
    if stopped:
        env.close()
        raise Interrupted(stopped[0][0], ckpt, f"{stopped[0][1]} env steps",
                          f"continue with --run-dir {shlex.quote(str(run_dir))} --resume")
    agent.save(ckpt)
    env.close()
    return agent
