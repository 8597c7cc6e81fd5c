"""Stable-Baselines3 does not accept Gymnasium vector envs: this adapter presents our natively
batched :class:`~ltm_gym.envs.vector.LLMMemoryVectorEnv` as an SB3 ``VecEnv``.

SB3's conventions: ``step_wait`` returns (obs, rewards, dones, infos) with one info dict per env;
a finished env is already reset, its last observation is ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` says whether it was cut by the time limit rather than ended.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .vector import LLMMemoryVectorEnv


class SB3VecEnv(VecEnv):
    def __init__(self, venv: LLMMemoryVectorEnv) -> None:
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self.render_mode = venv.render_mode

    def reset(self):
        seed = self._seeds[0] if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape((self.num_envs, *self.action_space.shape))

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            item = {k: v[i] for k, v in info.items()
                    if not k.startswith("_") and k not in ("final_obs", "final_info") and info.get("_" + k, np.ones(self.num_envs, bool))[i]}
            if dones[i]:
                item["terminal_observation"] = info["final_obs"][i]
                item["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            infos.append(item)
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices: None | int | Iterable[int]) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self):
        return []
