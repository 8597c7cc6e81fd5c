import numpy as np
import pytest
import torch

from ltm_gym.agents.imitation import hypothesis2_batch, imitate_hypothesis2, imitation_documents
from ltm_gym.agents.networks import WriterConfig
from ltm_gym.agents.reinforce import ReinforceAgent, ReinforceConfig
from ltm_gym.envs import LLMMemoryVectorEnv
from ltm_gym.lm.memory import previous_segment_memory


def test_batch_is_the_hypothesis2_memory_of_the_segment_and_of_the_one_before(backend):
    g = torch.Generator().manual_seed(0)
    obs, target = hypothesis2_batch(backend, imitation_documents(backend, "train"), 16, 0.5, g)
    assert obs["tokens"].shape == (16, backend.segment_len)
    assert obs["memory"].shape == target.shape == (16, backend.n_slots, backend.slot_dim)
    want = (previous_segment_memory(backend.model, obs["tokens"]) / 0.5).clamp(-0.999, 0.999)
    torch.testing.assert_close(target, want)
    first = obs["memory"].flatten(1).abs().sum(1) == 0            # documents' first segments: no memory
    rest = obs["memory"][~first]
    assert rest.abs().max() > 0 and torch.isfinite(rest).all()


def test_cloning_fits_the_target_and_is_seeded(backend):
    """On held-out segments the writer's squashed mean moves toward the hypothesis-2 action (the
    relative squared error falls well below the untrained writer's), and one seed gives one writer."""
    obs, target = hypothesis2_batch(backend, imitation_documents(backend, "validation"), 64, 1.0,
                                    torch.Generator().manual_seed(7))

    def error(agent):
        action = torch.as_tensor(agent.predict({k: v.numpy() for k, v in obs.items()})[0])
        return float(((action - target) ** 2).mean() / target.var())

    def run():
        torch.manual_seed(0)
        env = LLMMemoryVectorEnv(num_envs=2, backend=backend)
        agent = ReinforceAgent(env, ReinforceConfig(device="cpu", writer=WriterConfig(d_model=32, n_head=2)))
        before = error(agent)
        imitate_hypothesis2(agent.policy.net, backend, steps=120, batch=16, lr=3e-3, seed=1)
        return agent, before

    agent, before = run()
    assert error(agent) < 0.8 * before, (before, error(agent))
    again, _ = run()
    assert error(again) == error(agent)


def test_imitation_runs_before_the_first_update_only(backend, monkeypatch):
    calls = []
    monkeypatch.setattr(ReinforceAgent, "imitate", lambda self, progress=False: calls.append(self.updates) or (1.0, 0.1))
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, max_segments=2)
    agent = ReinforceAgent(env, ReinforceConfig(device="cpu", imitate_steps=3, writer=WriterConfig(d_model=16, n_head=2)))
    agent.learn(2)
    agent.learn(4)
    assert calls == [0]


def test_imitation_is_refused_where_it_cannot_apply(backend):
    select = LLMMemoryVectorEnv(num_envs=1, backend=backend, action_mode="select")
    with pytest.raises(ValueError, match="imitate_steps=5"):
        ReinforceAgent(select, ReinforceConfig(device="cpu", imitate_steps=5))
    hidden = LLMMemoryVectorEnv(num_envs=1, backend=backend, obs_mode="hidden")
    with pytest.raises(ValueError, match="obs_mode='tokens'"):
        ReinforceAgent(hidden, ReinforceConfig(device="cpu", imitate_steps=5))
    with pytest.raises(ValueError, match="imitate_steps"):
        ReinforceConfig(imitate_steps=-1).validate()
    with pytest.raises(ValueError, match="steps=0"):
        imitate_hypothesis2(torch.nn.Linear(1, 1), backend, steps=0)
    with pytest.raises(ValueError, match="nosuchsplit"):
        imitation_documents(backend, "nosuchsplit")
