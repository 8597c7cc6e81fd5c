"""The study's tables: CE, perplexity, top-k accuracy and recall per memory condition.

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
:class:`~ltm_gym.metrics.SegmentMetrics` and so in the same table. This module also writes the
tables (markdown, CSV, JSON with per-position curves) and the share of the recall gap each row closes.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ltm_gym.core import choose_device
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import AnyTask, task_documents
from ltm_gym.lm import LLMLTM, previous_segment_memory, selection_codes
from ltm_gym.metrics import TOP_K, SegmentMetrics, target_ranks

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


COLUMNS = ["ce", "ppl"] + [f"top{k}" for k in TOP_K] + ["answer_ce", "recall_acc"]


def markdown_table(summaries: dict[str, dict[str, float]]) -> str:
    head = "| condition | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, s in summaries.items():
        cells = [f"{s[c]:.4f}" if c in s else "-" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gap_closed(summaries: dict[str, dict[str, float]], row: str, key: str = "answer_ce",
               low: str = "oracle", high: str = "lora_baseline") -> float:
    """Fraction of the ``key`` gap between ``high`` (no memory) and ``low`` (oracle) that ``row`` closes."""
    gap = summaries[high][key] - summaries[low][key]
    return (summaries[high][key] - summaries[row][key]) / gap if gap else float("nan")


MIN_GAP = 0.1


def answer_gap_interval(rows: dict[str, SegmentMetrics], row: str, n_boot: int = 1000, seed: int = 0,
                        q: tuple[float, float] = (0.025, 0.975)) -> tuple[float, float] | None:
    """Percentile interval of the answer-CE gap share ``row`` closes, from a paired bootstrap over the
    documents every one of baseline, oracle and ``row`` was scored on (None without them): it says
    whether a row is distinguishable from no memory on this test split."""
    names = ("lora_baseline", "oracle", row)
    if any(n not in rows for n in names):
        return None
    answers = [rows[n].doc_answers for n in names]
    docs = [d for d in answers[0] if all(d in a for a in answers[1:])]
    if len(docs) < 2:
        return None
    table = np.array([[a[d] for a in answers] for d in docs])                 # (D, 3, [loss sum, tokens])
    draws = np.random.default_rng(seed).integers(0, len(docs), size=(n_boot, len(docs)))
    totals = table[draws].sum(1)                                               # (n_boot, 3, 2)
    ce = totals[..., 0] / np.maximum(totals[..., 1], 1)
    share = (ce[:, 0] - ce[:, 2]) / (ce[:, 0] - ce[:, 1])
    lo, hi = np.quantile(share, q)
    return float(lo), float(hi)


def ce_difference_interval(rows: dict[str, SegmentMetrics], row: str, base: str = "lora_baseline", n_boot: int = 1000,
                           seed: int = 0, q: tuple[float, float] = (0.025, 0.975)) -> tuple[float, float, float] | None:
    """``row``'s overall CE minus ``base``'s on the documents both were scored on, with its percentile
    interval from a paired bootstrap over those documents (None with fewer than 2): the seed study's
    question, does a memory row beat the LoRA baseline, with how sure the test split makes it."""
    if base not in rows or row not in rows:
        return None
    a, b = rows[base].doc_losses, rows[row].doc_losses
    docs = [d for d in a if d in b and len(a[d]) == len(b[d])]
    if len(docs) < 2:
        return None
    table = np.array([[sum(a[d]), sum(b[d]), len(a[d])] for d in docs])          # (D, [base sum, row sum, segments])
    diff = (table[:, 1].sum() - table[:, 0].sum()) / table[:, 2].sum()
    draws = np.random.default_rng(seed).integers(0, len(docs), size=(n_boot, len(docs)))
    totals = table[draws].sum(1)
    lo, hi = np.quantile((totals[:, 1] - totals[:, 0]) / totals[:, 2], q)
    return float(diff), float(lo), float(hi)


def ce_report(rows: dict[str, SegmentMetrics]) -> str:
    """Lines 'ce - lora_baseline' for every row with memory (not the baseline, not the oracle), and
    the previous segment's memory against another document's (the memory's content, not its presence)."""
    lines = []
    for name in rows:
        if name in ("lora_baseline", "oracle"):
            continue
        d = ce_difference_interval(rows, name)
        if d is not None:
            lines.append(f"ce - lora_baseline, {name:>28}: {d[0]:+.4f}  (95% CI {d[1]:+.4f} .. {d[2]:+.4f})")
    d = ce_difference_interval(rows, "prev_segment_memory", base="shuffled_memory")
    if d is not None:       # the same reader and kind of memory; only whose segment it holds differs
        lines.append(f"ce, prev_segment_memory - shuffled_memory (what the segment's own memory adds): {d[0]:+.4f}  "
                     f"(95% CI {d[1]:+.4f} .. {d[2]:+.4f})")
    return "\n".join(lines)


def gap_report(summaries: dict[str, dict[str, float]], key: str = "answer_ce",
               rows: dict[str, SegmentMetrics] | None = None) -> str:
    """Lines 'gap closed by ROW' for every row (with its 95 % paired-bootstrap interval when the
    ``rows`` are given), or why the fraction means nothing here."""
    if "oracle" not in summaries or key not in summaries["oracle"]:
        return ""
    gap = summaries["lora_baseline"][key] - summaries["oracle"][key]
    if gap < MIN_GAP:
        return (f"no recall gap: the oracle's {key} ({summaries['oracle'][key]:.3f}) is within {MIN_GAP} nats of "
                f"the no-memory baseline ({summaries['lora_baseline'][key]:.3f}); the LM does not copy from its "
                "context yet, so there is nothing for memory to close (pre-train the LM longer)")
    lines = []
    for name in summaries:
        line = f"{key} gap closed by {name:>28}: {gap_closed(summaries, name, key):+.3f}"
        own = rows is not None and key == "answer_ce" and name not in ("lora_baseline", "oracle")
        ci = answer_gap_interval(rows, name) if own else None
        if ci is not None:
            line += f"  (95% CI {ci[0]:+.3f} .. {ci[1]:+.3f})"
        lines.append(line)
    return "\n".join(lines)


def write_tables(out_dir: Path, rows: dict[str, SegmentMetrics], stem: str = "lm_table") -> dict[str, dict[str, float]]:
    """``stem``.csv and ``stem``.json (with per-position curves) of the rows; returns the summaries."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = {name: m.summary() for name, m in rows.items()}
    with open(out_dir / f"{stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["condition"] + COLUMNS)
        for name, s in summaries.items():
            w.writerow([name] + [s.get(c, "") for c in COLUMNS])
    payload = {name: {**summaries[name], "position_curve": rows[name].position_curve()} for name in rows}
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    return summaries


def report(rows: dict[str, SegmentMetrics], out_dir: Path, stem: str = "lm_table") -> str:
    """Write the tables of ``rows`` and return what a script prints: the markdown table, the gap
    each row closes (when there is a baseline and an oracle) and where the files are."""
    summaries = write_tables(out_dir, rows, stem)
    parts = [markdown_table(summaries)]
    if "lora_baseline" in summaries:
        for text in (gap_report(summaries, rows=rows), ce_report(rows)):
            if text:
                parts.append(text)
    parts.append(f"tables: {out_dir}/{stem}.{{csv,json}}")
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the memory-task ladder
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


def ladder_summary(rows: dict[str, SegmentMetrics]) -> dict[str, dict[str, float]]:
    """Each row's summary plus ``gap`` and its interval (``gap_lo``, ``gap_hi``)."""
    out = {name: m.summary() for name, m in rows.items()}
    base, oracle = out["lora_baseline"]["answer_ce"], out["oracle"]["answer_ce"]
    defined = base > oracle                             # an oracle no better than no memory: no gap to close
    for name, s in out.items():
        s["gap"] = (base - s["answer_ce"]) / (base - oracle) if defined else float("nan")
        ci = answer_gap_interval(rows, name) if defined and name not in ("lora_baseline", "oracle") else None
        if ci is not None:
            s["gap_lo"], s["gap_hi"] = ci
    return out


def ladder_table(task_name: str, summaries: dict[str, dict[str, float]]) -> str:
    """The markdown table of one level."""
    distances = sorted({int(k[len("recall_d"):]) for s in summaries.values() for k in s if k.startswith("recall_d")})
    if len(distances) > 10:                      # long documents: recall by distance is in the JSON
        distances = []
    head = ["row", "answer CE", "recall", "gap closed (95% CI)", "held"] + [f"d{d}" for d in distances]
    lines = [f"### {task_name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        gap = "n/a" if math.isnan(s["gap"]) else \
            f"{s['gap']:+.3f}" + (f" ({s['gap_lo']:+.3f} .. {s['gap_hi']:+.3f})" if "gap_lo" in s else "")
        cells = [name, f"{s['answer_ce']:.3f}", f"{s['recall_acc']:.3f}", gap,
                 f"{s['held']:.3f}" if "held" in s else "-"]
        cells += [f"{s[f'recall_d{d}']:.3f}" if f"recall_d{d}" in s else "-" for d in distances]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_ladder(out_dir: str | Path, task_name: str, summaries: dict[str, dict[str, float]]) -> Path:
    """``out_dir/<task>.json`` of one level's summaries."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{task_name}.json"
    path.write_text(json.dumps(summaries, indent=2))
    return path
