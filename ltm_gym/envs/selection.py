"""The selection action (``action_mode="select"``): the agent chooses WHERE, a fixed code says WHAT.

The action is a score for each of the current segment's L positions and for each of the previous
memory's ``n_slots`` slots (the "keep" choices): ``Box(-1, 1, (L + n_slots,))``. The env keeps the
``n_slots`` highest scores (ties: the earlier index), in index order: segment positions first,
then kept slots. A chosen position p becomes the slot

    code(p) = v / max|v|,   v = P [E(s_p); E(s_{p-1})]

with E the LM's input embedding (s_{-1} = BOS), P a fixed slot_dim x 2H matrix drawn from a
seeded N(0, 1 / 2H): the token at p and its predecessor, so a slot that holds "KEY VALUE" tells the
reader both which key and which value. Every entry lies in [-1, 1]; the memory is
``action_scale * code``. A kept slot is copied unchanged from the previous memory, which is how a
fact can survive more than one segment.
"""

from __future__ import annotations

import numpy as np
import torch

from ltm_gym.lm import LLMLTM

CODE_SEED = 20_011


def selection_projection(slot_dim: int, hidden: int, seed: int = CODE_SEED) -> torch.Tensor:
    """P: (slot_dim, 2 * hidden), a pure function of the seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(slot_dim, 2 * hidden, generator=g) / (2 * hidden) ** 0.5


class SelectionCode:
    """Turns chosen positions of segments into memory slots (see the module docstring)."""

    def __init__(self, model: LLMLTM) -> None:
        self.model = model
        self.P = selection_projection(model.mem_cfg.slot_dim, model.hidden)

    @torch.no_grad()
    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        """The code of every position of segments ``ids`` (N, L): (N, L, slot_dim), in [-1, 1]."""
        emb = self.model.lm.get_input_embeddings().weight.detach().float().cpu()
        prev = torch.cat([ids.new_full((ids.shape[0], 1), self.model.bos_token_id), ids[:, :-1]], dim=1)
        pair = torch.cat([emb[ids.cpu()], emb[prev.cpu()]], dim=-1)              # (N, L, 2H)
        v = pair @ self.P.T                                                      # (N, L, d)
        return v / v.abs().amax(-1, keepdim=True).clamp_min(1e-12)

    def write(self, memory: np.ndarray, scores: np.ndarray, ids: torch.Tensor, scale: float) -> np.ndarray:
        """New memories (N, m, d) from previous ``memory`` (N, m, d), ``scores`` (N, L + m) and
        the current segments ``ids`` (N, L)."""
        N, m, _ = memory.shape
        L = ids.shape[1]
        chosen = np.sort(np.argsort(-scores, axis=1, kind="stable")[:, :m], axis=1)   # (N, m)
        pool = np.concatenate([self.codes(ids).numpy() * scale, memory], axis=1)      # (N, L + m, d)
        assert pool.shape[1] == L + m
        return np.take_along_axis(pool, chosen[:, :, None], axis=1).astype(np.float32)
