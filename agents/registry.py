"""``ltm_gym.agents.make(name, env, **config)``: every memory-writing algorithm behind one call.

``env`` is a single ``LLMMemory-v0`` / ``EmbeddingMimic-v0`` env (``gymnasium.make``; wrapped for
the agent into our vector env, sharing its LM), our natively batched vector env
(``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``), or Gymnasium's
``SyncVectorEnv`` of them (``vectorization_mode="sync"``: its first env's LM steps all N documents). The returned object is an
:class:`ltm_gym.agents.base.Agent`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium as gym

from ltm_gym.envs import CoTrainReader, CoTrainReaderVector, LLMMemoryEnv, LLMMemoryVectorEnv, ReaderTraining

from .base import Agent
from .reinforce import ReinforceAgent
from .sb3 import SB3_NAMES, SB3Agent

BUILDERS = {"reinforce": ReinforceAgent.from_config,
            **{n: functools.partial(SB3Agent, n) for n in SB3_NAMES}}
NAMES = tuple(BUILDERS)


TRANSPARENT_WRAPPERS = ("OrderEnforcing", "PassiveEnvChecker")
"""Wrappers ``gymnasium.make`` adds that change nothing an agent sees."""


def unwrap(env: Any) -> tuple[Any, int | None, ReaderTraining | None]:
    """``env`` without its wrappers, the time limit they set (``TimeLimit``, e.g. from
    ``max_episode_steps=``) and the reader training of a co-training wrapper (``lm_update=True``).
    Agents step the env itself, batched, so a wrapper that changes observations, actions or
    rewards cannot be honoured: it is refused, named."""
    from gymnasium.wrappers import TimeLimit

    limit, refused, training = None, [], None
    while isinstance(env, (gym.Wrapper, gym.vector.VectorWrapper)):
        if isinstance(env, TimeLimit):
            steps = env._max_episode_steps
            limit = steps if limit is None else min(limit, steps)
        elif isinstance(env, (CoTrainReader, CoTrainReaderVector)):
            training = env.training
        elif type(env).__name__ not in TRANSPARENT_WRAPPERS:
            refused.append(type(env).__name__)
        env = env.env
    if refused:
        raise TypeError(f"agents cannot train through the wrapper(s) {', '.join(refused)}: they step the "
                        "LLMMemory env itself, batched; pass the env without them (time limits, TimeLimit or "
                        "max_episode_steps=, are honoured)")
    return env, limit, training


def as_vector_env(env: Any) -> LLMMemoryVectorEnv | CoTrainReaderVector:
    """Our vector env for ``env`` (a single env is wrapped, one document at a time), or a
    TypeError naming what ``env`` is. Time limits of wrappers are honoured, a co-trained reader
    kept (the same optimizer, around the vector env), other wrappers refused."""
    inner, limit, training = unwrap(env)
    vec = None
    if isinstance(inner, LLMMemoryVectorEnv):
        if limit is not None:
            raise TypeError("a TimeLimit around a vector env is not honoured by agents: pass max_segments= "
                            "to the env instead")
        vec = inner
    elif isinstance(inner, LLMMemoryEnv):
        vec = LLMMemoryVectorEnv.from_env(inner, max_steps=limit)
    envs = getattr(inner, "envs", None)                                   # gymnasium's SyncVectorEnv
    if vec is None and isinstance(envs, (list, tuple)) and envs and all(isinstance(e.unwrapped, LLMMemoryEnv)
                                                                        for e in envs):
        first, sub_limit, training = unwrap(envs[0])
        vec = LLMMemoryVectorEnv.from_env(first, num_envs=len(envs), max_steps=sub_limit)
    if vec is not None:
        return vec if training is None else CoTrainReaderVector(vec, training=training)
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
