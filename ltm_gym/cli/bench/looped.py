"""Seconds per training step and peak memory of the looped study at the paper's configuration.

Each configuration runs in its own process (peak RSS is per process), with 2 threads, batch 64:
looped (L = 1, n_embd 256, 8 heads, b = 20, T = 15) and GPT-2 (L = 12), at d = 20 / 41 points and
at the curriculum start (d = 5 / 11 points).

The reference is measured in the same run: the public reference code's computation rebuilt here
(``ReferenceModel``: its nanoGPT-style block with SDPA attention and the tanh-GELU written out
elementwise, all 2n prompt tokens, fp32), run in its own process right after ours, run by run, so
that both see the same machine. The public code's own figures on this machine (from the study's
reference notes) are printed beside it.

Also printed: this machine's fp32 matmul peak (square 2048 GEMMs and the step's own largest GEMM
shape, same threads), each step's FLOPs (counted by torch's FlopCounterMode on one step) and the
share of that peak a step reaches; ``--profile N`` adds the N most expensive operators of one step
of ours (self CPU time), to see where the time goes.

  python scripts/bench_looped.py --precision bf16 --runs 3   # median and range of 3 runs each
  python scripts/bench_looped.py --checkpoint-loops 3        # fp32, recompute 3 of the T loops
  python scripts/bench_looped.py --only looped --no-reference --profile 15
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

from ltm_gym.core.errors import run_main
from ltm_gym.core.timing import median_time

# (kind, d, points): the public code's s/step and peak GB on this machine (torch 2.13 CPU, fp32)
CASES = {
    ("looped", 20, 41): (5.5, 3.4),
    ("looped", 5, 11): (1.33, 1.2),
    ("gpt2", 20, 41): (4.1, 3.0),
    ("gpt2", 5, 11): (None, None),
}
BATCH = 64


def gemm_peak(threads: int, shapes: list[tuple[int, int, int]], repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of fp32 (m x k) @ (k x n) products (median time), per shape "m x k x n"."""
    import torch

    torch.set_num_threads(threads)
    out = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        out[f"{m} x {k} x {n}"] = 2 * m * k * n / median_time(lambda: a @ b, repeats) / 1e9
    return out


def worker(kind: str, d: int, points: int, steps: int, precision: str, threads: int, ckpt: int,
           reference: bool, profile: int = 0) -> dict:
    import torch

    from ltm_gym.baselines.looped.models import ModelConfig, RegressionTransformer, regression_loss
    from ltm_gym.baselines.looped.reference import N_EMBD, N_GRAD, N_HEAD, N_LOOPS, reference_model
    from ltm_gym.baselines.looped.tasks import sample_regression
    from ltm_gym.core import autocast
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if reference:
        model, precision = reference_model(kind), "fp32"
    else:
        cfg = ModelConfig(kind=kind, n_dims=20, n_embd=N_EMBD, n_head=N_HEAD, n_layer=12 if kind == "gpt2" else 1,
                          checkpoint_loops=ckpt)
        model = RegressionTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        batch = sample_regression(BATCH, points, 20, d, g)
        with autocast(torch.device("cpu"), precision):
            preds = (model(batch["xs"], batch["ys"]) if reference
                     else model(batch["xs"], batch["ys"], n_loops=N_LOOPS, n_grad=N_GRAD))
        regression_loss(preds.float(), batch["ys"]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    counter = FlopCounterMode(display=False)
    with counter:  # the first step warms up allocators and kernels; it is not timed
        step()
    median_s = median_time(step, steps, warmup=False)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    out = {"median_s": median_s, "peak_gb": peak_gb, "tflop": counter.get_total_flops() / 1e12}
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        out["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile)
    return out


def run_case(kind: str, d: int, points: int, args: argparse.Namespace, reference: bool) -> dict:
    cmd = [sys.executable, "-m", "ltm_gym.cli.bench.looped", "--worker", kind, str(d), str(points), "--steps", str(args.steps),
           "--precision", args.precision, "--threads", str(args.threads),
           "--checkpoint-loops", str(args.checkpoint_loops), "--profile", str(0 if reference else args.profile)] \
        + (["--reference"] if reference else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    """The median, and the range when there are several runs."""
    med = f"{statistics.median(values):.2f}"
    return med if len(values) == 1 else f"{med} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process (default 5)")
    parser.add_argument("--runs", type=int, default=1,
                        help="processes per configuration, ours and the reference alternating; the table "
                             "gives medians and ranges (default 1)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32",
                        help="ours; the reference is fp32. auto: bf16 where the CPU has AVX512-BF16/AMX, else "
                             "fp32; bf16 on a CPU without them is refused unless --force (emulated, ~30x slower)")
    parser.add_argument("--force", action="store_true", help="run bf16 even where the CPU emulates it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-loops", type=int, default=0, metavar="N",
                        help="recompute the first N of the T gradient-tracked loops in backward (default 0)")
    parser.add_argument("--only", choices=["looped", "gpt2"], default=None)
    parser.add_argument("--no-reference", action="store_true", help="skip the same-run reference (faster)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N most expensive operators of one step of ours (self CPU time)")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "D", "POINTS"), help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.runs < 1 or args.profile < 0:
        parser.error(f"--steps ({args.steps}) and --runs ({args.runs}) must be >= 1, --profile ({args.profile}) >= 0")
    if args.worker:
        kind, d, points = args.worker[0], int(args.worker[1]), int(args.worker[2])
        print(json.dumps(worker(kind, d, points, args.steps, args.precision, args.threads, args.checkpoint_loops,
                                args.reference, args.profile)))
        return
    import torch

    from ltm_gym.baselines.looped.reference import N_EMBD, N_GRAD, N_LOOPS
    from ltm_gym.core import bf16_support

    native, why = bf16_support(torch.device("cpu"))
    if args.precision == "auto":
        args.precision = "bf16" if native else "fp32"
    elif args.precision == "bf16" and not native and not args.force:
        parser.error(f"--precision bf16 on a {why}; use --precision fp32 (or --force to measure it anyway)")
    print(f"bf16 on this machine: {'native' if native else 'not native'} ({why})")

    paper_tokens = 2 * 41 - 1   # 41 points, the last y token not computed
    shapes = [(2048, 2048, 2048), (BATCH * paper_tokens, N_EMBD, 4 * N_EMBD)]   # square; the step's MLP product
    peaks = gemm_peak(args.threads, shapes)
    peak = max(peaks.values())
    print(f"fp32 matmul, {args.threads} threads: " + ", ".join(f"{k}: {v:.0f} GFLOP/s" for k, v in peaks.items()))
    print(f"ours: {args.precision}, {args.threads} threads, batch {BATCH}, b = {N_LOOPS}, T = {N_GRAD}"
          + (f", {args.checkpoint_loops} checkpointed loops" if args.checkpoint_loops else "")
          + (f"; median (range) of {args.runs} runs" if args.runs > 1 else ""))
    print("| model | d / points | TFLOP / step | s / step | share of fp32 peak | ref s / step (this run) | speed-up "
          "| peak GB | ref GB (this run) | memory ratio | public code here: s, GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (kind, d, points), (pub_s, pub_gb) in CASES.items():
        if args.only and kind != args.only:
            continue
        ours, refs = [], []
        for _ in range(args.runs):
            ours.append(run_case(kind, d, points, args, reference=False))
            if not args.no_reference:
                refs.append(run_case(kind, d, points, args, reference=True))
        secs, gbs = [o["median_s"] for o in ours], [o["peak_gb"] for o in ours]
        tflop = ours[0]["tflop"]
        share = tflop * 1e3 / statistics.median(secs) / peak
        row = [kind, f"{d} / {points}", f"{tflop:.3f}", spread(secs), f"{share:.0%}"]
        if refs:
            ref_secs, ref_gbs = [o["median_s"] for o in refs], [o["peak_gb"] for o in refs]
            # per-run ratios: each pair of processes saw the same machine
            speed = statistics.median(r / s for r, s in zip(ref_secs, secs))
            mem = statistics.median(o / r for o, r in zip(gbs, ref_gbs))
            row += [spread(ref_secs), f"{speed:.2f}x", spread(gbs), spread(ref_gbs), f"{mem:.2f}"]
        else:
            row += ["-", "-", spread(gbs), "-", "-"]
        row.append(f"{pub_s}, {pub_gb}" if pub_s else "-")
        print("| " + " | ".join(row) + " |", flush=True)
        if args.profile:
            print(ours[0]["profile"], flush=True)


if __name__ == "__main__":
    run_main(main)
