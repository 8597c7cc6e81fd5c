"""n-step returns for off-policy agents on Dict observations (the memory env's).

A fact stated in segment t and asked in segment t + d rewards storing it at step t only through the
rewards of steps t + d - 1 and later; a one-step critic has to carry that credit back through d - 1
bootstrapped targets. :class:`DictNStepReplayBuffer` samples the discounted sum of up to ``n_steps``
rewards instead (stopping at an episode's end and at the newest stored step) and bootstraps from
the observation after the last of them with ``gamma ** k`` for the k rewards summed, through the
``discounts`` field that SB3's SAC, TD3, DDPG and TQC read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from ltm_gym.core.errors import UserError


class DictNStepReplayBuffer(DictReplayBuffer):
    """SB3's DictReplayBuffer whose samples carry n-step returns (``n_steps`` = 1: one-step ones)."""

    def __init__(self, *args: Any, n_steps: int = 2, gamma: float = 0.99, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if n_steps < 1:
            raise UserError(f"n_steps={n_steps}: an n-step return sums at least one reward")
        if self.optimize_memory_usage:
            raise UserError("n-step returns need the next observations stored (optimize_memory_usage=False)")
        self.n_steps, self.gamma = n_steps, gamma

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> DictReplayBufferSamples:
        envs = np.random.randint(0, self.n_envs, size=len(batch_inds))
        ahead = np.arange(self.n_steps)
        idx = (batch_inds[:, None] + ahead) % self.buffer_size                          # (B, n)
        col = envs[:, None]
        stop = (self.dones[idx, col] > 0) | (self.timeouts[idx, col] > 0)
        stop |= idx == (self.pos - 1) % self.buffer_size    # what follows the newest step is older data
        last = np.where(stop.any(1), stop.argmax(1), self.n_steps - 1)                # (B,)
        summed = ahead[None] <= last[:, None]
        rewards = self._normalize_reward(self.rewards[idx, col], env)
        returns = (rewards * self.gamma ** ahead * summed).sum(1, keepdims=True)
        end = idx[np.arange(len(idx)), last]
        obs = self._normalize_obs({k: v[batch_inds, envs] for k, v in self.observations.items()}, env)
        next_obs = self._normalize_obs({k: v[end, envs] for k, v in self.next_observations.items()}, env)
        done = self.dones[end, envs] * (1 - self.timeouts[end, envs])
        return DictReplayBufferSamples(
            observations={k: self.to_torch(v) for k, v in obs.items()},
            actions=self.to_torch(self.actions[batch_inds, envs]),
            next_observations={k: self.to_torch(v) for k, v in next_obs.items()},
            dones=self.to_torch(done.reshape(-1, 1)),
            rewards=self.to_torch(returns.astype(np.float32)),
            discounts=self.to_torch((self.gamma ** (last + 1)).reshape(-1, 1).astype(np.float32)),
        )
