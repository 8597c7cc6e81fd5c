"""Stable-Baselines3 (and sb3-contrib) algorithms on LLMMemory-v0, behind the same interface as
REINFORCE: ``learn``, ``predict``, ``save``, ``load``.

* :class:`MemoryFeaturesExtractor` embeds the token ids (never feeding raw ids as numbers to an
  MLP) with the REINFORCE writer's :class:`~agents.networks.ObservationEncoder`, and reads the memory;
* our natively batched VectorEnv reaches SB3 through :class:`~ltm_gym.envs.sb3_vec.SB3VecEnv`;
* off-policy algorithms get an explicit replay-buffer size (the default 1M transitions of 640-dim
  actions and token observations would not fit a laptop).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from ltm_gym.core import ArtifactError, ConfigError, atomic_write, load_checkpoint
from ltm_gym.envs.sb3_vec import SB3VecEnv
from ltm_gym.envs.selection import is_selection

from .base import Callback, EpisodeTracker, RunLogger, check_steps, env_state, load_reader, save_reader
from .networks import ObservationEncoder, WriterConfig, check_window_tokens
from .replay import DictNStepReplayBuffer
from .sb3_selection import SELECTION_POLICIES, CandidateHead
from ltm_gym.core.errors import UserError

SB3_NAMES = ("ppo", "a2c", "sac", "td3", "ddpg", "tqc")


def algorithms() -> dict[str, type]:
    from sb3_contrib import TQC
    from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3

    return {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3, "ddpg": DDPG, "tqc": TQC}


OFF_POLICY = ("sac", "td3", "ddpg", "tqc")
OUR_KEYS = ("features", "net_arch", "log_std_init", "action_noise_std", "policy_kwargs", "keep_prior", "store_prior",
            "binary_select", "candidate_head")
SET_BY_US = ("policy", "env", "seed", "device", "verbose", "_init_setup_model")


def check_config(name: str, cls: type, config: dict[str, Any]) -> None:
    """Each key of an SB3 agent's config is an argument of the algorithm (or one of
    :data:`OUR_KEYS`), and a value whose default is a number is a number of that kind: a typo'd
    key or ``n_steps=abc`` is a ConfigError naming it, not a TypeError deep inside SB3."""
    import inspect

    from ltm_gym.core import check

    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if k not in ("self",) + SET_BY_US}
    defaults |= {"log_std_init": 0.0, "action_noise_std": 0.0, "keep_prior": 0.0, "store_prior": 0.0,
                 "binary_select": False, "candidate_head": False}
    for key, value in config.items():
        check(key in defaults or key in OUR_KEYS, key, value,
              f"a {name.upper()} argument or ours: {', '.join(sorted(set(defaults) | set(OUR_KEYS)))}")
        default, number = defaults.get(key), isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, bool):
            check(isinstance(value, bool), key, value, "true or false")
        elif isinstance(default, int):
            check(number and isinstance(value, int), key, value, "an integer")
        elif isinstance(default, float):
            check(number, key, value, "a number")


def run_state_path(agent_path: Path, step: int) -> Path:
    """What SB3's zip leaves out but an exact resume needs, at env step ``step``."""
    return Path(agent_path).with_name(f"{Path(agent_path).stem}.state-{step}.pt")


def replay_path(agent_path: Path, step: int) -> Path:
    return Path(agent_path).with_name(f"{Path(agent_path).stem}.replay-{step}.npz")


REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay(buffer: Any, path: Path) -> None:
    """An off-policy replay buffer's arrays and position as a plain ``.npz`` (no pickle)."""
    arrays: dict[str, np.ndarray] = {"pos": np.array(buffer.pos), "full": np.array(buffer.full)}
    for name in REPLAY_FIELDS:
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays.update({f"{name}/{k}": v for k, v in value.items()})
        elif value is not None:
            arrays[name] = value

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def load_replay(buffer: Any, path: Path) -> None:
    """Fill ``buffer`` (built by the same algorithm and config) from :func:`save_replay`'s file;
    arrays of another shape or a damaged file are an error naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                name, _, sub = key.partition("/")
                if name in ("pos", "full"):
                    continue
                target = getattr(buffer, name)[sub] if sub else getattr(buffer, name)
                if target.shape != data[key].shape:
                    raise UserError(f"{key} has shape {data[key].shape}, the buffer {target.shape}")
                target[...] = data[key]
            buffer.pos, buffer.full = int(data["pos"]), bool(data["full"])
    except Exception as exc:  # numpy raises many kinds on a damaged or foreign file
        raise ArtifactError(path, "replay buffer of this agent", exc) from exc


def safe_custom_objects(path: Path, model: Any) -> dict[str, Any]:
    """For every entry of an SB3 zip's ``data`` that SB3 would unpickle (spaces, schedules, policy
    classes, buffers of episode infos, ...), the object this agent built from its own config: SB3
    then loads the zip without unpickling anything (its tensors are weights-only loads)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data").decode())
    return {k: getattr(model, k, None) for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v}


class MemoryFeaturesExtractor(BaseFeaturesExtractor):
    """Segment encoder + memory reader -> per-candidate features, concatenated in the action's
    order (every segment position, then every previous slot), ``per_position`` numbers each.

    Never mean-pooled: a policy must be able to tell WHICH position holds a fact (the selection
    action scores positions; a writer copies from them). With ``obs_mode="hidden"`` the segment
    is one pooled vector and the candidates are it and the slots. ``window_tokens``: each candidate
    from the tokens of the window its code spells, kept or new alike (:class:`ObservationEncoder`)."""

    def __init__(self, observation_space: spaces.Dict, d_model: int = 64, n_head: int = 4, n_layers: int = 1,
                 per_position: int = 8, local_window: int = 0, window_tokens: int = 0) -> None:
        cfg = WriterConfig(d_model, n_head, n_layers, local_window=local_window, window_tokens=window_tokens)
        cfg.validate()
        encoder = ObservationEncoder(observation_space, cfg)
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

    def __init__(self, logger: RunLogger, episodes: EpisodeTracker, agent: "SB3Agent", user: Callback | None = None,
                 bar: Any = None) -> None:
        super().__init__()
        self.run_logger, self.episodes, self.agent, self.user, self.bar = logger, episodes, agent, user, bar
        self._rewards: list[float] = []
        self._pending: dict | None = None
        self._stop = False

    def _on_step(self) -> bool:
        rewards = self.locals["rewards"]
        self.episodes.add(rewards, self.locals["dones"])
        self._rewards.extend(rewards.tolist())
        if self.bar is not None:  # SB3 finishes whole rollouts past the total: the bar stops at it
            self.bar.update(min(self.num_timesteps, self.bar.total) - self.bar.n)
        return not self._stop

    def _on_rollout_end(self) -> None:
        stats = {"reward_mean": float(np.mean(self._rewards))} if self._rewards else {}
        if self.episodes.recent() is not None:
            stats["episodic_return"] = self.episodes.recent()
        self.run_logger.scalars({f"charts/{k}": v for k, v in stats.items()}, self.num_timesteps)
        self._rewards = []
        self._pending = stats

    def _on_rollout_start(self) -> None:
        self._call_user()

    def _call_user(self) -> None:
        """The user's callback runs once the rollout's update is done (at the next rollout's start,
        or the end): a checkpoint it writes then holds a whole step of the algorithm."""
        stats, self._pending = self._pending, None
        if stats is not None and self.user is not None and self.user(self.agent, stats) is False:
            self._stop = True

    def _on_training_end(self) -> None:
        self._call_user()
        self.run_logger.flush()


class SB3Agent:
    """An SB3 algorithm on our VectorEnv as an :class:`ltm_gym.agents.base.Agent`; ``config`` is the
    algorithm's keyword arguments plus ``features`` (the extractor's d_model/n_head/n_layers/
    per_position), ``net_arch``, ``log_std_init`` (PPO/A2C/SAC/TQC: the Gaussian's initial log std;
    SB3's default 0 is std 1, saturated noise on a memory the reader knows near 0) and
    ``action_noise_std`` (TD3/DDPG: Gaussian exploration noise; SB3 adds none by default)."""

    file_name = "agent.zip"

    def __init__(self, name: str, env: Any, config: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None, seed: int = 0, device: str = "auto") -> None:
        algos = algorithms()
        if name not in algos:
            raise UserError(f"unknown SB3 algorithm {name!r}; known: {sorted(algos)}")
        self.name, self.cls = name, algos[name]
        config = dict(config or {})
        check_config(name, self.cls, config)
        self.venv = SB3VecEnv(env, binary_select=bool(config.pop("binary_select", False)))
        self.logger = RunLogger(run_dir)
        self.episodes = EpisodeTracker(env.num_envs)
        features = config.pop("features", {})
        check_window_tokens(env, int(features.get("window_tokens", 0)), "features.window_tokens")
        policy_kwargs = {"features_extractor_class": MemoryFeaturesExtractor, "features_extractor_kwargs": features,
                         **config.pop("policy_kwargs", {})}
        candidate_head = bool(config.pop("candidate_head", False))
        if candidate_head and not is_selection(env.single_observation_space, env.single_action_space):
            raise ConfigError(f"candidate_head scores each candidate of a selection (action_mode=select); "
                              f"not an action space of shape {tuple(env.single_action_space.shape)}")
        if "net_arch" in config:
            policy_kwargs["net_arch"] = config.pop("net_arch")
        if candidate_head:          # the actor is the shared head; the net_arch sizes the critic
            critic = list(policy_kwargs.get("net_arch", [64, 64]))
            policy_kwargs["net_arch"] = {"pi": [], "qf" if name in OFF_POLICY else "vf": critic}
        if "log_std_init" in config:
            policy_kwargs["log_std_init"] = float(config.pop("log_std_init"))
        priors = float(config.pop("keep_prior", 0.0)), float(config.pop("store_prior", 0.0))
        noise = config.pop("action_noise_std", None)
        if noise:
            from stable_baselines3.common.noise import NormalActionNoise

            shape = env.single_action_space.shape
            config["action_noise"] = NormalActionNoise(np.zeros(shape), float(noise) * np.ones(shape))
        if name in OFF_POLICY:
            config.setdefault("buffer_size", 10_000)
            config.setdefault("learning_starts", 100)
            policy_kwargs.setdefault("share_features_extractor", False)
            if config.get("n_steps", 1) > 1:        # SB3's own n-step buffer takes no Dict observations
                config["replay_buffer_class"] = DictNStepReplayBuffer
                config["replay_buffer_kwargs"] = {"n_steps": config.pop("n_steps"), "gamma": config.get("gamma", 0.99)}
        policy = SELECTION_POLICIES[name] if candidate_head else "MultiInputPolicy"
        self.model = self.cls(policy, self.venv, seed=seed, device=device, policy_kwargs=policy_kwargs,
                              verbose=0, **config)
        self.model.set_logger(Logger(None, [LossWriter(self.logger)]))
        if any(priors):
            self._add_priors(env, *priors)

    def _add_priors(self, env: Any, keep: float, store: float) -> None:
        """Selection policies: start the output for every previous slot at ``keep`` and for every
        segment position at ``store`` (the Gaussian's mean score, or with ``binary_select`` the
        Bernoulli's logit), as REINFORCE's ``keep_prior``: a stored fact survives some segments
        by chance, so a late answer can reward storing and keeping it. With ``binary_select``,
        ``store: -2.5`` starts by choosing about 5 of 64 positions."""
        obs_space, act_shape = env.single_observation_space, tuple(env.single_action_space.shape)
        policy = self.model.policy
        net = getattr(policy, "action_head", None) or getattr(policy, "action_net", None)
        if not is_selection(obs_space, env.single_action_space) or not isinstance(net, (nn.Linear, CandidateHead)):
            raise ConfigError(f"keep_prior={keep}, store_prior={store} bias a selection policy's outputs: they "
                              f"need action_mode=select and PPO or A2C, or candidate_head; not {self.name} "
                              f"on an action space of shape {act_shape}")
        n_slots = obs_space["memory"].shape[0]
        with torch.no_grad():
            net.bias[-n_slots:] += keep
            net.bias[:-n_slots] += store

    @property
    def episode_returns(self) -> list[float]:
        return self.episodes.returns

    @property
    def env(self) -> Any:
        return self.venv.venv

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def learn(self, steps: int, callback: Callback | None = None, progress: bool = False) -> "SB3Agent":
        """Train ``steps`` more env steps (continuing a loaded model's count), as SB3's ``learn``
        with ``reset_num_timesteps=False``."""
        from ltm_gym.core.progress import progress_bar

        remaining = check_steps(steps)
        total_steps = self.num_timesteps + remaining
        if remaining > 0:
            with progress_bar(total=total_steps, initial=self.num_timesteps, disable=not progress, desc=self.name,
                      dynamic_ncols=True) as bar:
                try:
                    self.model.learn(remaining, callback=ChartsCallback(self.logger, self.episodes, self, callback, bar),
                                     reset_num_timesteps=False, progress_bar=False, log_interval=1)
                except ValueError as exc:
                    if "invalid values" not in str(exc):
                        raise
                    raise FloatingPointError(          # a bug of the training, not the user's input
                        f"{self.name}: the policy became non-finite while training, at {self.num_timesteps} env "
                        f"steps (lower the learning rate, or set target_kl); {str(exc).splitlines()[0]}") from exc
        return self

    def rollout_steps(self) -> tuple[int, str] | None:
        n = self.venv.num_envs
        if hasattr(self.model, "n_steps") and not hasattr(self.model, "train_freq"):      # PPO, A2C
            return self.model.n_steps * n, f"{n} envs x n_steps {self.model.n_steps}"
        freq = getattr(self.model, "train_freq", None)
        if freq is not None and str(getattr(freq.unit, "value", freq.unit)) == "step":
            return freq.frequency * n, f"{n} envs x train_freq {freq.frequency}"
        return None

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, None]:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return self.venv.env_action(action), None

    def save(self, path: str | Path) -> Path:
        """The SB3 model (``agent.zip``), and beside it what SB3 leaves out but a resumed run needs
        to continue exactly: ``agent.state-STEP.pt`` (the env's state, the last observation, the
        global RNGs, the episode tracker) and, off-policy, ``agent.replay-STEP.pkl`` (the replay
        buffer); with a co-trained LLM-LTM also ``reader.safetensors``."""
        import random

        from ltm_gym.core import save_checkpoint

        path = Path(path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: SB3 would otherwise append ".zip"
                self.model.save(fh)

        # sidecars first, named by the step they belong to, the zip last, older sidecars removed after
        # it: a kill at any point leaves a zip whose own sidecars are complete
        step = self.num_timesteps
        if getattr(self.model, "replay_buffer", None) is not None:
            save_replay(self.model.replay_buffer, replay_path(path, step))
        save_checkpoint({"env": env_state(self.venv.venv), "last_obs": self.model._last_obs,
                         "last_episode_starts": self.model._last_episode_starts, "episodes": self.episodes.state_dict(),
                         "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                         "python_rng": random.getstate()}, run_state_path(path, step))
        atomic_write(path, write)
        for old in path.parent.glob(f"{path.stem}.*-*.*"):
            if old.name not in (run_state_path(path, step).name, replay_path(path, step).name):
                old.unlink(missing_ok=True)
        save_reader(self.venv.venv, path)
        return path

    def _check_zip(self, path: Path) -> None:
        import zipfile

        if not path.is_file():
            raise FileNotFoundError(f"no {self.name} agent at {path}")
        if not zipfile.is_zipfile(path) or "data" not in zipfile.ZipFile(path).namelist():
            raise ArtifactError(path, f"{self.name} agent (an SB3 .zip; agent.pt and writer.pt are REINFORCE's)")

    def load(self, path: str | Path, restore_env: bool = False) -> "SB3Agent":
        """The agent saved at ``path``; ``restore_env`` (resuming its run) also restores the env,
        the last observation, the RNGs and the replay buffer saved beside it. Nothing is unpickled
        (:func:`safe_custom_objects`, :func:`load_replay`): a run directory from elsewhere cannot run code."""
        import random

        path = Path(path)
        self._check_zip(path)
        try:
            custom = safe_custom_objects(path, self.model)
            with open(path, "rb") as fh:
                self.model = self.cls.load(fh, env=self.venv, device=self.model.device, custom_objects=custom)
        except (ValueError, KeyError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            raise ArtifactError(path, f"{self.name} agent that fits this env", exc) from exc
        self.model.set_logger(Logger(None, [LossWriter(self.logger)]))
        load_reader(self.venv.venv, path)
        step = self.num_timesteps
        if restore_env and run_state_path(path, step).is_file():
            state = load_checkpoint(run_state_path(path, step))
            if state["env"] is not None:
                self.venv.venv.set_state(state["env"])
                self.model._last_obs, self.model._last_episode_starts = state["last_obs"], state["last_episode_starts"]
            self.episodes.load_state_dict(state["episodes"])
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
            replay = replay_path(path, step)
            if replay.is_file():
                load_replay(self.model.replay_buffer, replay)
        return self

    def init_from(self, path: str | Path) -> None:
        """The weights of another run of the same algorithm (``agent.zip``)."""
        path = Path(path)
        self._check_zip(path)
        try:
            self.model.set_parameters(str(path), exact_match=True)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ArtifactError(path, f"{self.name} agent with this agent's networks", exc) from exc
