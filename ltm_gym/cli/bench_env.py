"""Steps per second of LLMMemory-v0's native VectorEnv against the original code's way, in one run.

* vector: ``LLMMemoryVectorEnv`` with N envs, one batched LM forward per step, k prefixes from it;
* one-by-one: N envs stepped in turn, each reward from k separate LM forwards on the prefixes
  (as the original code computed it), the same documents and memories;
* bare: the batched LM forward alone on the same tokens and memories; the env's overhead is
  vector step time / bare forward time - 1.

  python scripts/bench_env.py                       # tiny preset (untrained LM: timing only)
  python scripts/bench_env.py --set corpus.segment_len=256 --set corpus.synthetic.segment_len=256
"""

from __future__ import annotations

import argparse
import tempfile


import numpy as np
import torch

from ltm_gym.core.errors import run_main
from ltm_gym.core.timing import median_time

from ltm_gym.envs import LLMMemoryVectorEnv, MemoryLMBackend


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = ["corpus.synthetic.n_documents=64"] + args.overrides
    with tempfile.TemporaryDirectory() as tmp:
        backend = MemoryLMBackend.from_study(tmp, args.config, device="cpu", overrides=overrides)
    L = backend.segment_len
    print(f"segment {L} tokens, k = {args.k}, LM hidden {backend.model.hidden}, {args.threads} threads")
    print("| N | vector steps/s | one-by-one steps/s | speed-up | bare forward (ms) | vector step (ms) | env overhead |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (1, 4, 8):
        venv = LLMMemoryVectorEnv(num_envs=n, backend=backend, k=args.k, max_segments=1_000_000)
        venv.reset(seed=0)
        actions = rng.uniform(-1, 1, (n, backend.n_slots, backend.slot_dim)).astype(np.float32)
        docs = backend.docs("train")[:n]
        ids = torch.stack([d.ids[1] for d in docs])
        memory = torch.from_numpy(actions)

        def vector_step():
            venv.step(actions)

        def one_by_one():
            for i in range(n):
                lengths = rng.integers(1, L + 1, size=args.k)
                with torch.no_grad():
                    [backend.model(ids[i : i + 1, :l], memory[i : i + 1])[1].mean() for l in lengths]

        def bare():
            with torch.no_grad():
                backend.model(ids, memory)

        tv, t1, tb = (median_time(f, args.repeats) for f in (vector_step, one_by_one, bare))
        print(f"| {n} | {n / tv:.1f} | {n / t1:.1f} | {t1 / tv:.2f}x | {tb * 1e3:.1f} | {tv * 1e3:.1f} | "
              f"{(tv / tb - 1) * 100:+.0f}% |", flush=True)


if __name__ == "__main__":
    run_main(main)
