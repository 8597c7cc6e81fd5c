"""The retrieval reference of the bAbI-in-books levels: unlimited storage, what RAG does.

At the question, the ``n_slots`` positions of the whole history (every segment before the
question's) whose code windows (the token and the ``code_context`` tokens before it, what a slot
of that position holds) share the most words with the question are read as the memory, through
the study's ``select`` reader. Ties go to the later position, and no two chosen windows overlap.
A lexical retriever: it needs no training and stores everything, but it matches words, so every
fact about the asked actor or object competes with the one that answers (BABILong measures RAG at
about 60 % on qa1).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ltm_gym.core import choose_device
from ltm_gym.data.babilong import BabiTaskConfig, pieces_for
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import load_task, task_documents
from ltm_gym.lm import LLMLTM, selection_codes, tokens_before
from ltm_gym.metrics import SegmentMetrics, target_ranks
from ltm_gym.study import StudyDir
from ltm_gym.core.errors import UserError

QUESTION_WORDS = ("Where", "is", "was", "the", "before", "?", "Answer", ":", "Answer:", ".")


def question_tokens(doc: Document, t: int, tokenizer) -> set[int]:
    """The content tokens of the question segment ``t`` asks: from its last "Where" to the answer,
    without the question's own words."""
    pieces = pieces_for(tokenizer)
    ids = doc.ids[t].tolist()
    first = int(doc.answer_mask[t].nonzero()[0])
    where = pieces("Where")[0]
    start = max((i for i in range(first) if ids[i] == where), default=max(0, first - 12))
    stop = {tok for w in QUESTION_WORDS for tok in pieces(w)} | {tok for w in QUESTION_WORDS for tok in
                                                                 tokenizer(w, add_special_tokens=False)["input_ids"]}
    return {tok for tok in ids[start:first] if tok not in stop}


def retrieve(history: torch.Tensor, content: set[int], n_slots: int, context: int) -> list[int]:
    """Positions of ``history`` (N,) whose windows of ``context`` + 1 tokens hold the most ``content``
    tokens, the later first among equals, no two windows overlapping."""
    hit = torch.tensor([tok in content for tok in history.tolist()], dtype=torch.float32)
    windows = torch.stack([torch.roll(hit, j) * (torch.arange(len(hit)) >= j) for j in range(context + 1)]).sum(0)
    score = windows + torch.arange(len(hit)) / (10.0 * len(hit))
    chosen: list[int] = []
    for p in torch.argsort(score, descending=True).tolist():
        if all(abs(p - q) > context for q in chosen):
            chosen.append(p)
        if len(chosen) == n_slots:
            break
    return chosen


@torch.no_grad()
def retrieval_metrics(model: LLMLTM, docs: list[Document], tokenizer, device: str = "auto") -> SegmentMetrics:
    """The reference's metrics on every question segment of ``docs`` (bAbI-in-books documents)."""
    dev = choose_device(device)
    model.to(dev).eval()
    metrics = SegmentMetrics()
    m, c = model.mem_cfg.n_slots, model.mem_cfg.code_context
    for i, doc in enumerate(docs):
        for t in [t for t in range(1, doc.n_segments) if doc.answer_mask[t].any()]:
            history = doc.ids[:t].reshape(-1)
            chosen = retrieve(history, question_tokens(doc, t, tokenizer), m, c)
            before = tokens_before(doc.ids, list(range(t)), c, model.bos_token_id)
            codes = selection_codes(model, doc.ids[:t].to(dev), before).reshape(-1, model.mem_cfg.slot_dim)
            memory = torch.zeros(1, m, codes.shape[-1], device=dev)
            memory[0, : len(chosen)] = codes[chosen]
            ids = doc.ids[t][None].to(dev)
            logits, losses = model(ids, memory)
            mask = doc.answer_mask[t][None]
            metrics.add(logits, ids, losses, mask, [i])
            if doc.answer_distance is not None:
                hits = (target_ranks(logits.float(), ids) == 0).cpu()[0]
                metrics.add_by_distance(doc.answer_distance[t][mask[0]], hits[mask[0]])
    return metrics


def retrieval_row(study_dir: str | Path | None, task: str | dict | BabiTaskConfig, reader: str = "select",
                  n_documents: int | None = None, device: str = "auto") -> SegmentMetrics:
    """:func:`retrieval_metrics` on a bAbI level's test documents through the study's ``reader``."""
    study = StudyDir(study_dir)
    task = load_task(task)
    if not isinstance(task, BabiTaskConfig):
        raise UserError(f"the retrieval reference is for the bAbI levels; task {task.name!r} is not one")
    docs = task_documents(task, study.config.corpus, study.tokenizer)["test"][:n_documents]
    return retrieval_metrics(study.load_lm(reader), docs, study.tokenizer, device)
