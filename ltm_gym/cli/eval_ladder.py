"""The memory-task ladder's table on a study: for each level, no memory, the facts-in-context
oracle, the scripted selection policies (store, fifo, unasked = fifo without the answered facts,
patient = held facts first until asked, keep = perfect store-and-keep) through each reader, and
any agent runs, with answer CE, recall, the gap share closed (95 % paired-bootstrap interval over
the test documents), the facts held in memory when asked, and recall by distance.
Markdown to the terminal, JSON to --out (default STUDY_DIR/eval/ladder).

  python scripts/eval_ladder.py                                        # every level, default study
  python scripts/eval_ladder.py --tasks recall-d4 recall-mixed --documents 60
  python scripts/eval_ladder.py --tasks recall-d4 --readers select runs/<run>/reader.safetensors \\
      --agent-runs runs/<run>
  python scripts/eval_ladder.py --study-dir babi-tiny --tasks babi-qa1-1k babi-qa1-64k --agent-runs runs/<run>

On a bAbI level (bAbI questions in book text): the question's segment alone is scored, recall is
the answer word's exact-match accuracy, and the rows are no memory, the oracle (the supporting facts
in context), keep (privileged), random positions and retrieval (unlimited storage).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ltm_gym.baselines.ladder import agent_row, ladder_rows
from ltm_gym.baselines.scripted_memory import POLICIES
from ltm_gym.core.errors import UserError, run_main
from ltm_gym.data.tasks import LEVELS, load_task
from ltm_gym.study import StudyDir
from ltm_gym.study.reports import ladder_summary, ladder_table, write_ladder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-dir", type=Path, default=None,
                        help="the study, or the name of a shipped one (babi-tiny) (default: $LTM_GYM_STUDY_DIR "
                             "or ~/.cache/ltm_gym/study-tiny)")
    parser.add_argument("--tasks", nargs="+", default=list(LEVELS), metavar="TASK",
                        help=f"levels ({', '.join(LEVELS)}; babi-qa1-1k ... babi-qa3-64k) or task YAML files "
                             "(default: the recall levels)")
    parser.add_argument("--readers", nargs="*", default=["select"], metavar="ADAPTERS",
                        help="readers of the scripted policies and of retrieval: select (the study's), none (the LM "
                             "with no adapters) or .safetensors files; the option alone, no reader: no memory, the "
                             "oracle and the agent runs only (a long level, e.g. babi-qa1-1024k)")
    parser.add_argument("--policies", nargs="+", default=None, choices=POLICIES,
                        help="scripted policies (default: all; keep and random on a bAbI level)")
    parser.add_argument("--agent-runs", nargs="*", default=[], type=Path, metavar="RUN_DIR",
                        help="agent runs (scripts/train_agent.py) to evaluate on every level")
    parser.add_argument("--documents", type=int, default=None, help="test documents per level (default: all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.documents is not None and args.documents < 1:
        raise UserError(f"--documents {args.documents}: must be >= 1")
    tasks = [load_task(t) for t in args.tasks]                        # a bad name fails before any work
    study = StudyDir(args.study_dir)
    out = args.out or study.root / "eval" / "ladder"
    levels: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        start = time.time()
        rows = ladder_rows(study.root, task, args.readers, args.policies, args.documents, args.device)
        for run in args.agent_runs:
            rows[f"agent:{run.name}"] = agent_row(run, task, args.documents)
        summaries = ladder_summary(rows)
        levels[task.name] = summaries
        print(ladder_table(task.name, summaries))
        print(f"\n{write_ladder(out, task.name, summaries)} ({time.time() - start:.0f} s)\n", flush=True)
    families = family_scores(levels)
    if families:
        print(families)


MIN_ORACLE_LEAD = 0.1
"""The least accuracy by which the oracle must beat no memory at every length for the normalized
score to be printed: below it the score divides by a difference of a few documents (noise)."""


def family_scores(levels: dict[str, dict[str, dict[str, float]]]) -> str:
    """One score per bAbI task family and row, as bsuite sums up memory_len: the row's accuracy
    normalized between no memory (0) and the oracle (1) at each length, averaged over the lengths
    evaluated (rows present at every one of them); n/a where the oracle leads no memory by less
    than :data:`MIN_ORACLE_LEAD` at some length."""
    from ltm_gym.data.babilong import NAME

    by_family: dict[str, list[dict[str, dict[str, float]]]] = {}
    for name, summaries in levels.items():
        m = NAME.match(name)
        if m:
            by_family.setdefault(f"qa{m.group(1)}", []).append(summaries)
    lines = []
    for family, tables in by_family.items():
        rows = [r for r in tables[0] if all(r in t for t in tables) and r not in ("lora_baseline", "oracle")]
        lines += [f"### babi-{family}: accuracy normalized between no memory and the oracle, mean over "
                  f"{len(tables)} lengths", "", "| row | score |", "|---|---|"]
        if any(t["oracle"]["recall_acc"] - t["lora_baseline"]["recall_acc"] < MIN_ORACLE_LEAD for t in tables):
            lines += [f"| (every row) | n/a: the oracle does not beat no memory by {MIN_ORACLE_LEAD} at some length |", ""]
            continue
        for r in rows:
            scores = [(t[r]["recall_acc"] - t["lora_baseline"]["recall_acc"])
                      / (t["oracle"]["recall_acc"] - t["lora_baseline"]["recall_acc"]) for t in tables]
            lines.append(f"| {r} | {sum(scores) / len(scores):+.3f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
