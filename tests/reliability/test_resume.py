"""Agent runs resumed from their last checkpoint continue exactly as the uninterrupted run: same
weights, same episode returns (the env's episodes, generators and the RNGs are in the checkpoint)."""

import numpy as np
import pytest
import torch

from ltm_gym.agents.training import RunConfig, build, train_run
from tests.agents.test_registry import SMALL


def run_config(name: str, study, steps: int, env_kwargs: dict | None = None) -> RunConfig:
    return RunConfig(algo=name, env_kwargs={"study_dir": str(study.root), "device": "cpu", **(env_kwargs or {})},
                     num_envs=2, steps=steps, seed=3, device="cpu", hyperparams=SMALL[name])


def weights(agent) -> torch.Tensor:
    model = agent.policy.net if hasattr(agent, "policy") else agent.model.policy
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


def stopped_after_first_checkpoint(cfg: RunConfig, run_dir, every: int) -> int:
    """The run of ``train_run``, ended (nothing more saved) right after its first checkpoint: what a
    kill -9 then leaves behind."""
    env, agent = build(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir)

    def checkpoint(a, stats):
        if a.num_timesteps >= every:
            a.save(run_dir / a.file_name)
            return False

    agent.learn(cfg.steps, callback=checkpoint)
    return agent.num_timesteps


@pytest.mark.parametrize("name, env_kwargs", [("reinforce", {}), ("reinforce", {"lm_update": True}),
                                              ("ppo", {}), ("sac", {})])
def test_interrupted_run_resumes_exactly(tiny_study, tmp_path, name, env_kwargs):
    cfg = run_config(name, tiny_study, 96, env_kwargs)
    straight = train_run(cfg, tmp_path / "a", save_every=32, progress=False)
    assert stopped_after_first_checkpoint(cfg, tmp_path / "b", 32) < 96
    resumed = train_run(cfg, tmp_path / "b", save_every=32, progress=False)
    assert resumed.num_timesteps == straight.num_timesteps
    assert torch.equal(weights(straight), weights(resumed))
    assert len(straight.episode_returns) > 3
    assert np.array_equal(straight.episode_returns, resumed.episode_returns)
    if env_kwargs.get("lm_update"):                                      # the co-trained reader too
        a, b = straight.env.backend.model.adapter_state(), resumed.env.backend.model.adapter_state()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_dir_of_another_config_is_refused_or_set_aside(tiny_study, tmp_path):
    from ltm_gym.core import ConfigError
    from ltm_gym.pipeline import set_aside

    cfg = run_config("reinforce", tiny_study, 8)
    train_run(cfg, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "agent.pt").read_bytes()
    other = run_config("reinforce", tiny_study, 16)
    other.hyperparams = {**other.hyperparams, "lr": 0.5}
    with pytest.raises(ConfigError, match="hyperparams.lr: None -> 0.5"):
        train_run(other, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "agent.pt").read_bytes() == before
    from ltm_gym.agents.training import stored_changes

    longer = run_config("reinforce", tiny_study, 16)                   # more steps is the same run, resumed
    assert stored_changes(longer, tmp_path / "run") == []
    logged = []
    set_aside(tmp_path / "run", stored_changes(other, tmp_path / "run"), logged.append)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert not (tmp_path / "run").exists() and len(moved) == 1 and (moved[0] / "agent.pt").read_bytes() == before
    assert "hyperparams.lr" in logged[0]
