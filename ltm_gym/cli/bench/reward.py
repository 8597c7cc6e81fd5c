"""Prefix-loss reward: one forward with per-token losses versus k forwards, one per prefix (the
original code's way), measured in the same run on the same LLM-LTM and memory.

The k-pass reference is timed twice: on the true prefix lengths (each pass costs about l / L of a
full one, so its mean cost is about half a pass) and on full-length sequences with the loss masked
to the prefix (every pass costs a full one).

  python scripts/bench_reward.py                      # tiny GPT-2 shape, 256-token segments
  python scripts/bench_reward.py --n-layer 12 --n-embd 768 --n-head 12 --batch 4
"""

from __future__ import annotations

import argparse


import torch

from ltm_gym.core.errors import run_main
from ltm_gym.core.timing import median_time

from ltm_gym.lm import LLMLTM, MemorySettings, TinyGPT2, build_tiny_gpt2
from ltm_gym.metrics import prefix_losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256, help="segment length")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm = build_tiny_gpt2(TinyGPT2(args.n_layer, args.n_embd, args.n_head, args.seq + 1), args.vocab, 0)
    model = LLMLTM(lm, MemorySettings(), bos_token_id=0).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, args.vocab, (args.batch, args.seq), generator=g)
    mem = torch.randn(args.batch, 10, 64, generator=g)
    print(f"batch {args.batch}, segment {args.seq}, GPT-2 {args.n_layer}x{args.n_embd}, memory 10x64, "
          f"{args.threads} threads; median of {args.repeats}")
    print("| k | one pass (ms) | k passes on prefixes (ms) | speed-up | k full-length passes (ms) | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    with torch.no_grad():
        for k in (1, 4, 8):
            lengths = torch.randint(1, args.seq + 1, (k,), generator=g)

            def one_pass():
                return prefix_losses(model(ids, mem)[1], lengths)

            def k_prefix_passes():
                return torch.stack([model(ids[:, :l], mem)[1].mean(1) for l in lengths.tolist()], 1)

            def k_full_passes():
                return torch.stack([model(ids, mem)[1][:, :l].mean(1) for l in lengths.tolist()], 1)

            diff = float((one_pass() - k_prefix_passes()).abs().max())
            t1, tk, tf = (median_time(f, args.repeats) for f in (one_pass, k_prefix_passes, k_full_passes))
            print(f"| {k} | {t1 * 1e3:.1f} | {tk * 1e3:.1f} | {tk / t1:.2f}x | {tf * 1e3:.1f} | {tf / t1:.2f}x | {diff:.1e} |",
                  flush=True)


if __name__ == "__main__":
    run_main(main)
