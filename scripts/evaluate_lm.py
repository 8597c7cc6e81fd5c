#!/usr/bin/env python
"""The study's tables 1 and 2 (CE, perplexity, top-k accuracy K = 5..100) plus recall columns, for
the LoRA baseline, the memory LM with zero / random / shuffled / previous-segment memory, and the
full-context oracle, on the test split. Markdown to the terminal; CSV and JSON (with per-position
loss curves) to STUDY_DIR/eval.

  python scripts/evaluate_lm.py --study-dir runs/study-tiny
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ltm_gym.core import load_config  # noqa: E402
from ltm_gym.lm import build_llmltm  # noqa: E402
from ltm_gym.lm.evaluation import gap_report, markdown_table, study_rows, write_tables  # noqa: E402
from ltm_gym.lm.study import StudyConfig, StudyData, base_dir  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-dir", type=Path, default=Path("runs/study-tiny"),
                        help="study directory written by scripts/pretrain_lm.py")
    parser.add_argument("--config", default=None, help="config (default: STUDY_DIR/config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    args = parser.parse_args(argv)
    cfg = load_config(StudyConfig, args.config or args.study_dir / "config.yaml", args.overrides)
    data = StudyData(cfg, args.study_dir / "cache")
    docs = data.splits[args.split]
    if cfg.eval_documents:
        docs = docs[: cfg.eval_documents]
    base = base_dir(args.study_dir, cfg)
    lora_path = args.study_dir / "lora_baseline.safetensors"
    memory_path = args.study_dir / "memory_lm.safetensors"
    for p in (lora_path,) + ((base,) if base else ()):
        if not p.exists():
            raise SystemExit(f"{p} is missing: run scripts/pretrain_lm.py --study-dir {args.study_dir} first")
    baseline = build_llmltm(cfg.lm, data.tokenizer, base_dir=base, adapters=lora_path)
    memory_lm = build_llmltm(cfg.lm, data.tokenizer, base_dir=base, adapters=memory_path) if memory_path.exists() else None
    rows = study_rows(baseline, memory_lm, docs, cfg.eval_batch, cfg.oracle_segments)
    summaries = write_tables(args.study_dir / "eval", rows)
    print(markdown_table(summaries))
    report = gap_report(summaries)
    if report:
        print(report)
    print(f"tables written to {args.study_dir / 'eval'}")


if __name__ == "__main__":
    main()
