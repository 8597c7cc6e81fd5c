"""One prepared check of a CUDA machine (``make gpu-check``): the tests that need CUDA, then one
table of what the package does there, in a few minutes on one GPU:

* the tiny study's LM stages (pretrain, select reader): optimizer steps per second;
* REINFORCE ``select`` at recall-d4 (whole-episode rollouts, 16 envs): env steps per second on the
  shipped tiny study and on ruGPT3small's shape (12 x 768, random weights, random-token documents);
* the looped transformer's paper config: one training step, ours against the rebuilt reference
  computation, in the same run;
* peak GPU memory of each row.

On a machine without CUDA it says so and exits 0 (nothing to check). ``--skip-tests`` leaves the
pytest part out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ltm_gym.core.errors import run_main


def timed(fn, warmup: int = 1, repeats: int = 3) -> float:
    """Median seconds of ``fn()`` after ``warmup`` calls (synchronized)."""
    import torch

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_reset() -> None:
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def peak_gb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30


def stage_rows(steps: int) -> list[tuple]:
    from ltm_gym.study import StudyDir
    from ltm_gym.study.stages import run_stage

    rows = []
    sets = [f"{stage}.train.{key}" for stage in ("pretrain", "select")
            for key in (f"steps={steps}", "device=cuda", "progress=false")]
    with tempfile.TemporaryDirectory() as tmp:
        study = StudyDir(Path(tmp) / "study", "tiny", sets)
        for stage in ("pretrain", "select"):                 # the select reader reads the LM just trained
            peak_reset()
            start = time.perf_counter()
            run_stage(stage, study, resume=False)
            rows.append((f"tiny study, {stage} stage", "steps/s", steps / (time.perf_counter() - start), peak_gb()))
    return rows


def agent_rows(steps: int) -> list[tuple]:
    import gymnasium as gym

    import ltm_gym  # noqa: F401  (registers the env ids)
    from ltm_gym.agents import make
    from ltm_gym.cli.bench.env import build_model, documents
    from ltm_gym.envs import LLMMemoryVectorEnv, MemoryLMBackend

    rows = []
    for name in ("tiny", "rugpt3small-shape"):
        peak_reset()
        if name == "tiny":
            env = gym.make_vec("ltm_gym/LLMMemory-v0", num_envs=16, vectorization_mode="vector_entry_point",
                               task="recall-d4", action_mode="select", adapters="select", reward_mode="answer",
                               device="cuda")
        else:
            model = build_model(name)
            docs = documents(model.vocab_size, 64, 10, 64)
            backend = MemoryLMBackend(model, {"train": docs, "validation": docs[:4], "test": docs[:4]}, device="cuda")
            env = LLMMemoryVectorEnv(16, backend=backend, action_mode="select", reward_mode="answer")
        agent = make("reinforce", env, device="cuda", seed=0, rollout="episode", group_size=4, keep_prior=2.0)
        agent.learn(160)                                                   # warm-up: kernels, allocator
        start, before = time.perf_counter(), agent.num_timesteps
        agent.learn(steps)
        rows.append((f"REINFORCE select, recall-d4 layout, {name}", "env steps/s",
                     (agent.num_timesteps - before) / (time.perf_counter() - start), peak_gb()))
    return rows


def looped_rows() -> list[tuple]:
    import torch

    from ltm_gym.baselines.looped.models import ModelConfig, RegressionTransformer, regression_loss
    from ltm_gym.baselines.looped.reference import N_EMBD, N_GRAD, N_HEAD, N_LOOPS, reference_model
    from ltm_gym.baselines.looped.tasks import sample_regression

    rows = []
    for label, reference in (("ours", False), ("reference", True)):
        peak_reset()
        torch.manual_seed(0)
        model = reference_model("looped") if reference else RegressionTransformer(
            ModelConfig(kind="looped", n_dims=20, n_embd=N_EMBD, n_head=N_HEAD, n_layer=1))
        model = model.cuda()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(0)

        def step() -> None:
            batch = {k: v.cuda(non_blocking=True) for k, v in sample_regression(64, 41, 20, 20, g).items()}
            with torch.autocast("cuda", torch.bfloat16):
                preds = (model(batch["xs"], batch["ys"]) if reference
                         else model(batch["xs"], batch["ys"], n_loops=N_LOOPS, n_grad=N_GRAD))
            regression_loss(preds.float(), batch["ys"]).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        rows.append((f"looped paper config, one training step ({label})", "s/step", timed(step), peak_gb()))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-tests", action="store_true", help="leave the CUDA tests out")
    parser.add_argument("--stage-steps", type=int, default=200)
    parser.add_argument("--agent-steps", type=int, default=3200)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"gpu-check needs CUDA; this machine has none (torch {torch.__version__}): nothing to check")
        return
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    if not args.skip_tests:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"])
        if done.returncode not in (0, 5):                                  # 5: no test selected
            raise SystemExit(done.returncode)
    rows = stage_rows(args.stage_steps) + agent_rows(args.agent_steps) + looped_rows()
    print("\n| what | unit | value | peak GPU memory (GiB) |\n|---|---|---|---|")
    for what, unit, value, peak in rows:
        print(f"| {what} | {unit} | {value:.4g} | {peak:.2f} |")


if __name__ == "__main__":
    run_main(main)
