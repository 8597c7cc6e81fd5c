"""Ship a finished study of the tiny preset as the package's default study (ltm_gym/default_study),
or of the babi-tiny / babi-spelled preset as the study ``study_dir=NAME`` names (ltm_gym/studies/NAME):
its config, tokenizer, LM and adapters, plus its table rows on the test split, which the test suite
recomputes from the shipped files (tests/study/test_shipped_study.py). The default study directory
starts as a copy of it, so an installed package needs no pre-training.

  ltm-gym pretrain-lm --study-dir runs/default-study    # build it (every LM stage, from scratch)
  ltm-gym ship-study runs/default-study                 # then ship it
  ltm-gym pretrain-lm --study-dir runs/babi-tiny --config babi-tiny && ltm-gym ship-study runs/babi-tiny
  ltm-gym pretrain-lm --study-dir runs/babi-spelled --config babi-spelled && ltm-gym ship-study runs/babi-spelled
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.core.errors import run_main
from ltm_gym.study import StudyDir
from ltm_gym.study.layout import SHIPPED_STUDIES
from ltm_gym.study.shipped import ship
from ltm_gym.study.reports import markdown_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir", type=Path, help=f"a finished study of a shipped preset ({', '.join(SHIPPED_STUDIES)})")
    parser.add_argument("--dest", type=Path, default=None,
                        help="where to write it (default: where the package ships its preset's study)")
    args = parser.parse_args(argv)
    study = StudyDir(args.study_dir)
    rows = ship(study, args.dest)
    dest = args.dest or SHIPPED_STUDIES[study.config.name]
    print(markdown_table(rows))
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"\nshipped: {dest} ({size / 2**20:.1f} MB)")


if __name__ == "__main__":
    run_main(main)
