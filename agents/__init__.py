"""Memory-writing policies: a custom REINFORCE and Stable-Baselines3 algorithms behind one registry."""

from .registry import NAMES, make

__all__ = ["NAMES", "make"]
