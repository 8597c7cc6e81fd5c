"""Stable-Baselines3 does not accept Gymnasium vector envs: this adapter presents our natively
batched :class:`~ltm_gym.envs.vector.LLMMemoryVectorEnv` as an SB3 ``VecEnv``.

SB3's conventions: ``step_wait`` returns (obs, rewards, dones, infos) with one info dict per env;
a finished env is already reset, its last observation is ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` says whether it was cut by the time limit rather than ended.

With ``binary_select`` a selection env (``action_mode="select"``) is offered to SB3 as
``MultiBinary(segment_len + n_slots)``, a yes/no per position and per previous slot, so PPO and
A2C learn a Bernoulli choice of each candidate instead of a Gaussian over scores whose top
``n_slots`` only matter (:func:`binary_selection_scores` maps it back to the env's scores).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .selection import is_selection
from .vector import LLMMemoryVectorEnv
from ltm_gym.core.errors import UserError

# a binary selection's scores: what the env stores first when more or fewer than n_slots are chosen
CHOSEN_SLOT, CHOSEN_POSITION, OTHER_SLOT, OTHER_POSITION = 1.0, 0.5, 0.0, -1.0


def binary_selection_scores(choices: np.ndarray, n_slots: int) -> np.ndarray:
    """Selection scores (..., L + n_slots) for yes/no ``choices`` of the same shape: the chosen
    previous slots, then the chosen positions (in order), then the other previous slots (the old
    memory fills what is left), then the other positions. So choosing a position stores it, and
    a slot is dropped only when more is chosen than the memory holds."""
    chosen = np.asarray(choices) > 0.5
    is_slot = np.zeros(chosen.shape[-1], dtype=bool)
    is_slot[chosen.shape[-1] - n_slots:] = True
    yes = np.where(is_slot, CHOSEN_SLOT, CHOSEN_POSITION)
    no = np.where(is_slot, OTHER_SLOT, OTHER_POSITION)
    return np.where(chosen, yes, no).astype(np.float32)


class SB3VecEnv(VecEnv):
    def __init__(self, venv: LLMMemoryVectorEnv, binary_select: bool = False) -> None:
        self.venv = venv
        action_space = venv.single_action_space
        if binary_select:
            if not is_selection(venv.single_observation_space, action_space):
                raise UserError(f"binary_select is for selection envs (action_mode=select); the action space is "
                                f"{action_space}")
            action_space = spaces.MultiBinary(action_space.shape[0])
        self.binary_select = binary_select
        self.n_slots = venv.single_observation_space["memory"].shape[0]
        super().__init__(venv.num_envs, venv.single_observation_space, action_space)
        self._actions: np.ndarray | None = None
        self.render_mode = venv.render_mode

    def reset(self):
        seed = self._seeds[0] if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        return obs

    def env_action(self, actions: np.ndarray) -> np.ndarray:
        """The env's action for SB3's ``actions`` (the same unless ``binary_select``)."""
        actions = np.asarray(actions, dtype=np.float32)
        return binary_selection_scores(actions, self.n_slots) if self.binary_select else actions

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self.env_action(actions).reshape((self.num_envs, *self.venv.single_action_space.shape))

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
