"""Stable-Baselines3 (and sb3-contrib) algorithms on LLMMemory-v0, behind the same interface as
REINFORCE: ``learn``, ``predict``, ``save``, ``load``.

* :class:`MemoryFeaturesExtractor` embeds the token ids (never feeding raw ids as numbers to an
  MLP) with the REINFORCE writer's :class:`~agents.networks.ObservationEncoder`, and reads the memory;
* our natively batched VectorEnv reaches SB3 through :class:`~ltm_gym.envs.sb3_vec.SB3VecEnv`;
* off-policy algorithms get an explicit replay-buffer size (the default 1M transitions of 640-dim
  actions and token observations would not fit a laptop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from ltm_gym.envs.sb3_vec import SB3VecEnv

from .base import Callback, EpisodeTracker, RunLogger, load_reader, save_reader
from .networks import ObservationEncoder, WriterConfig

SB3_NAMES = ("ppo", "a2c", "sac", "td3", "ddpg", "tqc")


def algorithms() -> dict[str, type]:
    from sb3_contrib import TQC
    from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3

    return {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3, "ddpg": DDPG, "tqc": TQC}


OFF_POLICY = ("sac", "td3", "ddpg", "tqc")


class MemoryFeaturesExtractor(BaseFeaturesExtractor):
    """Segment encoder + memory reader -> per-candidate features, concatenated in the action's
    order (every segment position, then every previous slot), ``per_position`` numbers each.

    Never mean-pooled: a policy must be able to tell WHICH position holds a fact (the selection
    action scores positions; a writer copies from them). With ``obs_mode="hidden"`` the segment
    is one pooled vector and the candidates are it and the slots."""

    def __init__(self, observation_space: spaces.Dict, d_model: int = 64, n_head: int = 4, n_layers: int = 1,
                 per_position: int = 8) -> None:
        encoder = ObservationEncoder(observation_space, WriterConfig(d_model, n_head, n_layers))
        n_seg = observation_space["tokens"].shape[0] if encoder.tokens else 1
        super().__init__(observation_space, features_dim=(n_seg + encoder.n_slots) * per_position)
        self.encoder = encoder
        self.squeeze = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, per_position))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        context, _ = self.encoder(obs)                                            # (B, L + m, d)
        return self.squeeze(context).flatten(1)


class LossWriter(KVWriter):
    """SB3's own training scalars (``train/policy_gradient_loss``, ...) into the shared
    :class:`~agents.base.RunLogger` as ``losses/...``."""

    def __init__(self, logger: RunLogger) -> None:
        self.logger = logger

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        values = {f"losses/{k.split('/', 1)[1]}": v for k, v in key_values.items()
                  if k.startswith("train/") and isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)}
        self.logger.scalars(values, step)

    def close(self) -> None:
        self.logger.flush()


class ChartsCallback(BaseCallback):
    """The algorithm-independent scalars under the names REINFORCE uses (``charts/...``)."""

    def __init__(self, logger: RunLogger, episodes: EpisodeTracker, agent: "SB3Agent", user: Callback | None = None) -> None:
        super().__init__()
        self.run_logger, self.episodes, self.agent, self.user = logger, episodes, agent, user
        self._rewards: list[float] = []
        self._stop = False

    def _on_step(self) -> bool:
        rewards = self.locals["rewards"]
        self.episodes.add(rewards, self.locals["dones"])
        self._rewards.extend(rewards.tolist())
        return not self._stop

    def _on_rollout_end(self) -> None:
        stats = {"reward_mean": float(np.mean(self._rewards))} if self._rewards else {}
        if self.episodes.recent() is not None:
            stats["episodic_return"] = self.episodes.recent()
        self.run_logger.scalars({f"charts/{k}": v for k, v in stats.items()}, self.num_timesteps)
        self._rewards = []
        if self.user is not None and self.user(self.agent, stats) is False:
            self._stop = True

    def _on_training_end(self) -> None:
        self.run_logger.flush()


class SB3Agent:
    """An SB3 algorithm on our VectorEnv as an :class:`agents.base.Agent`; ``config`` is the
    algorithm's keyword arguments plus ``features`` (the extractor's d_model/n_head/n_layers/
    per_position), ``net_arch``, ``log_std_init`` (PPO/A2C/SAC/TQC: the Gaussian's initial log std;
    SB3's default 0 is std 1, saturated noise on a memory the reader knows near 0) and
    ``action_noise_std`` (TD3/DDPG: Gaussian exploration noise; SB3 adds none by default)."""

    file_name = "agent.zip"

    def __init__(self, name: str, env: Any, config: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None, seed: int = 0, device: str = "auto") -> None:
        algos = algorithms()
        if name not in algos:
            raise ValueError(f"unknown SB3 algorithm {name!r}; known: {sorted(algos)}")
        self.name, self.cls = name, algos[name]
        self.venv = SB3VecEnv(env)
        self.logger = RunLogger(run_dir)
        self.episodes = EpisodeTracker(env.num_envs)
        config = dict(config or {})
        features = config.pop("features", {})
        policy_kwargs = {"features_extractor_class": MemoryFeaturesExtractor, "features_extractor_kwargs": features,
                         **config.pop("policy_kwargs", {})}
        if "net_arch" in config:
            policy_kwargs["net_arch"] = config.pop("net_arch")
        if "log_std_init" in config:
            policy_kwargs["log_std_init"] = float(config.pop("log_std_init"))
        noise = config.pop("action_noise_std", None)
        if noise:
            from stable_baselines3.common.noise import NormalActionNoise

            shape = env.single_action_space.shape
            config["action_noise"] = NormalActionNoise(np.zeros(shape), float(noise) * np.ones(shape))
        if name in OFF_POLICY:
            config.setdefault("buffer_size", 10_000)
            config.setdefault("learning_starts", 100)
            policy_kwargs.setdefault("share_features_extractor", False)
        self.model = self.cls("MultiInputPolicy", self.venv, seed=seed, device=device, policy_kwargs=policy_kwargs,
                              verbose=0, **config)
        self.model.set_logger(Logger(None, [LossWriter(self.logger)]))

    @property
    def episode_returns(self) -> list[float]:
        return self.episodes.returns

    @property
    def env(self) -> Any:
        return self.venv.venv

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def learn(self, total_steps: int, callback: Callback | None = None, progress: bool = False) -> "SB3Agent":
        """Train until ``total_steps`` env steps in all (continuing a loaded model's count)."""
        remaining = total_steps - self.num_timesteps
        if remaining > 0:
            self.model.learn(remaining, callback=ChartsCallback(self.logger, self.episodes, self, callback),
                             reset_num_timesteps=False, progress_bar=progress, log_interval=1)
        return self

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, None]:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return action.astype(np.float32), None

    def save(self, path: str | Path) -> Path:
        from ltm_gym.core import atomic_write

        path = Path(path)
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: SB3 would otherwise append ".zip"
                self.model.save(fh)

        atomic_write(path, write)
        save_reader(self.venv.venv, path)
        return path

    def load(self, path: str | Path) -> "SB3Agent":
        with open(path, "rb") as fh:
            self.model = self.cls.load(fh, env=self.venv, device=self.model.device)
        self.model.set_logger(Logger(None, [LossWriter(self.logger)]))
        load_reader(self.venv.venv, Path(path))
        return self

    def init_from(self, path: str | Path) -> None:
        """The weights of another run of the same algorithm (``agent.zip``)."""
        self.model.set_parameters(str(path), exact_match=True)
