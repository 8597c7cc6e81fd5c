"""Evaluate a trained looped-study run: error per in-context example and error vs loop iteration.

Example:
  python scripts/eval_looped.py --run-dir runs/looped-cpu__0__... --n-loops 120
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.baselines.looped.models import RegressionTransformer
from ltm_gym.baselines.looped.study import LoopedConfig, evaluate
from ltm_gym.core import load_checkpoint, load_config
from ltm_gym.core.errors import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a run written by train_looped.py")
    parser.add_argument("--n-loops", type=int, default=None, help="loop iterations (default: eval.n_loops)")
    parser.add_argument("--n-prompts", type=int, default=None, help="prompts (default: eval.n_prompts)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: RUN_DIR/eval_looped, beside training's own eval/)")
    args = parser.parse_args(argv)
    cfg = load_config(LoopedConfig, args.run_dir / "config.yaml")
    model = RegressionTransformer(cfg.model)
    model.load_state_dict(load_checkpoint(args.run_dir / "checkpoint.pt")["model"])
    out = args.out or args.run_dir / "eval_looped"
    summary = evaluate(cfg, model, out, n_loops=args.n_loops, n_prompts=args.n_prompts)
    curve = summary.pop("loop_curve", None)
    print(labelled_table("in-context examples", summary))
    if curve is not None:
        print()
        print(labelled_table("loop iteration", {"error at the last position": curve}, first=1))
    print(f"written to {out}")


def labelled_table(index: str, columns: dict[str, list[float]], first: int = 0, rows: int = 12) -> str:
    """Every column's value at about ``rows`` evenly spaced indices (and the last), one row each,
    labelled by the index (counted from ``first``)."""
    n = len(next(iter(columns.values())))
    picks = sorted(set(range(0, n, max(1, n // rows))) | {n - 1})
    width = max(12, *(len(c) for c in columns))
    lines = [f"{index:>20}  " + "  ".join(f"{c:>{width}}" for c in columns)]
    lines += [f"{i + first:>20}  " + "  ".join(f"{v[i]:>{width}.4f}" for v in columns.values()) for i in picks]
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
