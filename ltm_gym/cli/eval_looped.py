"""Evaluate a trained looped-study run: error per in-context example and error vs loop iteration.

Example:
  python scripts/eval_looped.py --run-dir runs/looped-cpu__0__... --n-loops 120
"""

from __future__ import annotations

import argparse
from pathlib import Path


from baselines.looped.models import RegressionTransformer
from baselines.looped.study import LoopedConfig, evaluate
from ltm_gym.core import load_checkpoint, load_config
from ltm_gym.core.errors import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a run written by train_looped.py")
    parser.add_argument("--n-loops", type=int, default=None, help="loop iterations (default: eval.n_loops)")
    parser.add_argument("--n-prompts", type=int, default=None, help="prompts (default: eval.n_prompts)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: RUN_DIR/eval)")
    args = parser.parse_args(argv)
    cfg = load_config(LoopedConfig, args.run_dir / "config.yaml")
    model = RegressionTransformer(cfg.model)
    model.load_state_dict(load_checkpoint(args.run_dir / "checkpoint.pt")["model"])
    out = args.out or args.run_dir / "eval"
    summary = evaluate(cfg, model, out, n_loops=args.n_loops, n_prompts=args.n_prompts)
    for name, values in summary.items():
        print(f"{name:>28}: " + " ".join(f"{v:.3f}" for v in values[:: max(1, len(values) // 12)]))
    print(f"written to {out}")


if __name__ == "__main__":
    run_main(main)
