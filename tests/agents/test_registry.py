import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import agents
from agents.evaluation import agent_metrics
from ltm_gym.envs import LLMMemoryVectorEnv

SMALL = {
    "reinforce": {"n_steps": 4, "writer": {"d_model": 32, "n_head": 2}},
    "ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 2, "features": {"d_model": 32, "n_head": 2}},
    "a2c": {"n_steps": 4, "features": {"d_model": 32, "n_head": 2}},
    "sac": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
    "td3": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
    "ddpg": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
    "tqc": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
}


def test_every_name_has_a_small_config():
    from agents.registry import SB3_NAMES
    from agents.sb3 import algorithms

    assert set(SMALL) == set(agents.NAMES)
    assert set(algorithms()) == set(SB3_NAMES)


@pytest.mark.parametrize("name", agents.NAMES)
def test_train_save_load_identical(backend, name, tmp_path):
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend)
    agent = agents.make(name, env, device="cpu", seed=0, run_dir=tmp_path, **SMALL[name])
    obs, _ = env.reset(seed=3)
    before = agent.predict(obs)[0]
    agent.learn(200)
    assert agent.num_timesteps >= 200
    after, _ = agent.predict(obs)
    assert after.shape == (2, 4, 16) and after.dtype == np.float32 and np.abs(after).max() <= 1
    assert not np.allclose(before, after)                        # it learned something
    path = agent.save(tmp_path / ("agent.pt" if name == "reinforce" else "agent.zip"))
    twin = agents.make(name, LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu", seed=5, **SMALL[name])
    twin.load(path)
    assert np.array_equal(twin.predict(obs)[0], after)
    assert list((tmp_path / "tb").iterdir())                     # TensorBoard events written
    m = agent_metrics(twin, backend, "test", batch=4)
    assert m.tokens > 0 and np.isfinite(m.summary()["ce"])


def test_unknown_agent_lists_known():
    with pytest.raises(ValueError, match="known agents: reinforce, ppo"):
        agents.make("dqn", None)


def test_train_agent_script_runs_and_resumes(backend, tmp_path):
    root = Path(__file__).resolve().parents[2]
    study = backend  # noqa: F841 (the script builds its own small study below)
    from ltm_gym.core import to_dict
    from tests.fixtures import tiny_study_config

    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    run = tmp_path / "run"
    cmd = [sys.executable, str(root / "scripts/train_agent.py"), "--algo", "reinforce", "--steps", "16",
           "--num-envs", "2", "--run-dir", str(run), "--device", "cpu", "--set", "n_steps=2",
           "--env-kwargs", f"study_dir={tmp_path}", f"config={cfg}", "device=cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "agent.pt").is_file() and (run / "config.yaml").is_file()
    state = torch.load(run / "agent.pt", weights_only=False)
    assert state["num_timesteps"] == 16
    out = subprocess.run([sys.executable, str(root / "scripts/train_agent.py"), "--run-dir", str(run), "--resume",
                          "--steps", "24"], capture_output=True, text=True, timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed at 16 env steps" in out.stdout
    assert torch.load(run / "agent.pt", weights_only=False)["num_timesteps"] == 24
