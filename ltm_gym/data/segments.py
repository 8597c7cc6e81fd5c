"""Documents -> token ids -> segments of ``segment_len`` tokens, and the seeded split by document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .loaders import CorpusError
from ltm_gym.core.errors import UserError


@dataclass
class Document:
    """One tokenized document: ``ids`` (n_segments, segment_len) and the answer-token mask; for
    the synthetic corpus also, per token, the distance of the fact an answer asks
    (``answer_distance``, 0 elsewhere) and the segment that asks a stated fact's VALUE
    (``fact_due``: -1 never asked, 0 where no fact is stated); for a bAbI-in-books document the
    tokens of its final question's supporting facts (``oracle``, :mod:`ltm_gym.data.babilong`) and,
    at each fact's marked word, 1 + the index of the actor the fact is about (``fact_actor``, 0
    elsewhere: which facts a later one about the same actor overwrites), and at each answer's first
    token the flat index of the supporting fact's word that states the answer (``answer_source``,
    -1 elsewhere or where no supporting fact states it) and ``subject_source``: at each fact's marked
    word the index of the fact's actor, at the token before an answer the index of the actor the
    question names (-1 elsewhere)."""

    ids: torch.Tensor
    answer_mask: torch.Tensor
    doc_id: Any = None
    answer_distance: torch.Tensor | None = None
    fact_due: torch.Tensor | None = None
    oracle: torch.Tensor | None = None
    fact_actor: torch.Tensor | None = None
    answer_source: torch.Tensor | None = None
    subject_source: torch.Tensor | None = None

    @property
    def n_segments(self) -> int:
        return self.ids.shape[0]


def carried_tokens(ids: torch.Tensor) -> torch.Tensor:
    """The answer tokens of natural text, (S, L) bool for a document's segments ``ids`` (S, L):
    token t of segment s (t >= 1, s >= 1) whose bigram (token t - 1, token t) occurs in segment
    s - 1 and not earlier in segment s. A reader that copies from its context cannot predict them
    from the segment itself; a memory of the previous segment can."""
    S, L = ids.shape
    mask = torch.zeros(S, L, dtype=torch.bool)
    rows = ids.tolist()
    for s in range(1, S):
        before = set(zip(rows[s - 1][:-1], rows[s - 1][1:]))
        seen: set[tuple[int, int]] = set()
        for t in range(1, L):
            pair = (rows[s][t - 1], rows[s][t])
            mask[s, t] = pair in before and pair not in seen
            seen.add(pair)
    return mask


ANSWER_TOKENS = ("spans", "carried")
"""Where a corpus's answer tokens come from: the documents' ``answer_spans`` (the synthetic corpus),
or :func:`carried_tokens` (natural text)."""


def tokenize_documents(docs: Sequence[dict[str, Any]], tokenizer, segment_len: int = 256,
                       min_tokens: int = 1024, max_segments: int | None = None,
                       answer_tokens: str = "spans") -> list[Document]:
    """Cut every document into whole segments; drop the ragged tail and documents that are shorter
    than ``max(min_tokens, 2 * segment_len)`` tokens (an episode needs a next segment).

    ``docs`` are dicts with ``text`` and optionally ``answer_spans`` (character spans of answer
    tokens, from the synthetic corpus), ``answer_distances`` (one per answer span), ``fact_spans``
    and ``fact_dues`` (see :class:`~ltm_gym.data.synthetic.SyntheticDocument`). ``answer_tokens``
    ``carried``: the answer mask is :func:`carried_tokens` of the segments instead."""
    if answer_tokens not in ANSWER_TOKENS:
        raise CorpusError(f"answer_tokens={answer_tokens!r} is not one of {', '.join(ANSWER_TOKENS)}")
    if segment_len < 2:
        raise CorpusError(f"segment_len={segment_len} must be >= 2")
    if not docs:
        raise CorpusError("the corpus is empty: no documents to tokenize")
    need = max(min_tokens, 2 * segment_len)
    out: list[Document] = []
    encoded = tokenizer([doc["text"] for doc in docs], return_offsets_mapping=True, add_special_tokens=False)
    for n, doc in enumerate(docs):
        ids = torch.tensor(encoded["input_ids"][n], dtype=torch.long)
        if len(ids) < need:
            continue
        offsets = torch.tensor(encoded["offset_mapping"][n]).view(-1, 2)

        def covering(a: int, b: int) -> torch.Tensor:
            return (offsets[:, 0] < b) & (offsets[:, 1] > a)

        mask = torch.zeros(len(ids), dtype=torch.bool)
        for a, b in doc.get("answer_spans") or []:
            mask |= covering(a, b)
        distance = due = None
        if doc.get("answer_distances"):
            distance = torch.zeros(len(ids), dtype=torch.int16)
            for (a, b), d in zip(doc["answer_spans"], doc["answer_distances"]):
                distance[covering(a, b)] = d
        if doc.get("fact_spans"):
            due = torch.zeros(len(ids), dtype=torch.int16)
            for (a, b), d in zip(doc["fact_spans"], doc["fact_dues"]):
                due[covering(a, b)] = d
        n_seg = len(ids) // segment_len
        if max_segments:
            n_seg = min(n_seg, max_segments)
        cut = n_seg * segment_len

        def shaped(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[:cut].view(n_seg, segment_len)

        seg_ids = ids[:cut].view(n_seg, segment_len)
        seg_mask = carried_tokens(seg_ids) if answer_tokens == "carried" else mask[:cut].view(n_seg, segment_len)
        out.append(Document(seg_ids, seg_mask, doc.get("id", n), shaped(distance), shaped(due)))
    if not out:
        raise CorpusError(f"none of the {len(docs)} documents has >= {need} tokens "
                          f"(min_tokens={min_tokens}, two segments of {segment_len}); nothing to train on")
    return out


def split_documents(docs: Sequence[Document], seed: int = 0,
                    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, list[Document]]:
    """Seeded train/validation/test split by document (80/10/10 by default); every split non-empty
    when there are at least three documents."""
    if abs(sum(fractions) - 1) > 1e-6:
        raise UserError(f"split fractions {fractions} must sum to 1")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(docs), generator=g).tolist()
    n = len(docs)
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    parts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {k: [docs[i] for i in v] for k, v in parts.items()}
