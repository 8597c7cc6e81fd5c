"""How the LM reads its memory, and the fixed projection A shared by hypotheses 1 and 2.

* :class:`MemoryCrossAttention`: a cross-attention sub-layer after a transformer block; queries are
  the block's hidden states, keys and values the memory projected 64 -> hidden. Its output
  projection starts at zero, so an untrained LLM-LTM computes exactly what the base LM computes.
* prefix: the projected memory is prepended to the token embeddings as soft tokens.
* tokens: each slot spells the window of tokens it was selected with (:func:`window_code`), and the
  LM reads those windows as text before the segment, oldest slot first: a selection memory read
  the way the LM reads its own context (the oracle's facts in context, a memory agent's notes).
* :func:`fixed_projection`: A, a seeded random slot_dim -> hidden matrix. Hypothesis 1 rewards
  memories whose images A m lie close to token embeddings; hypothesis 2 fills memory with
  pinv(A) applied to pooled embeddings of the previous segment (:func:`embedding_memory`).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from ltm_gym.core.errors import UserError


def fixed_projection(slot_dim: int, hidden: int, seed: int = 0) -> torch.Tensor:
    """A: (hidden, slot_dim), entries N(0, 1 / slot_dim), a pure function of the seed."""
    g = torch.Generator().manual_seed(10_007 + seed)
    return torch.randn(hidden, slot_dim, generator=g) / math.sqrt(slot_dim)


class MemoryCrossAttention(nn.Module):
    """h + s W_o softmax(q(LN h) k(M)^T / sqrt(d)) v(M), with W_o = 0 at init and a fixed scale s.

    ``scale`` s sets how fast the read can grow against the residual stream it is added to: a
    real LM's last blocks carry states of RMS ~30-50 (SmolLM2-135M) where a tiny one's are ~1, and
    an optimizer moves W_o by about its learning rate a step whatever the stream's size.

    ``code_dim`` > 0 adds a second term to the query, W_c c_p, from each position's own selection
    code c_p (:func:`selection_codes`): the same fixed code a selection memory's slots hold, so the
    reader can match "the tokens before me" to a slot directly, not only through what the LM's
    blocks mixed into h."""

    def __init__(self, hidden: int, n_head: int, scale: float = 1.0, code_dim: int = 0) -> None:
        super().__init__()
        if hidden % n_head:
            raise UserError(f"hidden size {hidden} is not a multiple of n_head={n_head}")
        self.n_head = n_head
        self.scale = scale
        self.ln = nn.LayerNorm(hidden)
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.code_q = nn.Linear(code_dim, hidden, bias=False) if code_dim else None
        self.o = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.o.bias)

    def project(self, h: torch.Tensor, mem: torch.Tensor, codes: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, nh, L, hs) of hidden states ``h`` (B, L, H) and their ``codes`` (B, L,
        code_dim; needed exactly when ``code_dim`` > 0); keys and values (B, nh, m, hs) of the
        projected memory ``mem`` (B, m, H)."""
        B, L, H = h.shape
        nh, hs = self.n_head, H // self.n_head
        q = self.q(self.ln(h))
        if self.code_q is not None:
            if codes is None or codes.shape[:2] != (B, L):
                raise UserError(f"a reader with query codes needs codes of shape ({B}, {L}, d), got "
                                f"{None if codes is None else tuple(codes.shape)}")
            q = q + self.code_q(codes.to(q.dtype))
        q = q.view(B, L, nh, hs).transpose(1, 2)                                  # (B, nh, L, hs)
        k, v = self.kv(mem.to(h.dtype)).split(H, dim=-1)
        k = k.view(B, -1, nh, hs).transpose(1, 2)                               # (B, nh, m, hs)
        v = v.view(B, -1, nh, hs).transpose(1, 2)
        return q, k, v

    def forward(self, h: torch.Tensor, mem: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """h: (B, L, H) hidden states; mem: (B, m, H) projected memory; codes: (B, L, code_dim),
        the positions' own selection codes (needed exactly when ``code_dim`` > 0)."""
        B, L, H = h.shape
        y = F.scaled_dot_product_attention(*self.project(h, mem, codes))
        out = self.o(y.transpose(1, 2).reshape(B, L, H))
        return h + (out if self.scale == 1.0 else self.scale * out)

    def log_attention(self, h: torch.Tensor, mem: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """(B, nh, L, m): the log of how much each position's read takes from each slot (the softmax
        that :meth:`forward` computes fused), for an auxiliary loss on where the reader looks."""
        q, k, _ = self.project(h, mem, codes)
        return torch.log_softmax((q @ k.transpose(-1, -2)).float() / math.sqrt(q.shape[-1]), dim=-1)


def embedding_memory(embeddings: torch.Tensor, n_slots: int, A: torch.Tensor) -> torch.Tensor:
    """Hypothesis-2 memory: token embeddings (B, L, H) mean-pooled into ``n_slots`` contiguous
    chunks, mapped to slot space through pinv(A): (B, n_slots, slot_dim)."""
    B, L, H = embeddings.shape
    if L < n_slots:
        raise UserError(f"cannot pool {L} tokens into {n_slots} memory slots")
    bounds = torch.linspace(0, L, n_slots + 1).round().long().tolist()
    pooled = torch.stack([embeddings[:, a:b].mean(1) for a, b in zip(bounds[:-1], bounds[1:])], dim=1)
    return pooled @ torch.linalg.pinv(A.to(pooled.dtype)).T


def previous_segment_memory(model: nn.Module, prev_ids: torch.Tensor) -> torch.Tensor:
    """Hypothesis-2 memory of a batch of previous segments ``prev_ids`` (B, L) for an LLM-LTM
    ``model``: its token embeddings pooled into ``n_slots`` chunks through pinv(A): (B, n_slots, slot_dim)."""
    m = model.mem_cfg
    A = fixed_projection(m.slot_dim, model.hidden, m.projection_seed).to(prev_ids.device)
    with torch.no_grad():
        return embedding_memory(model.token_embeddings(prev_ids).float(), m.n_slots, A)


SELECTION_SEED = 20_011


@functools.lru_cache(maxsize=8)
def selection_projection(slot_dim: int, hidden: int, seed: int = SELECTION_SEED, context: int = 1) -> torch.Tensor:
    """P: (slot_dim, (context + 1) * hidden), entries N(0, 1 / ((context + 1) H)), a pure function
    of the seed and the shape: drawn once per shape (every forward with ``query_code`` needs it),
    read-only."""
    g = torch.Generator().manual_seed(seed)
    width = (context + 1) * hidden
    return torch.randn(slot_dim, width, generator=g) / math.sqrt(width)


@torch.no_grad()
def selection_codes(model: nn.Module, ids: torch.Tensor, before: torch.Tensor | None = None) -> torch.Tensor:
    """The selection-memory code of every position of segments ``ids`` (B, L) for an LLM-LTM
    ``model``: v / max|v|, v = P [E(s_p); E(s_{p-1}); ...; E(s_{p-c})] (E the LM's input embedding,
    c = ``memory.code_context``; ``before`` (B, c): the document's tokens before each segment,
    :func:`tokens_before`, BOS when not given): (B, L, slot_dim) in [-1, 1]. A slot that
    holds it tells the reader the token and the c before it: with c = 1 and one token per word,
    "KEY VALUE"; a tokenizer that cuts a key and a number into several tokens needs c to reach
    from the number's digits back over the key.

    With ``memory.spelled`` (or ``read_path: tokens``) the last c + 2 entries spell the window out
    instead (:func:`window_code`): the LM reads a slot as the tokens it holds (:func:`slot_windows`)."""
    emb = model.lm.get_input_embeddings().weight.detach().float()
    c = model.mem_cfg.code_context
    spelled = model.mem_cfg.spells
    width = model.mem_cfg.slot_dim - (c + 2 if spelled else 0)
    P = selection_projection(width, model.hidden, context=c).to(emb.device)
    before = None if before is None else before.to(emb.device)
    windows = token_windows(ids.to(emb.device), c, model.bos_token_id, before)    # (B, L, c + 1), oldest first
    v = emb[windows.flip(-1)].flatten(-2) @ P.T                                  # [E(s_p); E(s_{p-1}); ...] P^T
    v = v / v.abs().amax(-1, keepdim=True).clamp_min(1e-12)
    if not spelled:
        return v
    return torch.cat([v, window_code(windows, emb.shape[0])], dim=-1)


def token_windows(ids: torch.Tensor, context: int, bos_token_id: int,
                  before: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L, context + 1): at each position of ``ids`` (B, L), the token and the ``context``
    before it, oldest first: what a slot selected there holds. ``before`` (B, context): the tokens
    that precede each segment (:func:`tokens_before`); BOS when not given."""
    if before is None:
        before = ids.new_full((ids.shape[0], context), bos_token_id)
    if before.shape != (ids.shape[0], context):
        raise UserError(f"before has shape {tuple(before.shape)}; expected ({ids.shape[0]}, {context})")
    padded = torch.cat([before.to(ids), ids], dim=1)
    L = ids.shape[1]
    return torch.stack([padded[:, j : j + L] for j in range(context + 1)], dim=-1)


def tokens_before(doc_ids: torch.Tensor, segments: torch.Tensor | list[int], context: int,
                  bos_token_id: int) -> torch.Tensor:
    """(S, context): the ``context`` tokens of a document ``doc_ids`` (T, L) right before each of
    its ``segments`` (the previous segment's last ones; BOS before the document's start), so that
    a slot selected near a segment's start spells the fact that began in the segment before."""
    flat, L = doc_ids.reshape(-1), doc_ids.shape[1]                             # a view: nothing copied
    segments = [int(s) for s in torch.as_tensor(segments).reshape(-1)]
    out = doc_ids.new_full((len(segments), context), bos_token_id)
    for row, start in enumerate(s * L for s in segments):
        take = min(context, start)
        if take:
            out[row, context - take:] = flat[start - take:start]
    return out


def window_code(windows: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(..., c + 1) token windows, oldest first, as (..., c + 2) numbers in [0, 1]: a marker 1 (0
    in an empty slot) and each token id / (V - 1). A slot scaled by any factor decodes the same
    (:func:`slot_windows` divides by the marker); float32 spells ids exactly up to V ~ 10^6."""
    ids = windows.float() / max(1, vocab_size - 1)
    return torch.cat([torch.ones_like(ids[..., :1]), ids], dim=-1)


def slot_windows(memory: torch.Tensor, context: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The token windows a spelled memory (B, m, d) holds (:func:`window_code`): ids (B, m, c + 1)
    and whether each slot holds one (B, m); an empty slot (marker 0) holds none."""
    spelled = memory[..., memory.shape[-1] - context - 2 :].float()
    marker = spelled[..., 0]
    held = marker.abs() > 1e-6
    ratio = spelled[..., 1:] / torch.where(held, marker, torch.ones_like(marker))[..., None]
    ids = (ratio * (vocab_size - 1)).round().clamp(0, vocab_size - 1).long()
    return ids, held
