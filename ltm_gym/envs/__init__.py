"""Gymnasium environments: LLMMemory-v0, its native VectorEnv, EmbeddingMimic-v0, the SB3 adapter.

Knows no agent: agents reach the envs through the Gymnasium API.
"""

from .backend import MemoryLMBackend
from .config import EnvConfig, env_config
from .reward import Reward, RewardConfig, Segments
from .episodes import Episodes
from .llm_memory import LLMMemoryEnv
from .reader_training import CoTrainReader, CoTrainReaderVector, ReaderTraining, reader_training
from .registration import make_env, make_vector_env, register_envs
from .vector import LLMMemoryVectorEnv

__all__ = ["CoTrainReader", "CoTrainReaderVector", "EnvConfig", "Episodes", "LLMMemoryEnv", "LLMMemoryVectorEnv",
           "MemoryLMBackend", "ReaderTraining", "Reward", "RewardConfig", "Segments", "env_config", "make_env",
           "make_vector_env", "reader_training", "register_envs"]
