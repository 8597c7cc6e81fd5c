"""``agents.make(name, env, **config)``: every memory-writing algorithm behind one call.

``env`` is a single ``LLMMemory-v0`` / ``EmbeddingMimic-v0`` env (``gymnasium.make``; wrapped for
the agent into our vector env, sharing its LM), our natively batched vector env
(``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``), or Gymnasium's
``SyncVectorEnv`` of them (``vectorization_mode="sync"``: its first env's LM steps all N documents). The returned object is an
:class:`agents.base.Agent`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv

from .base import Agent
from .reinforce import ReinforceAgent
from .sb3 import SB3_NAMES, SB3Agent

BUILDERS = {"reinforce": ReinforceAgent.from_config,
            **{n: functools.partial(SB3Agent, n) for n in SB3_NAMES}}
NAMES = tuple(BUILDERS)


def as_vector_env(env: Any) -> LLMMemoryVectorEnv:
    """Our vector env for ``env`` (a single env is wrapped, one document at a time), or a
    TypeError naming what ``env`` is."""
    inner = getattr(env, "unwrapped", env)
    if isinstance(inner, LLMMemoryVectorEnv):
        return inner
    if isinstance(inner, LLMMemoryEnv):
        return LLMMemoryVectorEnv.from_env(inner)
    envs = getattr(inner, "envs", None)                                   # gymnasium's SyncVectorEnv
    if isinstance(envs, (list, tuple)) and envs and all(isinstance(e.unwrapped, LLMMemoryEnv) for e in envs):
        return LLMMemoryVectorEnv.from_env(envs[0].unwrapped, num_envs=len(envs))
    raise TypeError(f"agents need an LLMMemory env; got {type(env).__name__} ({type(inner).__module__}."
                    f"{type(inner).__name__}): pass gymnasium.make('ltm_gym/LLMMemory-v0') or "
                    "gymnasium.make_vec('ltm_gym/LLMMemory-v0', num_envs=N, vectorization_mode='vector_entry_point')")


def make(name: str, env: Any, run_dir: str | Path | None = None, seed: int = 0, device: str = "auto",
         **config: Any) -> Agent:
    """The agent ``name`` on ``env``; ``config`` holds the algorithm's hyper-parameters
    (presets ``agents/<name>``, ``ltm_gym/presets/agents/<name>.yaml``)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(NAMES)}")
    return BUILDERS[name](as_vector_env(env), config, run_dir=run_dir, seed=seed, device=device)
