"""The study's tables 1 and 2 (CE, perplexity, top-k accuracy K = 5..100) plus recall columns, for
the LoRA baseline, the memory LM with zero / random / shuffled / previous-segment memory, and the
full-context oracle, on the test split. Markdown to the terminal; CSV and JSON (with per-position
loss curves) to STUDY_DIR/eval.

  python scripts/evaluate_lm.py                          # the default study
  python scripts/evaluate_lm.py --study-dir runs/study-tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.core.errors import run_main
from ltm_gym.study.layout import StudyNotFoundError
from ltm_gym.study import StudyDir
from ltm_gym.study.scoring import study_dir_rows
from ltm_gym.study.reports import report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-dir", type=Path, default=None,
                        help="study directory (default: $LTM_GYM_STUDY_DIR or ~/.cache/ltm_gym/study-tiny)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--select-reader", action="store_true",
                        help="add the select reader with n_slots random positions of the previous segment "
                             "(a selection agent's reference)")
    args = parser.parse_args(argv)

    study = StudyDir(args.study_dir)
    rows = study_dir_rows(study, args.split, select_reader=args.select_reader)
    if not rows:
        raise StudyNotFoundError(f"{study.adapter_file('lora')} is missing: run scripts/pretrain_lm.py --study-dir "
                                 f"{study.root} first")
    print(report(rows, study.eval_dir))


if __name__ == "__main__":
    run_main(main)
