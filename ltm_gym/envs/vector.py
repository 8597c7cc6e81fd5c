"""The natively batched twin of LLMMemory-v0: N documents, ONE batched LM forward per step."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ltm_gym.core import ConfigError

from .backend import MemoryLMBackend
from .config import EnvConfig, env_config
from .episodes import DifferentiableReward, Episodes
from .llm_memory import LLMMemoryEnv, build_backend
from ltm_gym.core.errors import UserError


class LLMMemoryVectorEnv(DifferentiableReward, VectorEnv):
    """N copies of :class:`~ltm_gym.envs.llm_memory.LLMMemoryEnv` (same arguments, same spaces and
    rewards) stepped together. Autoreset mode SAME_STEP: an episode that ends is reset within the
    same step; its last observation and info are in ``infos["final_obs"]`` / ``infos["final_info"]``
    (masks ``infos["_final_obs"]``), as Stable-Baselines3 and CleanRL expect.

    Env i draws its documents and prefix lengths from its own generator, seeded ``seed + i`` at
    ``reset(seed=seed)`` exactly as a single env reset with that seed, so the rewards equal those of
    N single envs;
    ``reset(seed=[s_0, ..., s_{N-1}])`` seeds each env on its own;
    ``reset(options={"documents": [...]})`` fixes the documents of the first episodes.
    Arguments: those of the single env (:class:`~ltm_gym.envs.config.EnvConfig`); Gymnasium's
    ``max_episode_steps`` is ``max_segments`` (the smaller one counts when both are given).
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, config: EnvConfig | None = None, *,
                 backend: MemoryLMBackend | None = None, max_episode_steps: int | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ConfigError(f"num_envs={num_envs!r} must be an integer >= 1")
        cfg = env_config(kwargs, config or EnvConfig())
        if max_episode_steps is not None:
            limit = max_episode_steps if cfg.max_segments is None else min(max_episode_steps, cfg.max_segments)
            cfg = env_config({"max_segments": limit}, cfg)
        self.config = cfg
        self.num_envs = num_envs
        self.render_mode = cfg.render_mode
        self.backend = build_backend(cfg, backend)
        self.episodes = Episodes(self.backend, cfg, num_envs)
        self.single_observation_space = self.episodes.obs_space
        self.single_action_space = self.episodes.act_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._needs_reset = True
        self._closed = False

    @classmethod
    def from_env(cls, env: "LLMMemoryEnv", num_envs: int = 1, max_steps: int | None = None) -> "LLMMemoryVectorEnv":
        """A vector env with ``env``'s backend and config (shared, not copied): how a single env
        is wrapped for agents that step vector envs. ``max_steps``: a time limit (a TimeLimit
        wrapper's) on top of the env's own ``max_segments``."""
        cfg = env.config
        limit = cfg.max_segments if max_steps is None else min(max_steps, cfg.max_segments or max_steps)
        return cls(num_envs, replace(cfg, max_segments=limit), backend=env.backend)

    @property
    def episode_lengths(self) -> list[int]:
        """The env steps an episode takes, each length once, over the documents of the split (a
        document of S segments: S - 1, or ``max_segments``)."""
        limit = self.episodes.s.max_segments
        return sorted({min(d.n_segments - 1, limit) if limit else d.n_segments - 1 for d in self.episodes.docs})

    @property
    def n_documents(self) -> int:
        """Documents in the env's split (``reset(options={"documents": [...]})`` picks among them)."""
        return len(self.episodes.docs)

    def _stack(self) -> dict[str, np.ndarray]:
        obs = [self.episodes.observation(i) for i in range(self.num_envs)]
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        self._check_open()
        options = options or {}
        unknown = set(options) - {"documents"}
        if unknown:
            hint = " (one document per env: 'documents')" if "document" in unknown else ""
            raise UserError(f"unknown reset options {sorted(unknown)}; allowed: ['documents']{hint}")
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise UserError(f"reset(seed=...) has {len(seed)} seeds for {self.num_envs} envs")
            seeds = [int(s) for s in seed]
        else:
            seeds = None if seed is None else [seed + i for i in range(self.num_envs)]
        super().reset(seed=None if seeds is None else seeds[0])
        if seeds is not None:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        documents = options.get("documents") or [None] * self.num_envs
        if len(documents) != self.num_envs:
            raise UserError(f"options['documents'] has {len(documents)} entries for {self.num_envs} envs")
        for i in range(self.num_envs):
            self.episodes.reset_one(i, self._rngs[i], documents[i])
        self._needs_reset = False
        return self._stack(), {"document": self.episodes.doc.copy(), "segment": self.episodes.t.copy()}

    def step(self, actions: np.ndarray):
        self._check_open()
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        rewards, terminated, truncated, infos = self.episodes.step(actions, self._rngs)
        vector_info: dict[str, Any] = {}
        done = terminated | truncated
        final_obs = np.full(self.num_envs, None, dtype=object)
        final_info = {}
        for i in np.flatnonzero(done):
            final_obs[i] = self.episodes.observation(i)
            final_info = self._add_info(final_info, infos[i], int(i))
            self.episodes.reset_one(int(i), self._rngs[i], None)
        obs = self._stack()
        for i in range(self.num_envs):
            vector_info = self._add_info(vector_info, infos[i], i)
        if done.any():
            vector_info["final_obs"] = final_obs
            vector_info["_final_obs"] = done.copy()
            vector_info["final_info"] = final_info
            vector_info["_final_info"] = done.copy()
        return obs, rewards.astype(np.float64), terminated.copy(), truncated.copy(), vector_info

    def _scoring_rngs(self) -> list[np.random.Generator]:
        return self._rngs

    def get_state(self) -> dict[str, Any]:
        """Everything that decides the env's future: the episodes and each env's generator. With
        :meth:`set_state` a run killed and resumed steps exactly as the uninterrupted one."""
        return {"episodes": self.episodes.state_dict(), "needs_reset": self._needs_reset,
                "rngs": [r.bit_generator.state for r in self._rngs]}

    def set_state(self, state: dict[str, Any]) -> None:
        if len(state["rngs"]) != self.num_envs:
            raise UserError(f"the saved env state is of {len(state['rngs'])} envs; this env has {self.num_envs}")
        if "reader" in state:
            raise UserError("the saved env state holds a co-trained reader; this env co-trains none (lm_update=false)")
        self.episodes.load_state_dict(state["episodes"])
        for rng, rs in zip(self._rngs, state["rngs"]):
            rng.bit_generator.state = rs
        self._needs_reset = state["needs_reset"]

    def close_extras(self, **kwargs: Any) -> None:
        self._closed = True

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(self.episodes.render_text(i) for i in range(self.num_envs))
        return None
