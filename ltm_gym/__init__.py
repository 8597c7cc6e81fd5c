"""ltm-gym: Gymnasium environments in which an RL agent writes long-term memory for a language model.

Importing the package registers the environments (``ltm_gym/LLMMemory-v0``, ...).
"""

__version__ = "0.1.0"

from .envs.registration import register_envs as _register_envs

_register_envs()
