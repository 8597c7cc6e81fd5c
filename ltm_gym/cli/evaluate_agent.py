"""Evaluate a saved agent on the test split: its row (CE, perplexity, top-k K = 5..100, recall on
the synthetic corpus) beside the LM rows (LoRA baseline, zero / random / shuffled /
previous-segment memory, full-context oracle). The agent steps the env document by document.
Markdown to the terminal, CSV and JSON to RUN_DIR/eval.

  python scripts/evaluate_agent.py --run-dir runs/LLMMemory-v0__reinforce__0__...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.agents.evaluation import evaluate_run
from ltm_gym.core.errors import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a run written by scripts/train_agent.py")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--no-lm-rows", action="store_true", help="only the agent's row")
    args = parser.parse_args(argv)
    print(evaluate_run(args.run_dir, args.split, with_lm_rows=not args.no_lm_rows))


if __name__ == "__main__":
    run_main(main)
