"""Train the differentiable memory writer (the upper bound of the RL agents) and evaluate it.

The writer has the REINFORCE policy's architecture; the LM loss of the next segment is
backpropagated through the LLM-LTM into the memory it wrote, over TBPTT segments, and (with
train_reader, the default) the LLM-LTM's memory read path trains with it (RUN_DIR/reader.safetensors). The
table it prints has the writer's row beside the study's LM rows (no memory, zero / random /
shuffled / previous-segment memory, full-context oracle) and the share of the answer-token CE gap
between no memory and the oracle that each row closes.

Examples:
  python scripts/train_bptt_memory.py                                  # ltm_gym/presets/bptt-tiny.yaml
  python scripts/train_bptt_memory.py --set train.seed=1 --set tbptt=3
  python scripts/train_bptt_memory.py --run-dir runs/bptt-tiny__0__... --resume
  python scripts/train_agent.py --algo reinforce --init-from RUN_DIR/writer.pt   # warm-start RL

Under torchrun (``torchrun --nproc_per_node=R scripts/train_bptt_memory.py ...``) each rank unrolls
its slice of every batch and the gradients are averaged: R ranks equal one process on the whole
batch; rank 0 saves the writer and evaluates.

The run directory holds config.yaml, TensorBoard logs, checkpoint.pt (resume), writer.pt,
reader.safetensors and eval/bptt_table.{csv,json}.
"""

from __future__ import annotations

import argparse

from ltm_gym.baselines.bptt_memory import BPTTConfig, evaluate_writer, train_writer
from ltm_gym.core import add_run_args, announce, distributed, load_config, prepare_run_dir, run_config_source
from ltm_gym.core.errors import run_main
from ltm_gym.study.reports import report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, default_config="bptt-tiny")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"],
                        help="documents of the final evaluation (default: test)")
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    parser.add_argument("--no-lm-rows", action="store_true", help="evaluate only the writer's row")
    args = parser.parse_args(argv)
    cfg = load_config(BPTTConfig, run_config_source(args), args.overrides)
    run_dir = prepare_run_dir(args, "bptt-memory", cfg.train.seed)
    announce(run_dir)
    writer, backend = train_writer(cfg, run_dir, resume=True)
    if not distributed.current().is_main:           # under torchrun rank 0 saves and evaluates
        return
    print(f"writer: {run_dir / 'writer.pt'}")
    if args.no_eval:
        return
    rows = evaluate_writer(writer, backend, cfg, args.split, with_lm_rows=not args.no_lm_rows)
    print(report(rows, run_dir / "eval", "bptt_table"))


if __name__ == "__main__":
    run_main(main)
