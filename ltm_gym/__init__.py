"""ltm-gym: Gymnasium environments in which an RL agent writes long-term memory for a language model.

Importing the package registers the environments (``ltm_gym/LLMMemory-v0``, ...).
"""

__version__ = "0.1.0"
