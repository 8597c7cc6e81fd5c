"""Train a GPT-2 / looped transformer on in-context linear regression, then evaluate it.

Examples:
  python scripts/train_looped.py --config looped-cpu
  python scripts/train_looped.py --config looped-paper --set model.kind=ab --set loss=huber
  python scripts/train_looped.py --run-dir runs/looped-cpu__0__... --resume
"""

from __future__ import annotations

import argparse

from ltm_gym.baselines.looped.study import LoopedConfig, evaluate, train
from ltm_gym.core import add_run_args, announce, load_config, prepare_run_dir, run_config_source
from ltm_gym.core.errors import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, default_config="looped-cpu")
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    args = parser.parse_args(argv)
    cfg = load_config(LoopedConfig, run_config_source(args), args.overrides)
    run_dir = prepare_run_dir(args, cfg.name, cfg.train.seed)
    announce(run_dir)
    model = train(cfg, run_dir, resume=True)
    if not args.no_eval:
        summary = evaluate(cfg, model, run_dir / "eval")
        d = cfg.curriculum.dims.end
        name = next(iter(summary))
        for k in sorted({d // 2, d, 2 * d, cfg.eval.n_points - 1}):   # as in compare_looped's table
            if k < cfg.eval.n_points:
                cells = "  ".join(f"{n}={v[k]:.3f}" for n, v in summary.items() if n != "loop_curve")
                print(f"error after {k:>3} examples: {cells}")
        print(f"evaluation written to {run_dir / 'eval'} ({name})")


if __name__ == "__main__":
    run_main(main)
