"""Train the Recurrent Memory Transformer (RMT) reference on a memory task and evaluate it.

The study's own LM reads M memory tokens before each segment and writes them after it; the
memory is trained end to end by backpropagation through the segments of each document, on the
answer tokens' CE, with a curriculum over the task's span (each stage from the previous stage's
weights). ``--eval`` prints the task's table (no memory, oracle, ``rmt``: answer CE, recall, the
share of the answer gap closed with its 95 % interval, recall by distance), as the agents' runs do.

Examples:
  ltm-gym train-rmt --set task=recall-d4 --eval
  ltm-gym train-rmt --set task=recall-d4 --set task.distance=3 --set train.seed=1 --eval
  ltm-gym train-rmt --set study_dir=babi-tiny --set task=babi-qa1-1k --eval --eval-tasks babi-qa1-16k
  ltm-gym train-rmt --run-dir runs/rmt__... --resume --eval

The run directory holds config.yaml, curriculum.json, TensorBoard logs and metrics.jsonl,
checkpoint.pt (resume), rmt.safetensors and eval/<task>_rmt.{csv,json}. Under torchrun each rank
unrolls its slice of every batch and the gradients are averaged.
"""

from __future__ import annotations

import argparse

from ltm_gym.baselines.rmt import RMTConfig, evaluate_rmt, train_rmt
from ltm_gym.core import add_run_args, announce, distributed, load_config, prepare_run_dir, run_config_source
from ltm_gym.core.errors import run_main
from ltm_gym.study.reports import ladder_summary, ladder_table, report, write_ladder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, default_config="rmt-tiny")
    parser.add_argument("--eval", action="store_true", help="after training, print the task's table on its test documents")
    parser.add_argument("--eval-tasks", nargs="+", metavar="TASK", default=None,
                        help="with --eval: these levels instead of the run's own (e.g. longer ones: babi-qa1-16k)")
    parser.add_argument("--documents", type=int, default=None, metavar="N",
                        help="with --eval: score the first N test documents of each task (default: all)")
    parser.add_argument("--no-lm-rows", action="store_true", help="with --eval: only the rmt row")
    args = parser.parse_args(argv)
    if args.documents is not None and args.documents < 1:
        parser.error(f"--documents {args.documents}: give a number >= 1")
    cfg = load_config(RMTConfig, run_config_source(args), args.overrides)
    run_dir = prepare_run_dir(args, "rmt", cfg.train.seed)
    announce(run_dir)
    setup = train_rmt(cfg, run_dir, resume=True)
    if not distributed.current().is_main:
        return
    print(f"rmt: {run_dir / 'rmt.safetensors'}")
    if not args.eval:
        return
    tables = evaluate_rmt(setup, args.eval_tasks, args.documents, with_lm_rows=not args.no_lm_rows)
    for name, rows in tables.items():
        stem = f"{name}_rmt".replace("/", "_")
        print(report(rows, run_dir / "eval", stem))
        if "lora_baseline" in rows and "oracle" in rows:
            summaries = ladder_summary(rows)
            write_ladder(run_dir / "eval", stem, summaries)
            print(ladder_table(name, summaries))


if __name__ == "__main__":
    run_main(main)
