"""The memory-task ladder's table: for each level, the references and the agents side by side.

Rows of one level (all on the level's test documents, :mod:`ltm_gym.data.tasks`):

* ``lora_baseline``: the LoRA-tuned LM without memory (what every memory row must beat);
* ``oracle``: the same LM with only the statements of the facts each segment asks in its context
  (a perfect-memory reference that needs no copying across segments, only from a short context);
* ``{policy}[{reader}]``: a scripted selection policy (:mod:`baselines.scripted_memory`: ``store``,
  ``fifo``, ``keep``) through a reader (the study's ``select`` adapters, or a run's co-trained
  reader); ``keep`` is that reader's perfect-memory reference;
* one row per agent run evaluated on the level (its own reader when it co-trained one).

Columns: answer CE, exact recall, the share of the answer-CE gap (no memory -> oracle) closed with
its 95 % paired-bootstrap interval over the documents, the share of facts held in memory when
asked (selection rows), and recall by the facts' distance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ltm_gym.data.tasks import TaskConfig, load_task, task_documents
from ltm_gym.metrics import SegmentMetrics
from ltm_gym.study import StudyDir
from ltm_gym.study.tables import answer_gap_interval, score_task

from .scripted_memory import POLICIES, scripted_row


def lm_rows(study: StudyDir, task: TaskConfig, n_documents: int | None = None,
            device: str = "auto") -> dict[str, SegmentMetrics]:
    """``lora_baseline`` and ``oracle`` (the asked facts' statements in context) of ``task``."""
    docs = task_documents(task, study.config.corpus, study.tokenizer)["test"][:n_documents]
    baseline = study.load_lm("lora")
    batch = study.config.eval_batch
    return {"lora_baseline": score_task(baseline, docs, batch, False, device),
            "oracle": score_task(baseline, docs, batch, True, device)}


def ladder_rows(study_dir: str | Path | None, task: str | dict | TaskConfig, readers: Sequence[str] = ("select",),
                policies: Sequence[str] = POLICIES, n_documents: int | None = None,
                device: str = "auto") -> dict[str, SegmentMetrics]:
    """The reference rows of one level: the LM rows and every scripted policy through every reader."""
    study = StudyDir(study_dir)
    task = load_task(task)
    rows = lm_rows(study, task, n_documents, device)
    for reader in readers:
        kwargs: dict[str, Any] = {"study_dir": str(study.root), "task": task, "adapters": reader, "device": device}
        for policy in policies:
            rows[f"{policy}[{Path(reader).stem if reader.endswith('.safetensors') else reader}]"] = \
                scripted_row(policy, kwargs, n_documents)
    return rows


def agent_row(run_dir: str | Path, task: str | dict | TaskConfig | None, n_documents: int | None = None) -> SegmentMetrics:
    """An agent run evaluated on ``task``'s test documents (its own task when None), with the
    reader it was trained with (co-trained or not)."""
    from agents.evaluation import agent_metrics, eval_env
    from agents.training import RunConfig, build

    run_dir = Path(run_dir)
    cfg = RunConfig.load(run_dir)
    _, agent = build(cfg, None, num_envs=1)
    agent.load(run_dir / agent.file_name)
    kwargs = dict(cfg.env_kwargs)
    if task is not None:
        kwargs["task"] = load_task(task)
    env = eval_env(kwargs, "test", backend=agent.env.backend)
    return agent_metrics(agent, env, n_documents)


def ladder_summary(rows: dict[str, SegmentMetrics]) -> dict[str, dict[str, float]]:
    """Each row's summary plus ``gap`` and its interval (``gap_lo``, ``gap_hi``)."""
    out = {name: m.summary() for name, m in rows.items()}
    base, oracle = out["lora_baseline"]["answer_ce"], out["oracle"]["answer_ce"]
    for name, s in out.items():
        s["gap"] = (base - s["answer_ce"]) / (base - oracle) if base != oracle else float("nan")
        ci = answer_gap_interval(rows, name) if name not in ("lora_baseline", "oracle") else None
        if ci is not None:
            s["gap_lo"], s["gap_hi"] = ci
    return out


def ladder_table(task_name: str, summaries: dict[str, dict[str, float]]) -> str:
    """The markdown table of one level."""
    distances = sorted({int(k[len("recall_d"):]) for s in summaries.values() for k in s if k.startswith("recall_d")})
    head = ["row", "answer CE", "recall", "gap closed (95% CI)", "held"] + [f"d{d}" for d in distances]
    lines = [f"### {task_name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        gap = f"{s['gap']:+.3f}" + (f" ({s['gap_lo']:+.3f} .. {s['gap_hi']:+.3f})" if "gap_lo" in s else "")
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
