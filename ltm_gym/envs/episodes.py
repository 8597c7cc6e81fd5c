"""The episode logic of N memory-writing episodes, stepped together.

The single env is N = 1 of this, the vector env N > 1: both step through :meth:`Episodes.step`,
so they cannot disagree. Episode: one document; the observation at step t is segment s_t and the
memory m_{t-1}; the action writes m_t; the reward is computed AFTER the write, on s_{t+1}; the
episode terminates after the reward of the document's last segment, or is truncated after
``max_segments`` steps.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import numpy as np
import torch
from gymnasium import spaces

from .backend import MemoryLMBackend, RewardConfig

OBS_MODES = ("tokens", "hidden")
ACTION_MODES = ("full", "slot")


@dataclass
class EnvSettings:
    split: str = "train"
    reward: RewardConfig | None = None
    action_mode: Literal["full", "slot"] = "full"
    """full: Box(-1, 1, (n_slots, slot_dim)) is the new memory; slot: Box(-1, 1, (slot_dim + 1,)),
    the first number picks a slot (n_slots equal bins of [-1, 1]) and the rest is written into it."""
    action_scale: float = 1.0
    """Memory values are ``action_scale * action``."""
    obs_mode: Literal["tokens", "hidden"] = "tokens"
    max_segments: int | None = None

    def validate(self) -> None:
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={self.action_mode!r}; allowed: {ACTION_MODES}")
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={self.obs_mode!r}; allowed: {OBS_MODES}")
        if not self.action_scale > 0:
            raise ValueError(f"action_scale={self.action_scale} must be > 0")
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError(f"max_segments={self.max_segments} must be >= 1 or None")
        if self.reward is None:
            self.reward = RewardConfig()
        self.reward.validate()


def make_spaces(backend: MemoryLMBackend, s: EnvSettings) -> tuple[spaces.Dict, spaces.Box]:
    """Observation and action space of ONE env."""
    m, d = backend.n_slots, backend.slot_dim
    memory = spaces.Box(-s.action_scale, s.action_scale, (m, d), np.float32)
    if s.obs_mode == "tokens":
        seg = spaces.Box(0, backend.vocab_size - 1, (backend.segment_len,), np.int64)
        obs = spaces.Dict({"tokens": seg, "memory": memory})
    else:
        bound = hidden_bound(backend.model.lm)
        obs = spaces.Dict({"hidden": spaces.Box(-bound, bound, (backend.model.hidden,), np.float32),
                           "memory": memory})
    shape = (m, d) if s.action_mode == "full" else (d + 1,)
    return obs, spaces.Box(-1.0, 1.0, shape, np.float32)


@contextlib.contextmanager
def final_hidden(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the LM's final hidden states (the input of its output layer) during a forward."""
    captured: list[torch.Tensor] = []
    handle = model.lm.get_output_embeddings().register_forward_hook(
        lambda mod, inp, out: captured.append(inp[0].detach()))
    try:
        yield captured
    finally:
        handle.remove()


def pool(captured: list[torch.Tensor]) -> np.ndarray:
    """Mean over the segment's tokens (BOS left out) of captured final hidden states: (N, H)."""
    return captured[0][:, 1:].float().mean(1).cpu().numpy()


def write_memory(memory: np.ndarray, actions: np.ndarray, action_mode: str, scale: float) -> np.ndarray:
    """The memories (N, m, d) that actions write: ``full`` replaces all of it, ``slot`` overwrites
    the slot picked by the action's first number (n_slots equal bins of [-1, 1]) with the rest."""
    actions = np.clip(actions, -1, 1)
    if action_mode == "full":
        return (actions * scale).astype(np.float32)
    m = memory.shape[1]
    slot = np.minimum(((actions[:, 0] + 1) / 2 * m).astype(np.int64), m - 1)
    new = memory.copy()
    new[np.arange(len(actions)), slot] = actions[:, 1:] * scale
    return new


def hidden_bound(lm: torch.nn.Module) -> float:
    """A finite bound of the LM's final hidden states: its last LayerNorm maps every vector to
    norm sqrt(H), so |x| <= sqrt(H) max|gamma| + max|beta| (doubled as a margin for co-training)."""
    norms = [m for m in lm.modules() if isinstance(m, torch.nn.LayerNorm)]
    if not norms:
        return 1e6
    ln = norms[-1]
    w = float(ln.weight.abs().max()) if ln.weight is not None else 1.0
    b = float(ln.bias.abs().max()) if ln.bias is not None else 0.0
    return 2.0 * (ln.normalized_shape[-1] ** 0.5 * w + b)


class Episodes:
    """State of N episodes (document, segment index, memory, steps) and their batched step."""

    def __init__(self, backend: MemoryLMBackend, settings: EnvSettings, n: int) -> None:
        settings.validate()
        self.backend, self.s, self.n = backend, settings, n
        self.obs_space, self.act_space = make_spaces(backend, settings)
        self.doc = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.memory = np.zeros((n, backend.n_slots, backend.slot_dim), dtype=np.float32)
        self.hidden = np.zeros((n, backend.model.hidden), dtype=np.float32)
        self.last_reward = np.zeros(n, dtype=np.float64)
        self.mimic_d = np.zeros(n, dtype=np.float64)

    @property
    def docs(self):
        return self.backend.docs(self.s.split)

    # ------------------------------------------------------------------ validation
    def check_actions(self, actions: Any) -> np.ndarray:
        """(n, *action_shape) float32 copy of valid actions, or a ValueError naming the problem."""
        shape = (self.n, *self.act_space.shape)
        if not isinstance(actions, (np.ndarray, torch.Tensor)):
            actions = np.asarray(actions)
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        if actions.dtype.kind != "f":
            raise ValueError(f"action dtype is {actions.dtype}; expected a float array (float32)")
        if actions.shape != shape:
            raise ValueError(f"action shape is {actions.shape}; expected {shape}")
        bad = ~np.isfinite(actions)
        if bad.any():
            kind = "NaN" if np.isnan(actions).any() else "inf"
            raise ValueError(f"action holds {int(bad.sum())} non-finite values ({kind}); the env state is unchanged")
        worst = float(np.abs(actions).max()) if actions.size else 0.0
        if worst > 1.0 + 1e-6:
            raise ValueError(f"action value {worst:.4g} is outside the action space [-1, 1]; clip or squash it")
        return actions.astype(np.float32, copy=True)

    def written_memory(self, actions: np.ndarray) -> np.ndarray:
        return write_memory(self.memory, actions, self.s.action_mode, self.s.action_scale)

    # ------------------------------------------------------------------ reset / step
    def reset_one(self, i: int, rng: np.random.Generator, document: int | None) -> None:
        docs = self.docs
        if document is None:
            document = int(rng.integers(len(docs)))
        elif not 0 <= document < len(docs):
            raise ValueError(f"document={document} is out of range: split {self.s.split!r} has {len(docs)} documents")
        self.doc[i], self.t[i], self.steps[i] = document, 0, 0
        self.memory[i] = 0.0
        self.last_reward[i] = 0.0
        if self.s.reward.mode == "mimic":
            self.mimic_d[i] = float(self.backend.mimic_distance(torch.from_numpy(self.memory[i : i + 1]))[0])
        if self.s.obs_mode == "hidden":
            ids = docs[document].ids[0][None]
            self.hidden[i] = self._pooled_hidden(ids, torch.from_numpy(self.memory[i : i + 1]))[0]

    def _pooled_hidden(self, ids: torch.Tensor, memory: torch.Tensor) -> np.ndarray:
        """The observation of ``obs_mode="hidden"`` for segments read with ``memory``."""
        b = self.backend
        with torch.no_grad(), final_hidden(b.model) as captured:
            b.model(ids.to(b.device), memory.to(b.device))
        return pool(captured)

    def observation(self, i: int) -> dict[str, np.ndarray]:
        """Fresh arrays for env i (never views of internal state)."""
        if self.s.obs_mode == "tokens":
            first = {"tokens": self.docs[self.doc[i]].ids[self.t[i]].numpy().astype(np.int64, copy=True)}
        else:
            first = {"hidden": self.hidden[i].copy()}
        return {**first, "memory": self.memory[i].copy()}

    # ------------------------------------------------------------------ the reward
    def next_segments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and answer masks (n, L) of every env's next segment s_{t+1}."""
        docs, nxt = self.docs, self.t + 1
        ids = torch.stack([docs[d].ids[t] for d, t in zip(self.doc, nxt)])
        mask = torch.stack([docs[d].answer_mask[t] for d, t in zip(self.doc, nxt)])
        return ids, mask

    def draw_lengths(self, rngs: list[np.random.Generator]) -> torch.Tensor | None:
        """The k prefix lengths of every env (prefix mode; None otherwise), env i from ``rngs[i]``."""
        if self.s.reward.mode != "prefix":
            return None
        L = self.backend.segment_len
        return torch.from_numpy(np.stack([r.integers(1, L + 1, size=self.s.reward.k) for r in rngs]))

    def reward_terms(self, memory: torch.Tensor, lengths: torch.Tensor | None = None,
                     grad: bool = False) -> dict[str, torch.Tensor]:
        """Reward terms of memories (n, m, d) on the next segments: what :meth:`step` scores, and,
        with ``grad=True``, the differentiable reward path (gradients flow back to ``memory``).
        The scored segments come back as ``ids`` and ``answer_mask``."""
        mode = self.s.reward.mode
        if mode == "mimic":
            raise ValueError("reward mode 'mimic' has no LM reward path")
        if memory.shape != (self.n, self.backend.n_slots, self.backend.slot_dim):
            raise ValueError(f"memory shape is {tuple(memory.shape)}; expected "
                             f"{(self.n, self.backend.n_slots, self.backend.slot_dim)}")
        if mode == "prefix" and lengths is None:
            raise ValueError("reward mode 'prefix' needs the prefix lengths (n, k)")
        ids, mask = self.next_segments()
        base = None
        if mode == "delta":
            keys = [(int(d), int(t), self.s.split) for d, t in zip(self.doc, self.t + 1)]
            base = self.backend.no_memory_ce(ids, keys)
        terms = self.backend.reward_terms(memory, ids, mask, mode, lengths, grad=grad, no_memory_ce=base)
        return {**terms, "ids": ids, "answer_mask": mask}

    def step(self, actions: Any, rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Validate, write, reward on the next segments (one batched forward), advance. Env i draws
        its prefix lengths from ``rngs[i]``.

        Returns rewards (n,), terminated (n,), truncated (n,), infos. Nothing changes if the
        actions are invalid.
        """
        actions = self.check_actions(actions)
        memory = self.written_memory(actions)
        docs = self.docs
        nxt = self.t + 1
        mode = self.s.reward.mode
        b = self.backend
        infos: list[dict] = [{} for _ in range(self.n)]
        mem_t = torch.from_numpy(memory)
        if mode == "mimic":
            d_new = b.mimic_distance(mem_t).cpu().numpy().astype(np.float64)
            rewards = self.mimic_d - d_new
            self.mimic_d = d_new
            for i in range(self.n):
                infos[i]["mimic_distance"] = float(d_new[i])
            if self.s.obs_mode == "hidden":  # no reward forward to reuse here
                self.hidden = self._pooled_hidden(self.next_segments()[0], mem_t)
        else:
            lengths = self.draw_lengths(rngs)
            # the next observation's hidden states come from the reward's own forward
            capture = final_hidden(b.model) if self.s.obs_mode == "hidden" else contextlib.nullcontext([])
            with capture as captured:
                terms = self.reward_terms(mem_t, lengths)
            rewards = terms["reward"].detach().double().cpu().numpy()
            metrics = b.segment_metrics(terms["logits"], terms["ids"], terms["losses"], terms["answer_mask"])
            if b.lm_update:
                lm_loss = b.update_lm(terms["losses"])
            for i in range(self.n):
                infos[i].update(metrics[i])
                if lengths is not None:
                    infos[i]["prefix_lengths"] = lengths[i].numpy().copy()
                if b.lm_update:
                    infos[i]["lm_loss"] = lm_loss
            if self.s.obs_mode == "hidden":
                self.hidden = pool(captured)
        self.memory = memory
        self.t = nxt
        self.steps += 1
        self.last_reward = rewards.copy()
        n_seg = np.array([docs[d].n_segments for d in self.doc])
        terminated = self.t >= n_seg - 1
        limit = self.s.max_segments
        truncated = ~terminated & (self.steps >= limit) if limit else np.zeros(self.n, dtype=bool)
        for i in range(self.n):
            infos[i].update({"document": int(self.doc[i]), "segment": int(self.t[i])})
        return rewards, terminated, truncated, infos

    def render_text(self, i: int) -> str:
        """The ansi rendering of env i: segment text, memory statistics, last reward."""
        ids = self.docs[self.doc[i]].ids[self.t[i]]
        tok = self.backend.tokenizer
        text = tok.decode(ids.tolist()) if tok is not None else " ".join(map(str, ids.tolist()))
        m = self.memory[i]
        norms = np.linalg.norm(m, axis=1)
        return (f"document {self.doc[i]}  segment {self.t[i]}  step {self.steps[i]}  last reward {self.last_reward[i]:+.4f}\n"
                f"segment: {text.strip()}\n"
                f"memory: mean {m.mean():+.3f} std {m.std():.3f} min {m.min():+.3f} max {m.max():+.3f}  "
                f"slot norms [{' '.join(f'{x:.2f}' for x in norms)}]\n")


class DifferentiableReward:
    """The differentiable reward path of the single and the vector env (both hold ``episodes``)."""

    episodes: Episodes
    _needs_reset: bool

    def differentiable_reward(self, memory: torch.Tensor, prefix_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The reward ``step`` would give for writing ``memory`` (num_envs, n_slots, slot_dim) now,
        as a tensor with gradients back to ``memory`` (the pathwise gradient a differentiable
        writer trains on). ``prefix_lengths`` (num_envs, k) is needed in prefix mode. The env does
        not advance."""
        if self._needs_reset:
            raise RuntimeError("call reset() before differentiable_reward()")
        return self.episodes.reward_terms(memory, prefix_lengths, grad=True)["reward"]
