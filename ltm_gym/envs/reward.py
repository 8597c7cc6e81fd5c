"""The one reward of the memory environments, with one dispatch over its modes.

:class:`Reward` scores N memories on the N next segments. ``step`` calls it once per step, the
differentiable path calls it with ``grad=True`` (gradients flow back to the memories), and batched
scoring of K candidate memories per state flattens them into one call: all are the same code.

Modes (``RewardConfig.mode``), after the write, on the next segment s_{t+1}:

* ``prefix`` (the default): the study's prefix reward in expectation over the prefix length l
  uniform in [1, L]: -E_l L(s_{t+1}[0:l] | m_t) = -sum_t w_t L_t with w_t = (1/L) sum_{l=t}^{L} 1/l,
  exact, from one forward: the same weighting as the study's, without its sampling noise (which
  made it learn a seventh of what the full loss teaches, docs/agents.md);
* ``prefix_sampled`` (the study's protocol): -(1/k) sum_i L(s_{t+1}[0:l_i] | m_t), l_i drawn
  uniform in [1, L], all k prefixes from ONE forward (a causal LM's prefix loss is a cumulative
  mean of its token losses);
* ``full``: -CE of s_{t+1}; ``answer``: -CE of its answer tokens (synthetic recall corpus);
* ``delta``: CE of s_{t+1} without memory minus CE with it (the no-memory token losses are cached
  per model revision, :attr:`MemoryLMBackend.revision`);
* ``gain``: per-token credit without labels: each token's loss change g_t = L_t(no memory) -
  L_t(memory), soft-thresholded, sum_t sign(g_t) max(|g_t| - tau, 0) with tau = ``gain_threshold``
  nats. ``delta`` averages g_t over the segment, where a few tokens that memory makes predictable
  (an answer) weigh no more than the many small changes it makes elsewhere; the threshold keeps
  only the changes a memory makes on purpose;
* ``mimic``: d_{t-1} - d_t, d_t = sum_i min_j ||A m_{t,i} - emb_j|| (hypothesis 1; no LM forward
  unless hidden states are wanted for the observation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ltm_gym.core import check
from ltm_gym.lm import fixed_projection
from ltm_gym.metrics import prefix_losses

from .backend import MemoryLMBackend
from ltm_gym.core.errors import UserError

REWARD_MODES = ("prefix", "prefix_sampled", "full", "answer", "delta", "gain", "mimic")


@dataclass
class RewardConfig:
    mode: Literal["prefix", "prefix_sampled", "full", "answer", "delta", "gain", "mimic"] = "prefix"
    """See the module docstring."""
    k: int = 4
    """Random prefixes per reward (``prefix_sampled``)."""
    gain_threshold: float = 1.0
    """tau of ``gain``: a token's loss change below it (in nats) is not credited."""

    def validate(self) -> None:
        check(self.mode in REWARD_MODES, "reward_mode", self.mode, ", ".join(REWARD_MODES))
        check(self.k >= 1, "k", self.k, ">= 1")
        check(self.gain_threshold >= 0, "gain_threshold", self.gain_threshold, ">= 0")


@dataclass
class Segments:
    """What the reward of N memories is scored on: the next segments and what each mode needs."""

    ids: torch.Tensor
    """(N, L) token ids of the next segments."""
    answer_mask: torch.Tensor
    """(N, L) bool, the answer tokens."""
    keys: list[tuple[int, int, str]]
    """(document, segment, split) of each row: the no-memory losses' cache key (delta, gain)."""
    lengths: torch.Tensor | None = None
    """(N, k) prefix lengths (prefix mode)."""
    prev_distance: torch.Tensor | None = None
    """(N,) d_{t-1} (mimic mode)."""
    answer_distance: torch.Tensor | None = None
    """(N, L) the distance of the fact each answer token asks (task documents; metrics only)."""

    def repeat(self, times: int) -> "Segments":
        """The same N rows ``times`` times over (K candidates per state -> K * N rows)."""
        rep = lambda x: None if x is None else x.repeat(times, *([1] * (x.dim() - 1)))  # noqa: E731
        return Segments(rep(self.ids), rep(self.answer_mask), self.keys * times, rep(self.lengths),
                        rep(self.prev_distance), rep(self.answer_distance))


def prefix_weights(L: int, like: torch.Tensor) -> torch.Tensor:
    """(L,) w_t = (1/L) sum_{l=t}^{L} 1/l: the expected mean loss of a prefix of uniform length l in
    1..L is sum_t w_t L_t (token t counts in every prefix at least t long, with weight 1/l)."""
    inv = 1.0 / torch.arange(1, L + 1, dtype=like.dtype, device=like.device)
    return inv.flip(0).cumsum(0).flip(0) / L


class Reward:
    """The reward of a :class:`MemoryLMBackend` in one mode (see the module docstring)."""

    def __init__(self, backend: MemoryLMBackend, cfg: RewardConfig) -> None:
        cfg.validate()
        self.backend, self.cfg = backend, cfg
        model = backend.model
        A = fixed_projection(model.mem_cfg.slot_dim, model.hidden, model.mem_cfg.projection_seed)
        self._A = A.to(backend.device)
        self._no_memory: dict[tuple[int, int, str], tuple[int, torch.Tensor]] = {}  # key -> (revision, (L,) losses)
        self.shared_trunk = True
        """K candidates share the memory-free blocks in :meth:`candidates` when the LM allows it
        (off: one plain forward per candidate, the reference of ``scripts/bench_env.py``)."""

    @property
    def mode(self) -> str:
        return self.cfg.mode

    @property
    def uses_lm(self) -> bool:
        return self.cfg.mode != "mimic"

    def draw_lengths(self, rngs: list[np.random.Generator]) -> torch.Tensor | None:
        """The k prefix lengths of every row (``prefix_sampled``; None otherwise), row i from ``rngs[i]``."""
        if self.cfg.mode != "prefix_sampled":
            return None
        L = self.backend.segment_len
        return torch.from_numpy(np.stack([r.integers(1, L + 1, size=self.cfg.k) for r in rngs]))

    def distance(self, memory: torch.Tensor) -> torch.Tensor:
        """d = sum_i min_j ||A m_i - emb_j|| per memory: (N, m, d) -> (N,)."""
        emb = self.backend.model.lm.get_input_embeddings().weight.detach()
        points = memory.to(self.backend.device, emb.dtype) @ self._A.T.to(emb.dtype)   # (N, m, H)
        dist = torch.cdist(points, emb[None].expand(points.shape[0], -1, -1))           # (N, m, V)
        return dist.min(-1).values.sum(-1)

    def __call__(self, memory: torch.Tensor, seg: Segments, grad: bool = False,
                 want_hidden: bool = False) -> dict[str, torch.Tensor]:
        """Reward (N,) of memories (N, m, d) on ``seg``, plus what was computed on the way:
        ``losses`` (N, L) and ``logits`` (N, L, V) of the LM forward, ``hidden`` (N, L, H) with
        ``want_hidden``, ``distance`` (N,) in mimic mode. With ``grad=True`` the reward keeps its
        graph back to ``memory``; otherwise it runs without one."""
        b, mode = self.backend, self.cfg.mode
        memory = memory.to(b.device)
        out: dict[str, torch.Tensor] = {}
        if mode == "mimic":
            if seg.prev_distance is None:
                raise UserError("reward mode 'mimic' needs the previous distance d_{t-1}")
            with torch.set_grad_enabled(grad):
                out["distance"] = self.distance(memory)
            out["reward"] = seg.prev_distance.to(out["distance"]) - out["distance"]
            if not want_hidden:
                return out
        ids = seg.ids.to(b.device)
        with torch.set_grad_enabled(grad):
            forward = b.model(ids, memory, return_hidden=want_hidden)
        out["logits"], out["losses"] = forward[0], forward[1]
        if want_hidden:
            out["hidden"] = forward[2].detach()
        if mode != "mimic":                      # mimic's reward is the distance's, computed above
            out["reward"] = self.from_losses(out["losses"], seg)
        return out

    def from_losses(self, losses: torch.Tensor, seg: Segments) -> torch.Tensor:
        """The reward (N,) of the token losses (N, L) of ``seg``'s rows (LM modes)."""
        b, mode = self.backend, self.cfg.mode
        if mode == "prefix":
            return -(losses * prefix_weights(losses.shape[1], losses)).sum(1)
        if mode == "prefix_sampled":
            if seg.lengths is None:
                raise UserError("reward mode 'prefix_sampled' needs the prefix lengths (N, k)")
            return -prefix_losses(losses, seg.lengths.to(b.device)).mean(1)
        if mode == "answer":
            m = seg.answer_mask.to(b.device).float()
            return -(losses * m).sum(1) / m.sum(1).clamp(min=1)
        if mode in ("delta", "gain"):
            g = self.no_memory_losses(seg.ids, seg.keys).to(losses) - losses     # (N, L) per-token gains
            if mode == "delta":
                return g.mean(1)
            return (g.sign() * (g.abs() - self.cfg.gain_threshold).clamp(min=0)).sum(1)
        if mode == "full":
            return -losses.mean(1)
        raise UserError(f"reward mode {mode!r} is not a function of the LM's token losses")

    def needed_positions(self, seg: Segments) -> torch.Tensor | None:
        """(N, L) bool: the tokens whose loss the reward reads (None: all of them)."""
        if self.cfg.mode == "answer":
            return seg.answer_mask
        if self.cfg.mode == "prefix_sampled" and seg.lengths is not None:
            return torch.arange(seg.ids.shape[1])[None] < seg.lengths.max(1, keepdim=True).values
        return None

    def candidates(self, memories: torch.Tensor, seg: Segments) -> torch.Tensor:
        """Rewards (K, N) of K candidate memories (K, N, m, d) for ``seg``'s N rows, without a
        graph: the rewards of :meth:`__call__` on each candidate (up to float rounding). With a
        cross-attention reader on a family whose forward is cut (:attr:`LLMLTM.shares_trunk`) and
        :attr:`shared_trunk` on, the blocks below the memory read run once for the N segments
        and the output layer only where the reward reads a loss."""
        K, N = memories.shape[:2]
        b = self.backend
        if not (self.uses_lm and self.shared_trunk and b.model.shares_trunk):
            flat = memories.reshape(K * N, *memories.shape[2:])
            return self(flat, seg.repeat(K))["reward"].view(K, N)
        positions = self.needed_positions(seg)
        with torch.no_grad():
            losses = b.model.candidate_losses(seg.ids.to(b.device), memories.to(b.device),
                                              None if positions is None else positions.to(b.device))
        return self.from_losses(losses.reshape(K * N, -1), seg.repeat(K)).view(K, N)

    def no_memory_losses(self, ids: torch.Tensor, keys: list[tuple[int, int, str]]) -> torch.Tensor:
        """(N, L) token losses of segments without memory, cached per key and model revision; a key
        repeated in ``keys`` (K candidates of one state) is computed once."""
        b = self.backend
        first = {k: i for i, k in reversed(list(enumerate(keys)))}         # key -> its first row
        missing = [i for k, i in first.items() if self._no_memory.get(k, (-1, None))[0] != b.revision]
        if missing:
            with torch.no_grad():
                _, losses = b.model(ids[missing].to(b.device))
            for i, row in zip(missing, losses.float().cpu()):
                self._no_memory[keys[i]] = (b.revision, row)
        return torch.stack([self._no_memory[k][1] for k in keys])
