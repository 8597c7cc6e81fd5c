"""Registration of the environment ids (done on ``import ltm_gym``) and their entry points.

The entry points build the simulator from its :class:`~ltm_gym.envs.config.EnvConfig` and, where
``lm_update=True`` asks for a reader trained online, wrap it in
:class:`~ltm_gym.envs.reader_training.CoTrainReader` (single) or ``CoTrainReaderVector``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym

IDS = {
    "ltm_gym/LLMMemory-v0": {},
    # hypothesis 1 (agent pre-training): same spaces, reward d_{t-1} - d_t, no LM forward
    "ltm_gym/EmbeddingMimic-v0": {"reward_mode": "mimic"},
}


def make_env(backend: Any = None, **kwargs: Any) -> gym.Env:
    """``gymnasium.make``'s entry point: the env of ``kwargs`` (on a ready ``backend`` when given),
    co-training its reader on request."""
    from .config import env_config
    from .llm_memory import LLMMemoryEnv
    from .reader_training import CoTrainReader

    cfg = env_config(kwargs)
    env = LLMMemoryEnv(replace(cfg, lm_update=False), backend=backend)
    return CoTrainReader(env, cfg.lm_lr, loss=cfg.lm_loss) if cfg.lm_update else env


def make_vector_env(num_envs: int = 1, backend: Any = None, **kwargs: Any) -> gym.vector.VectorEnv:
    """``gymnasium.make_vec``'s entry point (``vectorization_mode="vector_entry_point"``)."""
    from .config import env_config
    from .reader_training import CoTrainReaderVector
    from .vector import LLMMemoryVectorEnv

    limit = kwargs.pop("max_episode_steps", None)
    cfg = env_config(kwargs)
    env = LLMMemoryVectorEnv(num_envs, replace(cfg, lm_update=False), backend=backend, max_episode_steps=limit)
    return CoTrainReaderVector(env, cfg.lm_lr, loss=cfg.lm_loss) if cfg.lm_update else env


def register_envs() -> None:
    for env_id, kwargs in IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point="ltm_gym.envs.registration:make_env",
                     vector_entry_point="ltm_gym.envs.registration:make_vector_env", kwargs=dict(kwargs))
