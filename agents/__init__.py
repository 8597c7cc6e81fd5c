"""Memory-writing policies: a custom REINFORCE and Stable-Baselines3 algorithms behind one registry."""

from .base import Agent
from .registry import NAMES, make

__all__ = ["Agent", "NAMES", "make"]
