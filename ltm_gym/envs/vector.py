"""The natively batched twin of LLMMemory-v0: N documents, ONE batched LM forward per step."""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ltm_gym.data.tasks import TaskConfig

from .backend import MemoryLMBackend
from .episodes import DifferentiableReward, Episodes
from .llm_memory import LLMMemoryEnv, check_argument_types, env_settings, resolve_backend


class LLMMemoryVectorEnv(DifferentiableReward, VectorEnv):
    """N copies of :class:`~ltm_gym.envs.llm_memory.LLMMemoryEnv` (same arguments, same spaces and
    rewards) stepped together. Autoreset mode SAME_STEP: an episode that ends is reset within the
    same step; its last observation and info are in ``infos["final_obs"]`` / ``infos["final_info"]``
    (masks ``infos["_final_obs"]``), as Stable-Baselines3 and CleanRL expect.

    Env i draws its documents and prefix lengths from its own generator, seeded ``seed + i`` at
    ``reset(seed=seed)`` exactly as a single env reset with that seed, so the rewards equal those of
    N single envs;
    ``reset(options={"documents": [...]})`` fixes the documents of the first episodes.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, study_dir: str | Path | None = None, config: str | Path | None = None,
                 backend: MemoryLMBackend | None = None, split: str = "train", reward_mode: str = "prefix",
                 k: int = 4, action_mode: str = "full", action_scale: float = 1.0, obs_mode: str = "tokens",
                 max_segments: int | None = None, lm_update: bool = False, lm_lr: float = 1e-4,
                 adapters: str = "memory", device: str = "auto", render_mode: str | None = None,
                 max_episode_steps: int | None = None, untrained: bool = False,
                 task: str | dict[str, Any] | TaskConfig | None = None) -> None:
        check_argument_types(LLMMemoryVectorEnv.__init__, {k: v for k, v in locals().items() if k != "self"})
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.backend = resolve_backend(backend, study_dir, config, device, lm_update, lm_lr, adapters, untrained,
                                       task)
        limit = max_segments if max_segments is not None else max_episode_steps
        settings = env_settings(split, reward_mode, k, action_mode, action_scale, obs_mode, limit)
        self.episodes = Episodes(self.backend, settings, num_envs)
        self.single_observation_space = self.episodes.obs_space
        self.single_action_space = self.episodes.act_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._needs_reset = True

    @classmethod
    def from_env(cls, env: "LLMMemoryEnv", num_envs: int = 1, max_steps: int | None = None) -> "LLMMemoryVectorEnv":
        """A vector env with ``env``'s backend and settings (shared, not copied): how a single env
        is wrapped for agents that step vector envs. ``max_steps``: a time limit (a TimeLimit
        wrapper's) on top of the env's own ``max_segments``."""
        s = env.episodes.s
        limit = s.max_segments if max_steps is None else min(max_steps, s.max_segments or max_steps)
        return cls(num_envs, backend=env.backend, split=s.split, reward_mode=s.reward.mode, k=s.reward.k,
                   action_mode=s.action_mode, action_scale=s.action_scale, obs_mode=s.obs_mode,
                   max_segments=limit, render_mode=env.render_mode)

    @classmethod
    def check_kwargs(cls, kwargs: dict[str, Any]) -> None:
        """Refuse argument names the env does not take (naming the closest one) and values of the
        wrong type before anything is built: what the scripts' ``--env-kwargs`` go through."""

        known = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "num_envs", "backend")]
        for name in kwargs:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1)
                raise ValueError(f"env argument {name!r} is not one of LLMMemory-v0's "
                                 + (f"(did you mean {near[0]!r}?)" if near else f"({', '.join(known)})"))
        check_argument_types(cls.__init__, kwargs)

    @property
    def n_documents(self) -> int:
        """Documents in the env's split (``reset(options={"documents": [...]})`` picks among them)."""
        return len(self.episodes.docs)

    def _stack(self) -> dict[str, np.ndarray]:
        obs = [self.episodes.observation(i) for i in range(self.num_envs)]
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            seeds = seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        documents = (options or {}).get("documents") or [None] * self.num_envs
        if len(documents) != self.num_envs:
            raise ValueError(f"options['documents'] has {len(documents)} entries for {self.num_envs} envs")
        for i in range(self.num_envs):
            self.episodes.reset_one(i, self._rngs[i], documents[i])
        self._needs_reset = False
        return self._stack(), {"document": self.episodes.doc.copy(), "segment": self.episodes.t.copy()}

    def step(self, actions: np.ndarray):
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
        """Everything that decides the env's future: the episodes, each env's generator and, with
        ``lm_update``, the co-trained read path and its optimizer. With :meth:`set_state` a run
        killed and resumed steps exactly as the uninterrupted one."""
        state: dict[str, Any] = {"episodes": self.episodes.state_dict(), "needs_reset": self._needs_reset,
                                 "rngs": [r.bit_generator.state for r in self._rngs]}
        if self.backend.lm_update:
            state["reader"] = self.backend.model.adapter_state()
            state["lm_optimizer"] = self.backend.optimizer.state_dict()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        if len(state["rngs"]) != self.num_envs:
            raise ValueError(f"the saved env state is of {len(state['rngs'])} envs; this env has {self.num_envs}")
        if ("reader" in state) != self.backend.lm_update:
            raise ValueError(f"the saved env state was {'' if 'reader' in state else 'not '}co-trained "
                             f"(lm_update); this env has lm_update={self.backend.lm_update}")
        self.episodes.load_state_dict(state["episodes"])
        for rng, rs in zip(self._rngs, state["rngs"]):
            rng.bit_generator.state = rs
        self._needs_reset = state["needs_reset"]
        if "reader" in state:
            self.backend.model.load_adapter_state(state["reader"], "the saved env state")
            self.backend.optimizer.load_state_dict(state["lm_optimizer"])

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(self.episodes.render_text(i) for i in range(self.num_envs))
        return None
