"""Gymnasium environments: LLMMemory-v0, its native VectorEnv, EmbeddingMimic-v0, the SB3 adapter.

Knows no agent: agents reach the envs through the Gymnasium API.
"""

from .backend import MemoryLMBackend
from .reward import Reward, RewardConfig, Segments
from .episodes import EnvSettings, Episodes
from .llm_memory import LLMMemoryEnv
from .registration import register_envs
from .vector import LLMMemoryVectorEnv

__all__ = ["EnvSettings", "Episodes", "LLMMemoryEnv", "LLMMemoryVectorEnv", "MemoryLMBackend", "Reward", "RewardConfig", "Segments",
           "register_envs"]
