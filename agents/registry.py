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
from .reinforce import ReinforceAgent, ReinforceConfig
from .sb3 import SB3_NAMES, SB3Agent
from ltm_gym.core.errors import UserError

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


def hyperparams(algo: str, action_mode: str | None = None) -> dict[str, Any]:
    """The shipped hyper-parameter preset of ``algo``: ``agents/<algo>-<action_mode>`` where one is
    shipped for that action mode (``ppo-select``), else ``agents/<algo>``."""
    from ltm_gym.core.config import load_preset_dict, preset_dir

    if action_mode and (preset_dir() / "agents" / f"{algo}-{action_mode}.yaml").is_file():
        return load_preset_dict(f"agents/{algo}-{action_mode}")
    return load_preset_dict(f"agents/{algo}")


def make(name: str, env: Any, run_dir: str | Path | None = None, seed: int = 0, device: str = "auto",
         preset: bool = True, **config: Any) -> Agent:
    """The agent ``name`` on ``env``, with the hyper-parameters ``train-agent``
    gives it: the shipped preset of the algorithm and the env's action mode (:func:`hyperparams`;
    SB3's own defaults are set for other benchmarks, e.g. PPO's 2048 steps per env and update),
    ``config`` merged over it key by key (``features={"d_model": 32}`` keeps the preset's other
    features); ``preset=False``: ``config`` over SB3's defaults (REINFORCE's: its config's).
    REINFORCE's preset rolls out whole-episode groups (:func:`reinforce_preset`)."""
    from ltm_gym.core.config import merge

    if name not in BUILDERS:
        raise UserError(f"unknown agent {name!r}; known agents: {', '.join(NAMES)}")
    vec = as_vector_env(env)
    settings = getattr(getattr(vec.unwrapped, "episodes", None), "s", None)
    mode = getattr(settings, "action_mode", None)
    if preset and name in SB3_NAMES:
        config = merge(hyperparams(name, mode), config)
    elif preset and name == "reinforce":
        config = reinforce_preset(hyperparams(name, mode), config, vec.num_envs)
    return BUILDERS[name](vec, config, run_dir=run_dir, seed=seed, device=device)


EPISODE_KEYS = ("rollout", "gamma", "n_steps")
"""What REINFORCE's whole-episode rollout sets: the preset's values need num_envs a multiple of its group."""


def reinforce_preset(preset: dict[str, Any], config: dict[str, Any], num_envs: int) -> dict[str, Any]:
    """REINFORCE's preset with ``config`` merged over it. Its whole-episode groups (``rollout:
    episode``: ``group_size`` episodes of each document side by side) need ``num_envs`` a multiple
    of ``group_size``; on another env, unless ``config`` sets the rollout, the rollout keys fall back
    to the config's defaults (``rollout: step``: K actions a state, each judged by its own reward,
    which does not learn to keep a fact for a later segment), with a warning that says so."""
    import warnings

    from ltm_gym.core.config import merge

    out = merge(preset, config)
    group = int(out.get("group_size", 1))
    if out.get("rollout") != "episode" or num_envs % group == 0 or "rollout" in config:
        return out
    defaults = ReinforceConfig()
    fallback = {k: getattr(defaults, k) for k in EPISODE_KEYS if k not in config}
    warnings.warn(f"REINFORCE's preset rolls out group_size={group} whole episodes of each document, which needs "
                  f"num_envs a multiple of {group}; this env has {num_envs}, so the agent uses "
                  f"{', '.join(f'{k}={v!r}' for k, v in fallback.items())} (each action judged by its own reward: "
                  f"it does not learn to keep a fact for a later segment). Make the env with "
                  f"num_envs={group * max(1, -(-num_envs // group))} for the preset's rollout, or pass rollout='step'.",
                  UserWarning, stacklevel=3)
    return {**out, **fallback}
