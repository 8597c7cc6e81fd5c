"""Ship a finished study of the tiny preset as the package's default study (ltm_gym/default_study):
its config, tokenizer, LM and adapters, plus its table rows on the test split, which the test suite
recomputes from the shipped files (tests/study/test_shipped_study.py). The default study directory
starts as a copy of it, so an installed package needs no pre-training.

  ltm-gym pretrain-lm --study-dir runs/default-study    # build it (every LM stage, from scratch)
  ltm-gym ship-study runs/default-study                 # then ship it
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.core.errors import run_main
from ltm_gym.study import StudyDir
from ltm_gym.study.layout import SHIPPED_DIR
from ltm_gym.study.shipped import ship
from ltm_gym.study.tables import markdown_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dir", type=Path, help="a finished study of the tiny preset")
    parser.add_argument("--dest", type=Path, default=SHIPPED_DIR,
                        help=f"where to write it (default: the package's {SHIPPED_DIR})")
    args = parser.parse_args(argv)
    rows = ship(StudyDir(args.study_dir), args.dest)
    print(markdown_table(rows))
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(f"\nshipped: {args.dest} ({size / 2**20:.1f} MB)")


if __name__ == "__main__":
    run_main(main)
