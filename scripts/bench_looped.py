#!/usr/bin/env python
"""Seconds per training step and peak memory of the looped study at the paper's configuration.

Each configuration runs in its own process (peak RSS is per process), with 2 threads, batch 64:
looped (L = 1, n_embd 256, 8 heads, b = 20, T = 15) and GPT-2 (L = 12), at d = 20 / 41 points and
at the curriculum start (d = 5 / 11 points). The public reference code is not installable here, so
its figures, measured on this machine (torch 2.13 CPU, fp32), are the reference of the ratio.

  python scripts/bench_looped.py                 # fp32, 5 timed steps each
  python scripts/bench_looped.py --precision bf16 --checkpoint-loops 3   # recompute 3 of the T loops
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (kind, d, points): reference s/step, reference peak GB (public code on this machine)
CASES = {
    ("looped", 20, 41): (5.5, 3.4),
    ("looped", 5, 11): (1.33, 1.2),
    ("gpt2", 20, 41): (4.1, 3.0),
    ("gpt2", 5, 11): (None, None),
}


def worker(kind: str, d: int, points: int, steps: int, precision: str, threads: int, ckpt: int) -> dict:
    import torch

    from baselines.looped.models import ModelConfig, RegressionTransformer, regression_loss
    from baselines.looped.tasks import sample_regression
    from ltm_gym.core import autocast

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, n_dims=20, n_embd=256, n_head=8, n_layer=12 if kind == "gpt2" else 1,
                      checkpoint_loops=ckpt)
    model = RegressionTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        batch = sample_regression(64, points, 20, d, g)
        t0 = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            preds = model(batch["xs"], batch["ys"], n_loops=20, n_grad=15)
        regression_loss(preds.float(), batch["ys"]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return {"median_s": statistics.median(times), "peak_gb": peak_gb}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-loops", type=int, default=0, metavar="N",
                        help="recompute the first N of the T gradient-tracked loops in backward (default 0)")
    parser.add_argument("--only", choices=["looped", "gpt2"], default=None)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "D", "POINTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, d, points = args.worker[0], int(args.worker[1]), int(args.worker[2])
        print(json.dumps(worker(kind, d, points, args.steps, args.precision, args.threads, args.checkpoint_loops)))
        return
    print(f"precision {args.precision}, {args.threads} threads, batch 64, b = 20, T = 15"
          + (f", {args.checkpoint_loops} checkpointed loops" if args.checkpoint_loops else ""))
    print("| model | d / points | s / step | ref s / step | speed-up | peak GB | ref GB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for (kind, d, points), (ref_s, ref_gb) in CASES.items():
        if args.only and kind != args.only:
            continue
        cmd = [sys.executable, __file__, "--worker", kind, str(d), str(points), "--steps", str(args.steps),
               "--precision", args.precision, "--threads", str(args.threads)]
        if args.checkpoint_loops:
            cmd += ["--checkpoint-loops", str(args.checkpoint_loops)]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        speed = f"{ref_s / out['median_s']:.2f}x" if ref_s else "-"
        mem = f"{out['peak_gb'] / ref_gb:.2f}" if ref_gb else "-"
        print(f"| {kind} | {d} / {points} | {out['median_s']:.2f} | {ref_s or '-'} | {speed} | "
              f"{out['peak_gb']:.2f} | {ref_gb or '-'} | {mem} |", flush=True)


if __name__ == "__main__":
    main()
