"""The selection action (``action_mode="select"``): the agent chooses WHERE, a fixed code says WHAT.

The action is a score for each of the current segment's L positions and for each of the previous
memory's ``n_slots`` slots (the "keep" choices): ``Box(-1, 1, (L + n_slots,))``. The env keeps the
``n_slots`` highest scores (ties: the earlier index), in index order: segment positions first,
then kept slots. A chosen position p becomes the slot :func:`ltm_gym.lm.selection_codes` gives it,

    code(p) = v / max|v|,   v = P [E(s_p); E(s_{p-1})]

with E the LM's input embedding (s_{-1} = BOS) and P a fixed slot_dim x 2H matrix drawn from a
seeded N(0, 1 / 2H): the token at p and its predecessor, so a slot that holds "KEY VALUE" tells the
reader both which key and which value. Every entry lies in [-1, 1]; the memory is
``action_scale * code``. A kept slot is copied unchanged from the previous memory, which is how a
fact can survive more than one segment. A slot never written (all zeros, as every slot is after a
reset) cannot be kept: keeping it stores nothing, and a policy that prefers keeping would otherwise
write nothing at all from an empty memory. The study's ``select`` LM stage trains a reader for it.
"""

from __future__ import annotations

import numpy as np
import torch

from ltm_gym.lm import LLMLTM, selection_codes, tokens_before


def is_selection(observation_space, action_space) -> bool:
    """Whether an env's spaces are a selection env's: token observations and one score per segment
    position and per previous slot (what an agent must check before it builds a selection policy)."""
    n_slots = observation_space["memory"].shape[0]
    return "tokens" in observation_space.spaces and \
        tuple(action_space.shape) == (observation_space["tokens"].shape[0] + n_slots,)


def top_choices(scores: np.ndarray, n: int, n_tokens: int = 0, spacing: int = 0) -> np.ndarray:
    """Indices (N, n) of the ``n`` highest scores of each row (ties: the earlier index), sorted.
    With ``spacing``, taken best first, each of the first ``n_tokens`` indices (a segment's
    positions) taken rules out those within ``spacing`` of it; the others are never ruled out."""
    if spacing <= 0 or n_tokens <= 0:
        return np.sort(np.argsort(-scores, axis=1, kind="stable")[:, :n], axis=1)
    rows = np.arange(len(scores))
    position = np.arange(scores.shape[1])
    left = scores.astype(np.float64, copy=True)
    chosen = np.empty((len(scores), n), dtype=np.int64)
    for i in range(n):
        chosen[:, i] = np.argmax(left, axis=1)                       # the earliest of the best
        c = chosen[:, i:i + 1]
        near = (np.abs(position - c) <= spacing) & (position < n_tokens) & (c < n_tokens)
        left[near | (position == c)] = -np.inf
        left[rows, chosen[:, i]] = -np.inf
    return np.sort(chosen, axis=1)


def segment_codes(model: LLMLTM, ids: torch.Tensor, scale: float, before: torch.Tensor | None = None) -> np.ndarray:
    """What each position of segments ``ids`` (N, L) would be stored as: its scaled code (N, L, d),
    its window reaching into the tokens ``before`` (N, c) each segment. The select-mode observation
    carries them, so a policy can see which slot holds a fact the segment states or asks again."""
    return (selection_codes(model, ids, before).cpu().numpy() * scale).astype(np.float32)


def candidate_slots(model: LLMLTM, memory: np.ndarray, ids: torch.Tensor, scale: float,
                    before: torch.Tensor | None = None) -> np.ndarray:
    """Every slot a selection can store (N, L + m, d): the scaled codes of the current segments'
    positions ``ids`` (N, L) (``before``: the tokens that precede them), then the previous
    ``memory`` (N, m, d)."""
    return np.concatenate([segment_codes(model, ids, scale, before), memory], axis=1)


def write_selection(candidates: np.ndarray, scores: np.ndarray, n_slots: int, spacing: int = 0) -> np.ndarray:
    """New memories (N, n_slots, d): the ``candidates`` (N, L + m, d) with the top ``scores`` (N, L + m)
    among those that hold something (an empty slot, all zeros, is chosen only when nothing else is
    left), the segment's positions ``spacing`` apart (:func:`top_choices`)."""
    scores = np.where(candidates.any(-1), scores, -1e30)
    n_tokens = candidates.shape[1] - n_slots
    return np.take_along_axis(candidates, top_choices(scores, n_slots, n_tokens, spacing)[:, :, None],
                              axis=1).astype(np.float32)


def supporting_held(model: LLMLTM, memory: np.ndarray, doc_ids: torch.Tensor, fact_due: torch.Tensor, t: int,
                    scale: float, subject: torch.Tensor | None = None) -> bool | None:
    """Whether ``memory`` (m, d) holds every fact before segment ``t`` that ``t`` asks
    (bAbI-in-books documents: ``fact_due == t`` at each supporting fact's marked word); None when
    every one is in segment ``t`` itself. A fact is held by the code of its marked word or of any
    later position whose window (the code's ``code_context`` tokens before it) still reaches back
    to the fact's actor (``subject``: the document's ``subject_source``, the actor's flat index at
    each marked word): "Mary went to the kitchen ." is held at "kitchen" and at ".". Without
    ``subject`` only the marked word's code counts."""
    where = (fact_due[:t] == t).nonzero().tolist()
    if not where:
        return None
    L, c = doc_ids.shape[1], model.mem_cfg.code_context
    groups: list[list[int]] = []                                                 # per fact: flat positions that hold it
    for s, p in where:
        mark = s * L + p
        first = int(subject[s, p]) if subject is not None else -1
        last = max(mark, first + c) if first >= 0 else mark
        groups.append(list(range(mark, min(last, t * L - 1) + 1)))
    segments = sorted({q // L for g in groups for q in g})
    before = tokens_before(doc_ids, segments, c, model.bos_token_id)
    codes = segment_codes(model, doc_ids[segments], scale, before)
    rows = {s: i for i, s in enumerate(segments)}
    tol = 1e-5 * max(1.0, scale)
    for g in groups:
        wanted = np.stack([codes[rows[q // L], q % L] for q in g])               # (W, d)
        if not (np.abs(wanted[:, None, :] - memory[None]).max(-1) <= tol).any():
            return False
    return True


def held_codes(model: LLMLTM, memory: np.ndarray, ids: torch.Tensor, scale: float,
               before: torch.Tensor | None = None) -> np.ndarray:
    """(N, L) bool: whether ``memory`` (N, m, d) holds the code of each position of ``ids`` (N, L)
    (``before``: the tokens that precede each segment).
    A question's VALUE has the code of its fact's statement (the same value after the same key), so
    at an answer token this says whether the fact is in memory when it is asked."""
    codes = segment_codes(model, ids, scale, before)                             # (N, L, d)
    diff = np.abs(codes[:, :, None, :] - memory[:, None, :, :]).max(-1)          # (N, L, m)
    return (diff <= 1e-5 * max(1.0, scale)).any(-1)
