"""The study's scores: CE, perplexity, top-k accuracy and recall per memory condition, on the
same segments (their tables: :mod:`ltm_gym.study.reports`).

Every condition is scored on the same test segments (every segment that has a previous one):

* ``lora_baseline``        the LoRA-tuned LM without memory (the study's baseline);
* ``zero_memory``          the memory LM reading an all-zero memory;
* ``random_memory``        ... a Gaussian memory with the scale of real memories;
* ``shuffled_memory``      ... the previous-segment memory of *another* document;
* ``prev_segment_memory``  ... the previous segment's embeddings (hypothesis 2);
* ``oracle``               the baseline LM with the previous segments in its context (as many as
                           it was trained to read: ``StudyConfig.oracle_segments``);
* ``select_random_positions`` (asked for: a selection agent's reference) the ``select`` reader
                           with the codes of ``n_slots`` random positions of the previous segment,
                           the memory a policy that learned nothing writes.

Agent rows (``ltm_gym.agents.evaluation``) come from stepping the env; they land in the same
:class:`~ltm_gym.metrics.SegmentMetrics` and so in the same table.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from ltm_gym.core import choose_device
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import AnyTask, task_documents
from ltm_gym.lm import LLMLTM, previous_segment_memory, selection_codes
from ltm_gym.metrics import SegmentMetrics, target_ranks

from .layout import StudyDir

MemoryFn = Callable[[LLMLTM, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def segment_batches(docs: list[Document], batch: int, context_segments: int = 0) -> Iterator[dict]:
    """Test segments grouped by their index t >= 1 (so the context has one length per batch); the
    context is the ``context_segments`` previous segments (0 = all of them)."""
    max_t = max(d.n_segments for d in docs)
    for t in range(1, max_t):
        rows = [(i, d) for i, d in enumerate(docs) if d.n_segments > t]
        for s in range(0, len(rows), batch):
            chunk = rows[s : s + batch]
            yield {
                "t": t,
                "doc": torch.tensor([i for i, _ in chunk]),
                "context": torch.stack([d.ids[max(0, t - context_segments) if context_segments else 0 : t].reshape(-1)
                                        for _, d in chunk]),
                "prev": torch.stack([d.ids[t - 1] for _, d in chunk]),
                "ids": torch.stack([d.ids[t] for _, d in chunk]),
                "answer_mask": torch.stack([d.answer_mask[t] for _, d in chunk]),
            }


@torch.no_grad()


def score(model: LLMLTM, docs: list[Document], batch: int, memory_fn: MemoryFn | None = None,
          full_context: bool = False, context_segments: int = 0, device: str = "auto") -> SegmentMetrics:
    """Metrics of ``model`` on every (previous, current) segment pair of ``docs``."""
    dev = choose_device(device)
    model.to(dev).eval()
    metrics = SegmentMetrics()
    for b in segment_batches(docs, batch, context_segments):
        ids, prev = b["ids"].to(dev), b["prev"].to(dev)
        memory = memory_fn(model, prev, ids, b["doc"]) if memory_fn is not None else None
        context = b["context"].to(dev) if full_context else None
        logits, losses = model(ids, memory, context_ids=context)
        metrics.add(logits, ids, losses, b["answer_mask"], b["doc"].tolist())
    return metrics


def zero_memory(model: LLMLTM, prev: torch.Tensor, ids: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    m = model.mem_cfg
    return torch.zeros(len(ids), m.n_slots, m.slot_dim, device=ids.device)


def random_memory(seed: int = 0) -> MemoryFn:
    g = torch.Generator().manual_seed(seed)

    def fn(model: LLMLTM, prev: torch.Tensor, ids: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
        scale = previous_segment_memory(model, prev).std()
        m = model.mem_cfg
        return (torch.randn(len(ids), m.n_slots, m.slot_dim, generator=g) * scale).to(ids.device)

    return fn


def shuffled_memory(model: LLMLTM, prev: torch.Tensor, ids: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """The previous-segment memory of the next document in the batch (another document)."""
    return previous_segment_memory(model, prev.roll(1, dims=0))


def prev_segment_memory(model: LLMLTM, prev: torch.Tensor, ids: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    return previous_segment_memory(model, prev)


def random_positions(seed: int = 0) -> MemoryFn:
    """Selection memory of ``n_slots`` random positions of the previous segment (seeded)."""
    g = torch.Generator().manual_seed(seed)

    def fn(model: LLMLTM, prev: torch.Tensor, ids: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
        codes = selection_codes(model, prev)                                       # (B, L, d)
        chosen = torch.rand(prev.shape, generator=g).argsort(1)[:, : model.mem_cfg.n_slots].sort(1).values
        return codes.gather(1, chosen[:, :, None].to(codes.device).expand(-1, -1, codes.shape[-1]))

    return fn


def study_rows(baseline: LLMLTM, memory_lm: LLMLTM | None, docs: list[Document], batch: int,
               oracle_segments: int = 0, device: str = "auto") -> dict[str, SegmentMetrics]:
    """The LM rows of the study's tables (see the module docstring); the oracle sees
    ``oracle_segments`` previous segments (0 = all)."""
    rows = {"lora_baseline": score(baseline, docs, batch, device=device)}
    if memory_lm is not None:
        for name, fn in (("zero_memory", zero_memory), ("random_memory", random_memory()),
                         ("shuffled_memory", shuffled_memory), ("prev_segment_memory", prev_segment_memory)):
            rows[name] = score(memory_lm, docs, batch, fn, device=device)
    rows["oracle"] = score(baseline, docs, batch, full_context=True, context_segments=oracle_segments,
                           device=device)
    return rows


def study_dir_rows(study: StudyDir, split: str = "test", device: str = "auto",
                   select_reader: bool = False) -> dict[str, SegmentMetrics]:
    """:func:`study_rows` of the adapters a study holds on its ``split`` (``eval_documents`` of
    them), and with ``select_reader`` the ``select_random_positions`` row (when the study has that
    reader); none when the LoRA baseline is not trained yet (there is nothing to compare with)."""
    if not study.adapter_file("lora").is_file():
        return {}
    cfg = study.config
    docs = eval_documents(study, split)
    baseline = study.load_lm("lora")
    memory_lm = study.load_lm("memory") if study.adapter_file("memory").is_file() else None
    rows = study_rows(baseline, memory_lm, docs, cfg.eval_batch, cfg.oracle_segments, device)
    if select_reader and study.adapter_file("select").is_file():
        rows["select_random_positions"] = score(study.load_lm("select"), docs, cfg.eval_batch, random_positions(),
                                                device=device)
    return rows


STATEMENT = (3, 2)
"""A stated fact "remember : KEY VALUE ." around its VALUE token: 3 tokens before it, 1 after."""


def stated_facts(doc: Document, t: int) -> torch.Tensor:
    """One segment that states every fact segment ``t`` of ``doc`` asks (empty when it asks none):
    the source segment of the first one, with the other facts' statements written over it where they
    stood in their own segments (or at the nearest place that overwrites no other asked statement).
    At a fixed distance d that is segment t - d itself. A tiny LM copies from a previous segment, not from a bare list
    of statements (measured: bare statements in context recall 0.12 of the answers, the previous
    segment 0.78), so this is the context of the perfect-memory reference."""
    before, after = STATEMENT
    sources = (doc.fact_due[:t] == t).nonzero().tolist()
    if not sources:
        return doc.ids.new_zeros(0)
    base = sources[0][0]
    out = doc.ids[base].clone()
    taken = torch.zeros_like(out, dtype=torch.bool)
    width, L = before + after, len(out)
    for s, p in sorted(sources, key=lambda sp: sp[0] != base):          # the base's own facts stay put
        lo = p - before
        if s != base:
            free = [a for a in range(L - width + 1) if not taken[a : a + width].any()]
            if not free:
                continue                                                 # no room left (not seen at 64 tokens)
            at = min(free, key=lambda a: abs(a - lo))                   # where it stood, or the nearest free place
            out[at : at + width] = doc.ids[s, lo : lo + width]
            lo = at
        taken[lo : lo + width] = True
    return out


def oracle_context(doc: Document, t: int) -> torch.Tensor:
    """What the perfect-memory reference reads before segment ``t``: for a bAbI-in-books document,
    its final question's supporting facts right before the question's segment (BABILong's oracle;
    nothing before another segment), else :func:`stated_facts`."""
    if doc.oracle is not None:
        return doc.oracle if t == doc.n_segments - 1 else doc.ids.new_zeros(0)
    return stated_facts(doc, t)


@torch.no_grad()
def score_task(model: LLMLTM, docs: list[Document], batch: int, with_facts: bool, device: str = "auto") -> SegmentMetrics:
    """Metrics of ``model`` without memory on every segment t >= 1 of task documents (of bAbI
    documents: the segments that ask a question), with recall by fact distance; ``with_facts``:
    with the facts segment t asks in its context (:func:`oracle_context`): a perfect-memory
    reference that needs no copying across more than one segment."""
    dev = choose_device(device)
    model.to(dev).eval()
    metrics = SegmentMetrics()
    rows = [(i, t) for i, d in enumerate(docs) for t in range(1, d.n_segments)
            if d.oracle is None or d.answer_mask[t].any()]             # bAbI documents: the question's segments
    groups: dict[int, list[tuple[int, int, torch.Tensor]]] = {}
    for i, t in rows:
        ctx = oracle_context(docs[i], t) if with_facts else docs[i].ids.new_zeros(0)
        groups.setdefault(len(ctx), []).append((i, t, ctx))
    for width, group in sorted(groups.items()):
        for s in range(0, len(group), batch):
            chunk = group[s : s + batch]
            ids = torch.stack([docs[i].ids[t] for i, t, _ in chunk]).to(dev)
            mask = torch.stack([docs[i].answer_mask[t] for i, t, _ in chunk])
            context = torch.stack([c for _, _, c in chunk]).to(dev) if width else None
            logits, losses = model(ids, None, context_ids=context)
            metrics.add(logits, ids, losses, mask, [i for i, _, _ in chunk])
            hits = (target_ranks(logits.float(), ids) == 0).cpu()
            for row, (i, t, _) in enumerate(chunk):
                if docs[i].answer_distance is not None and mask[row].any():
                    metrics.add_by_distance(docs[i].answer_distance[t][mask[row]], hits[row][mask[row]])
    return metrics


def eval_documents(study: StudyDir, split: str = "test") -> list[Document]:
    """The documents every row of the study's table is scored on."""
    return study.documents(split)[: study.config.eval_documents or None]


def task_lm_rows(study: StudyDir, task: AnyTask, n_documents: int | None = None,
            device: str = "auto") -> dict[str, SegmentMetrics]:
    """The LM rows of a memory task (:mod:`ltm_gym.data.tasks`) on its test documents:
    ``lora_baseline`` (no memory) and ``oracle``, the same LM with one segment stating the facts
    each segment asks in its context (:func:`stated_facts`)."""
    docs = task_documents(task, study.config.corpus, study.tokenizer)["test"][:n_documents]
    baseline = study.load_lm("lora")
    batch = study.config.eval_batch
    return {"lora_baseline": score_task(baseline, docs, batch, False, device),
            "oracle": score_task(baseline, docs, batch, True, device)}
