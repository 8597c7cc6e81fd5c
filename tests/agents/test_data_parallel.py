"""REINFORCE under torchrun (2 gloo ranks on CPU): the policy and the co-trained reader equal what
one process stepping all the envs trains; a run of 2 ranks killed with -9 resumes exactly; the SB3
algorithms are refused.

Policies are compared by what they do (their log-probabilities on fixed observations), not by
their raw weights: a softmax is blind to a shift of all its logits, so the gradient along such a
direction is zero up to rounding, and Adam's update of a near-zero gradient (g / (|g| + eps))
turns the rounding of a different summation order into a visible, harmless weight change."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.fixtures import ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
SCRIPT = str(ROOT / "scripts" / "train_agent.py")


def launch(ranks: int, *args: str) -> list[str]:
    if ranks == 1:
        return [sys.executable, SCRIPT, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", SCRIPT, *args]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (torchrun's workers run in sessions of their own)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def common(study, steps: int, *extra: str) -> list[str]:
    return ["--algo", "reinforce", "--steps", str(steps), "--num-envs", "8", "--seed", "3", "--device", "cpu",
            "--set", "writer.d_model=16", "--set", "writer.n_head=2", *extra,
            "--env-kwargs", f"study_dir={study.root}", "device=cpu", "action_mode=select", "adapters=select",
            "reward_mode=answer"]


def policy_outputs(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's policy's log-probabilities over the segment positions of fixed observations (the
    reset memory's empty slots have a fixed -1e4 logit, whose float32 rounding is ~1e-3), and the
    same for its untrained start."""
    from ltm_gym.agents.reinforce import to_tensors
    from ltm_gym.agents.training import RunConfig, build

    _, agent = build(RunConfig.load(run_dir), None, num_envs=6)
    obs, _ = agent.env.reset(seed=11)
    L = obs["tokens"].shape[-1]
    assert not obs["memory"].any()
    with torch.no_grad():
        start = torch.log_softmax(agent.policy.net(to_tensors(obs, agent.device)), -1)[:, :L]
        agent.load(run_dir / "agent.pt")
        trained = torch.log_softmax(agent.policy.net(to_tensors(obs, agent.device)), -1)[:, :L]
    return trained, start


def reader_losses(study, reader: Path | None) -> torch.Tensor:
    """The select reader's token losses on fixed segments and memories (``reader``: a co-trained one)."""
    from ltm_gym.envs import MemoryLMBackend
    from ltm_gym.lm import selection_codes

    backend = MemoryLMBackend.from_study(study.root, adapters="select", device="cpu")
    if reader is not None:
        backend.model.load_adapters(reader)
    ids = torch.stack([d.ids[1] for d in backend.docs("test")[:4]])
    prev = torch.stack([d.ids[0] for d in backend.docs("test")[:4]])
    mem = selection_codes(backend.model, prev)[:, ::6][:, :backend.n_slots]
    with torch.no_grad():
        return backend.model(ids, mem)[1]


def test_two_ranks_train_what_one_process_trains(tiny_study, tmp_path):
    args = common(tiny_study, 48, "--set", "rollout=step", "--set", "gamma=0", "--set", "group_size=4")
    args += ["lm_update=true", "lm_lr=1e-3"]
    run(launch(2, *args, "--run-dir", str(tmp_path / "two")))
    run(launch(1, *args, "--run-dir", str(tmp_path / "one")))
    two, start = policy_outputs(tmp_path / "two")
    one, _ = policy_outputs(tmp_path / "one")
    torch.testing.assert_close(two, one, atol=1e-5, rtol=0)
    assert (one - start).abs().max() > 1e-3                      # it trained: not a trivially equal pair
    states = [torch.load(tmp_path / r / "agent.pt", weights_only=False) for r in ("two", "one")]
    assert states[0]["num_timesteps"] == states[1]["num_timesteps"] == 48 and states[0]["updates"] == 6
    assert states[0]["world_size"] == 2 and len(states[0]["ranks"]) == 2 and "world_size" not in states[1]
    per_rank = [r["env"]["reader"] for r in states[0]["ranks"]]            # the reader each rank holds
    assert per_rank[0].keys() == per_rank[1].keys() and all(torch.equal(per_rank[0][k], per_rank[1][k]) for k in per_rank[0])
    readers = [reader_losses(tiny_study, tmp_path / r / "reader.safetensors") for r in ("two", "one")]
    torch.testing.assert_close(readers[0], readers[1], atol=1e-5, rtol=0)
    assert (readers[1] - reader_losses(tiny_study, None)).abs().max() > 1e-4
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@pytest.mark.slow
def test_whole_episode_rollouts_on_two_ranks_equal_one_process(tiny_study, tmp_path):
    args = common(tiny_study, 96, "--set", "rollout=episode", "--set", "gamma=1", "--set", "group_size=2")
    args += ["max_segments=3"]
    run(launch(2, *args, "--run-dir", str(tmp_path / "two")))
    run(launch(1, *args, "--run-dir", str(tmp_path / "one")))
    two, start = policy_outputs(tmp_path / "two")
    one, _ = policy_outputs(tmp_path / "one")
    torch.testing.assert_close(two, one, atol=1e-5, rtol=0)
    assert (one - start).abs().max() > 1e-3
    returns = [torch.load(tmp_path / r / "agent.pt", weights_only=False) for r in ("two", "one")]
    assert sorted(sum((s["episodes"]["returns"] for s in returns[0]["ranks"]), [])) == pytest.approx(
        sorted(returns[1]["episodes"]["returns"]), abs=1e-5)


@pytest.mark.slow
def test_two_ranks_killed_and_resumed_end_as_the_uninterrupted_run(tiny_study, tmp_path):
    import time

    args = common(tiny_study, 800, "--set", "rollout=step", "--set", "gamma=0", "--set", "group_size=2",
                  "--save-every", "64")
    run(launch(2, *args, "--run-dir", str(tmp_path / "a")))
    b = tmp_path / "b"
    proc = subprocess.Popen(launch(2, *args, "--run-dir", str(b)), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while not (b / "agent.pt").exists():
        if proc.poll() is not None:
            pytest.fail(f"ended before its first checkpoint: {proc.stderr.read()[-2000:]!r}")
        time.sleep(0.005)
    time.sleep(0.2)
    for pid in [proc.pid, *children(proc.pid)]:                    # the launcher and both ranks at once
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    saved = torch.load(b / "agent.pt", weights_only=False)["num_timesteps"]
    assert 0 < saved < 800, "the run finished before the kill; make it longer"
    with pytest.raises(AssertionError, match="2 process"):        # resumed as it ran, or refused
        run(launch(1, "--run-dir", str(b), "--resume"))
    run(launch(2, "--run-dir", str(b), "--resume"))
    a_state, b_state = (torch.load(p / "agent.pt", weights_only=False) for p in (tmp_path / "a", b))
    for k in a_state["policy"]:
        assert torch.equal(a_state["policy"][k], b_state["policy"][k]), k
    assert [r["episodes"]["returns"] for r in a_state["ranks"]] == [r["episodes"]["returns"] for r in b_state["ranks"]]


def test_sb3_algorithms_are_refused_under_torchrun(tiny_study, tmp_path):
    out = subprocess.run(launch(2, "--algo", "ppo", "--steps", "16", "--num-envs", "2", "--run-dir",
                                str(tmp_path / "ppo"), "--env-kwargs", f"study_dir={tiny_study.root}", "device=cpu"),
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "--algo ppo under torchrun (2 processes)" in out.stderr and "without torchrun" in out.stderr
    assert not (tmp_path / "ppo" / "config.yaml").exists()


@pytest.mark.slow
def test_the_differentiable_writer_on_two_ranks_equals_one_process(tiny_study, tmp_path):
    from safetensors.torch import load_file

    script = str(ROOT / "scripts" / "train_bptt_memory.py")
    args = ["--set", f"study_dir={tiny_study.root}", "--set", "train.steps=6", "--set", "batch_size=4",
            "--set", "device=cpu", "--set", "writer.d_model=16", "--set", "writer.n_head=2",
            "--set", "train.eval_every=0", "--no-eval"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run([*torchrun, script, *args, "--run-dir", str(tmp_path / "two")])
    run([sys.executable, script, *args, "--run-dir", str(tmp_path / "one")])
    writers = [torch.load(tmp_path / r / "writer.pt", weights_only=False)["policy"] for r in ("two", "one")]
    readers = [load_file(str(tmp_path / r / "reader.safetensors")) for r in ("two", "one")]
    for a, b in ((writers[0], writers[1]), (readers[0], readers[1])):
        assert a.keys() == b.keys() and a
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=k)
    assert all(torch.load(tmp_path / r / "checkpoint.pt", weights_only=False)["step"] == 6 for r in ("two", "one"))
    moved = max(float((readers[1][k] - v).abs().max()) for k, v in load_file(str(tiny_study.adapter_file("memory"))).items()
                if k in readers[1])
    assert moved > 1e-4                                           # the reader trained: not a trivially equal pair
