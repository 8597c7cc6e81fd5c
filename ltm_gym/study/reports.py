"""The study's tables from scored rows (:mod:`ltm_gym.study.scoring`): markdown, CSV and JSON
with per-position curves (each with its provenance: date, machine, command), the share of the
answer-CE gap each row closes with its bootstrap interval, and the task ladder's summaries.
Nothing here runs a model."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from ltm_gym.core.provenance import write_provenance
from ltm_gym.metrics import TOP_K, SegmentMetrics


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
    write_provenance(out_dir / f"{stem}.json")
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
    write_provenance(path)
    return path
