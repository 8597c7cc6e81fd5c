
import pytest
import torch

from agents.networks import gaussian_entropy, squashed_sample
from agents.reinforce import ReinforceAgent, ReinforceConfig, advantages, reinforce_loss, returns_to_go
from ltm_gym.data.segments import Document
from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv, MemoryLMBackend
from tests.envs.conftest import MemorySumLM


def test_returns_to_go_by_hand():
    r = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    d = torch.tensor([[0], [1], [0], [0]])
    g = returns_to_go(r, d, 0.5)
    assert g.flatten().tolist() == [2.0, 2.0, 5.0, 4.0]           # the episode ends after step 1
    boot = returns_to_go(r, d, 0.5, bootstrap=torch.tensor([8.0]))
    assert boot.flatten().tolist() == [2.0, 2.0, 7.0, 8.0]


def test_advantages_normalized():
    adv = advantages(torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.tensor([0.0, 0.0, 0.0, 0.0]), True)
    assert adv.mean().abs() < 1e-6 and abs(adv.std().item() - 1) < 1e-5
    assert advantages(torch.tensor([2.0]), torch.tensor([1.5]), False).item() == 0.5


def test_loss_pushes_probability_toward_positive_advantage():
    logp = torch.tensor([-1.0, -1.0], requires_grad=True)
    loss, stats = reinforce_loss(logp, torch.tensor([1.0, -1.0]), torch.zeros(2), torch.zeros(2), torch.zeros(2), 0.0, 0.5)
    loss.backward()
    assert logp.grad[0] < 0 < logp.grad[1]
    assert stats["value_loss"] == 0.0


def test_squashed_log_prob_matches_torch_distributions():
    from torch.distributions import Normal, TanhTransform, TransformedDistribution

    mean, log_std = torch.randn(3, 2, 4), torch.randn(3, 2, 4).clamp(-2, 0)
    action, logp = squashed_sample(mean, log_std, generator=torch.Generator().manual_seed(0))
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    assert torch.allclose(logp, dist.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)).flatten(1).sum(1), atol=1e-2)
    assert (action.abs() <= 1).all()
    assert torch.allclose(gaussian_entropy(log_std), Normal(mean, log_std.exp()).entropy().flatten(1).sum(1))


def test_reinforce_learns_a_known_optimum():
    """Reward -(2 + mean(memory)): the best memory is all -1. REINFORCE must find it."""
    docs = [Document(torch.randint(0, 50, (4, 10)), torch.zeros(4, 10, dtype=torch.bool), i) for i in range(4)]
    backend = MemoryLMBackend(MemorySumLM(), {"train": docs}, device="cpu")
    env = LLMMemoryVectorEnv(num_envs=16, backend=backend, reward_mode="full")
    agent = ReinforceAgent(env, ReinforceConfig(lr=1e-2, n_steps=1, gamma=0.0, device="cpu", seed=0))
    obs, _ = env.reset(seed=0)
    before = agent.predict(obs)[0].mean()
    agent.learn(1600)
    after = agent.predict(obs)[0].mean()
    assert after < before - 0.4 and after < -0.4, (before, after)


def test_needs_same_step_vector_env(backend):
    with pytest.raises(ValueError, match="SAME_STEP"):
        ReinforceAgent(LLMMemoryEnv(backend=backend))
    with pytest.raises(ValueError, match="slot"):
        ReinforceAgent(LLMMemoryVectorEnv(num_envs=1, backend=backend, action_mode="slot"))
