"""Looped transformer vs GPT-2 on in-context linear regression, side by side (or the report's
variants in one table): trains each run (or reuses it: runs resume, a finished one is only read),
reads every model on the same prompts (looped ones at 10 b loop iterations) and writes one figure
(error / d vs in-context examples with least squares, 3-NN and averaging, bootstrap bands; error
vs loop iteration out to 10 b) and a table of the error after k = d, 2d and the last example.

Examples:
  python scripts/compare_looped.py                                  # looped-cpu vs looped-gpt2-cpu, seed 0
  python scripts/compare_looped.py --seeds 0 1 2 --gpt2-seeds 0     # three looped seeds, one GPT-2
  python scripts/compare_looped.py --variants looped nlast ab ssm ema huber mae x_noise
  python scripts/compare_looped.py --set train.steps=200 --out runs/quick   # a quick look

Outputs under --out: one run directory per model and seed (NAME-sSEED; a finished one is
reused), comparison.{png,md,json} (variants.{png,md,json} with --variants).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ltm_gym.baselines.looped.compare import (LOOP_FACTOR, VARIANTS, baselines, common_prompts, evaluate_run, figure,
                                      run_config, summary_json, table, train_or_reuse)
from ltm_gym.core.errors import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--looped", default="looped-cpu", help="preset (or YAML) of the looped run")
    parser.add_argument("--gpt2", default="looped-gpt2-cpu", help="preset (or YAML) of the GPT-2 run")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="compare these variants of --looped instead of looped vs GPT-2")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--gpt2-seeds", nargs="+", type=int, default=None,
                        help="seeds of the GPT-2 runs (default: --seeds)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of every compared config, e.g. --set train.steps=200")
    parser.add_argument("--out", type=Path, default=Path("runs/compare-looped"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if args.variants:
        plan = [(v, args.looped, VARIANTS[v], args.seeds) for v in args.variants]
    else:
        plan = [("looped", args.looped, [], args.seeds), ("gpt2", args.gpt2, [], args.gpt2_seeds or args.seeds)]
    configs = [(f"{name}-s{seed}", run_config(preset, [*over, *args.overrides], seed))
               for name, preset, over, seeds in plan for seed in seeds]      # every config checked first
    prompts = common_prompts([cfg for _, cfg in configs])
    results = []
    for name, cfg in configs:
        print(f"[{name}] {args.out / name}")
        model = train_or_reuse(cfg, args.out / name, progress=not args.no_progress)
        results.append(evaluate_run(name, cfg, model, prompts))
    first = configs[0][1]
    d = first.curriculum.dims.end
    base = baselines(first, prompts)
    stem = "variants" if args.variants else "comparison"
    figure(args.out / f"{stem}.png", results, base, d, first.eval.n_boot)
    text = table(results, base, d)
    (args.out / f"{stem}.md").write_text(text + "\n")
    summary_json(args.out / f"{stem}.json", results, base)
    print(f"squared error / d (looped models read at {LOOP_FACTOR} b loops; 'flat' = error at b -> at 10 b):")
    print(text)
    print(f"figure: {args.out / f'{stem}.png'}")


if __name__ == "__main__":
    run_main(main)
