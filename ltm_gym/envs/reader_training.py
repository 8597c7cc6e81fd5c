"""Online training of the reader, opted into around the env (the study's interaction scheme).

The env is a simulator: its ``step`` never changes the model. :class:`CoTrainReader` (single env)
and :class:`CoTrainReaderVector` (vector env) change its dynamics on purpose, as a Gymnasium
wrapper does: after every step, one AdamW step of the reader (the LLM-LTM's trainable
parameters) on the LM loss of what that step's reward scored: the memories just written, read
while predicting the next segments (memory detached); every token's loss, or the answer tokens'
alone for a reader that its study trained on answers (``lm_loss``, :data:`LM_LOSSES`).
``gymnasium.make(..., lm_update=True)`` and ``make_vec`` return the env wrapped; agents keep the
wrapper (and its optimizer) when they batch a single env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ltm_gym.core import distributed
from ltm_gym.core.distributed import all_reduce_grads, all_reduce_sum

from .backend import MemoryLMBackend
from .episodes import Episodes
from ltm_gym.core.errors import UserError


LM_LOSSES = ("auto", "tokens", "answers")
"""What the co-trained reader is stepped on: ``tokens``, every token's loss of the scored segments;
``answers``, their answer tokens' alone (steps whose segments ask nothing leave the reader as it
is); ``auto``, ``answers`` where the study trained its reader on answers
(:attr:`MemoryLMBackend.reader_on_answers`), else ``tokens``."""


class ReaderTraining:
    """The optimizer of a backend's reader and its update on a step's scored batch."""

    def __init__(self, backend: MemoryLMBackend, lr: float = 1e-4, loss: str = "auto") -> None:
        if loss not in LM_LOSSES:
            raise UserError(f"lm_loss {loss!r} is not one of {LM_LOSSES}")
        params = [p for p in backend.model.parameters() if p.requires_grad]
        if not params:
            raise UserError("lm_update=True but the LLM-LTM has no trainable parameters (adapters='none'?)")
        self.backend, self.lr = backend, lr
        self.on_answers = backend.reader_on_answers if loss == "auto" else loss == "answers"
        self.optimizer = torch.optim.AdamW(params, lr=lr)

    def update(self, episodes: Episodes) -> float | None:
        """One optimizer step on the mean token loss (or answer-token loss) of the batch the last
        step scored; None, and no step, where the answer tokens are asked for and the batch has
        none. Under torchrun each rank's envs give their loss and the gradients are averaged, so
        every rank's reader stays the one a single process stepping all the envs would train."""
        if episodes.last_scored is None:
            raise RuntimeError("the env has not scored a step yet")
        memory, seg = episodes.last_scored
        b, info = self.backend, distributed.current()
        with torch.enable_grad():
            _, losses = b.model(seg.ids.to(b.device), memory.to(b.device))
            losses = losses.float()
            reported = None
            if self.on_answers:
                mask = seg.answer_mask.to(b.device)
                total = float(all_reduce_sum(mask.sum().float(), info))     # every rank's answer tokens
                if total == 0:
                    return None
                answer_sum = (losses * mask).sum()
                # each rank's share of the global mean, times world_size: the averaged gradient is the mean's
                loss = answer_sum * (info.world_size if info.enabled else 1) / total
                reported = float(all_reduce_sum(answer_sum.detach(), info)) / total
            else:
                loss = losses.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        all_reduce_grads([p for group in self.optimizer.param_groups for p in group["params"]], info)
        self.optimizer.step()
        b.model_changed()
        return float(loss.detach()) if reported is None else reported

    def state_dict(self) -> dict[str, Any]:
        """The reader and its optimizer (what an exact resume needs)."""
        return {"reader": self.backend.model.adapter_state(), "lm_optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.backend.model.load_adapter_state(state["reader"], "the saved env state")
        self.optimizer.load_state_dict(state["lm_optimizer"])
        self.backend.model_changed()

    def save_reader(self, path: Any) -> None:
        self.backend.model.save_adapters(path)


class CoTrainReader(gym.Wrapper):
    """A single LLMMemory env whose reader is trained after every step (``info["lm_loss"]``, the
    loss it was stepped on; absent where the step had no answer to train on)."""

    def __init__(self, env: gym.Env, lr: float = 1e-4, training: ReaderTraining | None = None,
                 loss: str = "auto") -> None:
        super().__init__(env)
        self.training = training or ReaderTraining(env.unwrapped.backend, lr, loss)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        loss = self.training.update(self.env.unwrapped.episodes)
        if loss is not None:
            info["lm_loss"] = loss
        return obs, reward, terminated, truncated, info


class CoTrainReaderVector(gym.vector.VectorWrapper):
    """The vector env's twin of :class:`CoTrainReader` (one update per batched step). The env's
    own methods (``score_actions``, ``differentiable_reward``, ``backend``, ...) pass through;
    :meth:`get_state` adds the reader and its optimizer to the env's state."""

    def __init__(self, env: gym.vector.VectorEnv, lr: float = 1e-4, training: ReaderTraining | None = None,
                 loss: str = "auto") -> None:
        super().__init__(env)
        self.training = training or ReaderTraining(env.unwrapped.backend, lr, loss)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def step(self, actions: Any):
        """The env's step, then one reader update; its loss (one batch for all envs) is in every
        env's ``infos["lm_loss"]``, an array as the other vector infos are (masked off by
        ``infos["_lm_loss"]`` where the step had no answer to train on)."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        loss = self.training.update(self.env.unwrapped.episodes)
        infos["lm_loss"] = np.full(self.num_envs, np.nan if loss is None else loss)
        infos["_lm_loss"] = np.full(self.num_envs, loss is not None)
        return obs, rewards, terminated, truncated, infos

    def get_state(self) -> dict[str, Any]:
        return {**self.env.get_state(), **self.training.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        if "reader" not in state:
            raise UserError("the saved env state has no co-trained reader; this env co-trains one (lm_update)")
        self.env.set_state({k: v for k, v in state.items() if k not in ("reader", "lm_optimizer")})
        self.training.load_state_dict(state)


def reader_training(env: Any) -> ReaderTraining | None:
    """The :class:`ReaderTraining` of the first co-training wrapper around ``env`` (None: frozen)."""
    while env is not None:
        if isinstance(env, (CoTrainReader, CoTrainReaderVector)):
            return env.training
        env = getattr(env, "env", None)
    return None
