import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ltm_gym.agents as agents
from ltm_gym.agents.evaluation import agent_metrics
from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv

SMALL = {
    "reinforce": {"n_steps": 4, "rollout": "step", "writer": {"d_model": 32, "n_head": 2}},
    "ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 2, "features": {"d_model": 32, "n_head": 2}},
    "a2c": {"n_steps": 4, "features": {"d_model": 32, "n_head": 2}},
    "sac": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
    "td3": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
    "ddpg": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
    "tqc": {"learning_starts": 32, "batch_size": 16, "buffer_size": 500, "features": {"d_model": 32, "n_head": 2}},
}


def tensorboard_tags(log_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in log_dir.glob("events.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def test_every_name_has_a_small_config():
    from ltm_gym.agents.registry import SB3_NAMES
    from ltm_gym.agents.sb3 import algorithms

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
    tags = tensorboard_tags(tmp_path / "tb")                   # one logger: charts and the algorithm's losses
    assert "charts/reward_mean" in tags and any(t.startswith("losses/") for t in tags), tags
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["step"] <= agent.num_timesteps for r in rows)
    assert {k for r in rows for k in r} >= {"step", "charts/reward_mean"}
    m = agent_metrics(twin, LLMMemoryEnv(backend=backend, split="test"), n_documents=3)
    assert m.tokens == 3 * 2 * 32 and np.isfinite(m.summary()["ce"])


@pytest.mark.parametrize("name", agents.NAMES)
def test_make_wraps_a_single_env_from_gym_make(default_study, name, tmp_path):
    import gymnasium as gym

    env = gym.make("ltm_gym/LLMMemory-v0", device="cpu")
    agent = agents.make(name, env, device="cpu", seed=0, **SMALL[name])
    assert isinstance(agent, agents.Agent)
    agent.learn(40)
    assert agent.num_timesteps >= 40
    obs, _ = env.reset(seed=1)
    action, _ = agent.predict(obs)
    assert action.shape == env.action_space.shape and env.action_space.contains(action)
    path = agent.save(tmp_path / agent.file_name)
    twin = agents.make(name, gym.make("ltm_gym/LLMMemory-v0", device="cpu"), device="cpu", seed=9, **SMALL[name])
    twin.load(path)
    assert np.array_equal(twin.predict(obs)[0], action)


def test_make_names_an_env_it_cannot_use():
    import gymnasium as gym

    with pytest.raises(TypeError, match="CartPoleEnv"):
        agents.make("ppo", gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="SyncVectorEnv"):
        agents.make("ppo", gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))


def test_make_steps_gymnasiums_sync_vector_env(default_study):
    import gymnasium as gym

    venv = gym.make_vec("ltm_gym/LLMMemory-v0", num_envs=2, vectorization_mode="sync", device="cpu")
    agent = agents.make("ppo", venv, device="cpu", seed=0, **SMALL["ppo"])
    assert agent.env.num_envs == 2 and agent.env.backend is venv.envs[0].unwrapped.backend
    agent.learn(40)                                              # the sync env's episodes end and reset
    assert agent.num_timesteps >= 40


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
           "--num-envs", "2", "--run-dir", str(run), "--device", "cpu", "--set", "n_steps=2", "--set", "group_size=2",
           "--env-kwargs", f"study_dir={tmp_path}", f"config={cfg}", "device=cpu", "untrained=true"]
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


def test_make_honours_time_limits_and_refuses_other_wrappers(default_study):
    import gymnasium as gym
    from gymnasium.wrappers import FlattenObservation, TimeLimit

    env = gym.make("ltm_gym/LLMMemory-v0", device="cpu", max_episode_steps=1)
    agent = agents.make("reinforce", env, device="cpu", seed=0, **SMALL["reinforce"])
    assert agent.env.episodes.s.max_segments == 1
    agent.learn(8)
    assert len(agent.episode_returns) >= 8 // agent.env.num_envs     # every step ends an episode
    nested = TimeLimit(gym.make("ltm_gym/LLMMemory-v0", device="cpu", max_segments=3), max_episode_steps=2)
    assert agents.make("reinforce", nested, device="cpu", **SMALL["reinforce"]).env.episodes.s.max_segments == 2
    with pytest.raises(TypeError, match="FlattenObservation"):
        agents.make("ppo", FlattenObservation(gym.make("ltm_gym/LLMMemory-v0", device="cpu")))
    sync = gym.make_vec("ltm_gym/LLMMemory-v0", num_envs=2, vectorization_mode="sync", device="cpu",
                        max_episode_steps=1)
    assert agents.make("ppo", sync, device="cpu", **SMALL["ppo"]).env.episodes.s.max_segments == 1


def test_a_resumed_run_log_drops_the_rows_it_will_write_again(tmp_path):
    from ltm_gym.agents.base import RunLogger

    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "x": s}) + "\n" for s in (10, 20, 30)))
    logger = RunLogger(tmp_path)
    logger.scalars({"x": 2.0}, 20)                               # resumed from the checkpoint at step 20
    logger.flush()
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [10, 20]


def test_make_applies_the_preset_the_command_uses(backend):
    """agents.make("ppo", env) is train-agent's PPO: the shipped preset, config merged over it."""
    from ltm_gym.agents.registry import hyperparams

    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", obs_mode="tokens")
    preset = hyperparams("ppo", "select")
    agent = agents.make("ppo", env, device="cpu", features={"d_model": 32, "n_head": 2}, n_steps=8, batch_size=16)
    assert agent.model.n_steps == 8 and agent.model.n_epochs == preset["n_epochs"]
    bare = agents.make("ppo", env, device="cpu", preset=False, n_steps=8, batch_size=16,
                       features={"d_model": 32, "n_head": 2})
    assert bare.model.n_epochs == 10                                     # SB3's own default
    agent.learn(16).learn(16)                                            # n more each time, as SB3's learn
    assert agent.num_timesteps == 32
    with pytest.raises(ValueError, match=r"learn\(-1\): steps is a whole number"):
        agent.learn(-1)


def test_make_gives_reinforce_its_preset_and_says_when_the_env_cannot_hold_its_groups(backend):
    """agents.make("reinforce", env) is train-agent's REINFORCE: the preset, keywords over it; on an
    env whose num_envs is not a multiple of its group, the rollout keys fall back, with a warning."""
    import warnings

    from ltm_gym.agents.registry import hyperparams

    preset = hyperparams("reinforce", "select")
    small = {"writer": {"d_model": 32, "n_head": 2}}
    four = LLMMemoryVectorEnv(num_envs=4, backend=backend, action_mode="select", obs_mode="tokens")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = agents.make("reinforce", four, device="cpu", keep_prior=0.5, **small)
    cfg = agent.cfg
    assert (cfg.rollout, cfg.gamma, cfg.group_size) == (preset["rollout"], preset["gamma"], preset["group_size"]) == ("episode", 1.0, 4)
    assert cfg.keep_prior == 0.5 and cfg.writer.d_model == 32 and cfg.writer.local_window == preset["writer"]["local_window"]
    two = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", obs_mode="tokens")
    with pytest.warns(UserWarning, match=r"num_envs a multiple of 4; this env has 2.*rollout='step', gamma=0.0.*num_envs=4"):
        fallback = agents.make("reinforce", two, device="cpu", **small)
    assert (fallback.cfg.rollout, fallback.cfg.gamma, fallback.cfg.keep_prior) == ("step", 0.0, preset["keep_prior"])
    fallback.learn(4)                                       # it runs on 2 envs
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # a rollout given is the user's choice: no warning
        assert agents.make("reinforce", two, device="cpu", rollout="step", gamma=0.5, **small).cfg.gamma == 0.5
        assert agents.make("reinforce", two, device="cpu", preset=False, **small).cfg.keep_prior == 0.0


@pytest.mark.parametrize("name", ["sac", "td3", "ddpg", "tqc"])
def test_off_policy_agents_get_the_selection_policy_on_selection_envs(backend, name):
    """agents.make (so train-agent) gives every off-policy algorithm its select preset on a selection
    env (the shared candidate head and additive critic) and SB3's dense policy elsewhere."""
    import warnings

    from ltm_gym.agents.sb3_selection import SELECTION_POLICIES

    small = {"features": {"d_model": 16, "n_head": 2}, "buffer_size": 100}
    select = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", obs_mode="tokens")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no warning left for any of them
        agent = agents.make(name, select, device="cpu", **small)
    assert type(agent.model.policy) is SELECTION_POLICIES[name]
    dense = agents.make(name, LLMMemoryVectorEnv(num_envs=2, backend=backend), device="cpu", **small)
    assert type(dense.model.policy) is not SELECTION_POLICIES[name]


def test_a_run_starts_from_another_runs_directory(backend, tmp_path):
    """--init-from RUN_DIR (a curriculum: a run of an easier level) starts from that run's agent file;
    a run of another algorithm is refused by name."""
    from ltm_gym.agents.training import start_file
    from ltm_gym.core import UserError

    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", obs_mode="tokens")
    easy = agents.make("td3", env, device="cpu", **SMALL["td3"])
    easy.save(tmp_path / "d1" / "agent.zip")
    harder = agents.make("td3", env, device="cpu", seed=1, **SMALL["td3"])
    assert start_file(tmp_path / "d1", harder) == tmp_path / "d1" / "agent.zip"
    assert start_file(tmp_path / "d1" / "agent.zip", harder) == tmp_path / "d1" / "agent.zip"
    pairs = list(zip(easy.model.policy.parameters(), harder.model.policy.parameters()))
    assert not all(torch.equal(a, b) for a, b in pairs)              # two seeds start apart
    harder.init_from(start_file(tmp_path / "d1", harder))
    for (name, a), b in zip(easy.model.policy.named_parameters(), harder.model.policy.parameters()):
        assert torch.equal(a, b), name
    reinforce = agents.make("reinforce", env, device="cpu", preset=False, **SMALL["reinforce"])
    with pytest.raises(UserError, match=r"with agent.pt, a run of the same algorithm \(this one has agent.zip\)"):
        start_file(tmp_path / "d1", reinforce)
