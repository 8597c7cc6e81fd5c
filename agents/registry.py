"""``agents.make(name, env, **config)``: every memory-writing algorithm behind one call.

Each returned agent has ``learn(total_steps, callback=None)``, ``predict(obs, deterministic=True)``,
``save(path)`` and ``load(path)``. ``env`` is an LLMMemory VectorEnv
(``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltm_gym.core import from_dict

from .reinforce import ReinforceAgent, ReinforceConfig
from .sb3 import SB3Agent

SB3_NAMES = ("ppo", "a2c", "sac", "td3", "ddpg", "tqc")
NAMES = ("reinforce",) + SB3_NAMES


def make(name: str, env: Any, run_dir: str | Path | None = None, seed: int = 0, device: str = "auto",
         **config: Any):
    """The agent ``name`` on ``env``; ``config`` holds the algorithm's hyper-parameters
    (``configs/agents/<name>.yaml``)."""
    env = getattr(env, "unwrapped", env)
    if name == "reinforce":
        cfg = from_dict(ReinforceConfig, {"seed": seed, "device": device, **config})
        return ReinforceAgent(env, cfg, run_dir=run_dir)
    if name in SB3_NAMES:
        return SB3Agent(name, env, config, run_dir=run_dir, seed=seed, device=device)
    raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(NAMES)}")
