"""kill -9 at a random point after the first checkpoint, then resume: every long-running entry
point ends bit-identical to an uninterrupted run of the same seed (weights, metrics and, for agents,
episode returns). Ctrl-C (SIGINT) and SIGTERM end a run with one line and exit code 130 after
writing the checkpoint it resumes from: checked once per way a run catches them (the Trainer's
loop: the LM stage; REINFORCE's loop; Stable-Baselines3's callback: PPO), as the other entry
points share those loops. Each case runs its script once uninterrupted, then interrupted and
resumed once per signal, in subprocesses, two at a time (one thread each: the machine's two cores)."""

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from ltm_gym.core import to_dict
from tests.fixtures import ROOT, tiny_study_config

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args]


def run(cmd: list[str]) -> None:
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


KILL = (signal.SIGKILL,)
"""What an entry point whose loop another test already interrupts each way is checked with."""
WITH_SIGINT, WITH_SIGTERM = (signal.SIGKILL, signal.SIGINT), (signal.SIGKILL, signal.SIGTERM)


def two_at_a_time(reference: Callable[[], None], interrupted: Callable[[int], None],
                  signals: tuple[int, ...]) -> None:
    """The uninterrupted run and one interrupted-then-resumed run per signal, two processes at a
    time; the first failure is raised."""
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(reference)] + [pool.submit(interrupted, sig) for sig in signals]
        for job in jobs:
            job.result()


def kill_after_checkpoint(cmd: list[str], checkpoint: Path, seed: int, sig: int = signal.SIGKILL) -> None:
    """Start ``cmd``, wait for its first checkpoint, send ``sig`` a random moment later. SIGINT and
    SIGTERM must end it with exit code 130 and one line naming the checkpoint, no traceback."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not checkpoint.exists():
        if proc.poll() is not None:
            pytest.fail(f"{cmd[1]} ended before its first checkpoint: {proc.stderr.read()[-2000:]!r}")
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, f"{cmd[1]} finished before the kill; make its run longer"
        return
    name = signal.Signals(sig).name
    assert proc.returncode == 130, f"{cmd[1]} after {name}: exit {proc.returncode}; {err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith(f"stopped by {name} at ") and "checkpoint" in last, err[-2000:]


def tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            return torch.load(io.BytesIO(z.read("policy.pth")), weights_only=False)
    state = torch.load(path, weights_only=False)
    return {k: v for k, v in (state.get("model") or state.get("policy") or state).items() if torch.is_tensor(v)}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def metrics(path: Path) -> list[dict]:
    return [json.loads(r) for r in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill")
    cfg = d / "study.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    return d, cfg


def test_lm_stage(study_files):
    d, cfg = study_files
    args = ["--config", str(cfg), "--stage", "pretrain", "--set", "pretrain.train.steps=300",
            "--set", "pretrain.train.ckpt_every=25", "--set", "pretrain.train.eval_every=100"]

    def interrupted(sig: int) -> None:
        b = d / f"b{sig}"
        kill_after_checkpoint(script("pretrain_lm", *args, "--study-dir", str(b)), b / "stages/pretrain/checkpoint.pt",
                              1, sig)
        assert not (b / "lm").exists()
        run(script("pretrain_lm", *args, "--study-dir", str(b)))

    two_at_a_time(lambda: run(script("pretrain_lm", *args, "--study-dir", str(d / "a"))), interrupted, WITH_SIGINT)
    for sig in WITH_SIGINT:
        b = d / f"b{sig}"
        assert_same(tensors(d / "a/lm/model.safetensors"), tensors(b / "lm/model.safetensors"))
        assert metrics(d / "a/stages/pretrain/metrics.jsonl") == metrics(b / "stages/pretrain/metrics.jsonl")


@pytest.mark.parametrize("algo, extra", [
    ("reinforce", ["--set", "group_size=2", "--set", "writer.d_model=16", "--set", "writer.n_head=2"]),
    ("ppo", ["--set", "n_steps=8", "--set", "batch_size=16", "--set", "n_epochs=2", "--set", "features.d_model=16",
             "--set", "features.n_head=2"]),
    ("sac", ["--set", "learning_starts=20", "--set", "batch_size=16", "--set", "buffer_size=400",
             "--set", "features.d_model=16", "--set", "features.n_head=2"]),
])
def test_agent_training(tiny_study, tmp_path, algo, extra):
    steps = {"reinforce": "640", "ppo": "640", "sac": "300"}[algo]
    args = ["--algo", algo, "--steps", steps, "--num-envs", "2", "--seed", "4", "--device", "cpu",
            "--save-every", "32", *extra, "--env-kwargs", f"study_dir={tiny_study.root}", "device=cpu"]
    name = "agent.pt" if algo == "reinforce" else "agent.zip"

    def interrupted(sig: int) -> None:
        b = f"b{sig}"
        kill_after_checkpoint(script("train_agent", *args, "--run-dir", str(tmp_path / b)), tmp_path / b / name, 2, sig)
        run(script("train_agent", "--run-dir", str(tmp_path / b), "--resume"))

    signals = {"reinforce": WITH_SIGTERM, "ppo": WITH_SIGINT, "sac": KILL}[algo]   # SAC: PPO's callback catches them
    two_at_a_time(lambda: run(script("train_agent", *args, "--run-dir", str(tmp_path / "a"))), interrupted, signals)
    for sig in signals:
        b = f"b{sig}"
        assert_same(tensors(tmp_path / "a" / name), tensors(tmp_path / b / name))
        if algo == "reinforce":
            ra, rb = (torch.load(tmp_path / r / name, weights_only=False)["episodes"]["returns"] for r in ("a", b))
        else:
            ra, rb = (torch.load(next((tmp_path / r).glob("agent.state-*.pt")), weights_only=False)["episodes"]["returns"]
                      for r in ("a", b))
        assert len(ra) > 5 and ra == rb, sig


def test_differentiable_writer(tiny_study, tmp_path):
    args = ["--set", f"study_dir={tiny_study.root}", "--set", "train.steps=100", "--set", "train.ckpt_every=10",
            "--set", "batch_size=2", "--set", "device=cpu", "--set", "writer.d_model=16", "--set", "writer.n_head=2",
            "--set", "train.eval_every=50", "--set", "eval_documents=2", "--no-eval"]
    interrupt_each_way(tmp_path, "train_bptt_memory", args, 3)


def test_looped_training(tiny_cfg, tmp_path):
    cfg = tmp_path / "looped.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_cfg)))
    args = ["--config", str(cfg), "--set", "train.steps=600", "--set", "train.ckpt_every=20", "--no-eval"]
    interrupt_each_way(tmp_path, "train_looped", args, 4)


def interrupt_each_way(tmp_path: Path, name: str, args: list[str], seed: int) -> None:
    """A trainer-based run (checkpoint.pt, metrics.jsonl): uninterrupted, then killed and resumed;
    both end the same."""

    def interrupted(sig: int) -> None:
        b = tmp_path / f"b{sig}"
        kill_after_checkpoint(script(name, *args, "--run-dir", str(b)), b / "checkpoint.pt", seed, sig)
        run(script(name, "--run-dir", str(b), "--resume", "--no-eval"))

    two_at_a_time(lambda: run(script(name, *args, "--run-dir", str(tmp_path / "a"))), interrupted, KILL)
    for sig in KILL:                                                     # the Trainer's signals: test_lm_stage
        b = tmp_path / f"b{sig}"
        assert_same(tensors(tmp_path / "a/checkpoint.pt"), tensors(b / "checkpoint.pt"))
        assert metrics(tmp_path / "a/metrics.jsonl") == metrics(b / "metrics.jsonl")
