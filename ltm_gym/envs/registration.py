"""Registration of the environment ids (done on ``import ltm_gym``)."""

from __future__ import annotations

import gymnasium as gym

IDS = {
    "ltm_gym/LLMMemory-v0": {},
    # hypothesis 1 (agent pre-training): same spaces, reward d_{t-1} - d_t, no LM forward
    "ltm_gym/EmbeddingMimic-v0": {"reward_mode": "mimic"},
}


def register_envs() -> None:
    for env_id, kwargs in IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point="ltm_gym.envs.llm_memory:LLMMemoryEnv",
                     vector_entry_point="ltm_gym.envs.vector:LLMMemoryVectorEnv", kwargs=dict(kwargs))
