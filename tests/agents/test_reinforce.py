
import numpy as np
import pytest
import torch

from ltm_gym.agents.networks import WriterConfig, gaussian_entropy, squashed_sample
from ltm_gym.agents.reinforce import ReinforceAgent, ReinforceConfig, group_advantages, reinforce_loss, returns_to_go
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


def test_group_advantages_leave_one_out_and_executed_future():
    r = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 3.0]])                      # K = 3 samples, 2 states
    adv = group_advantages(r, torch.zeros(2), normalize=False)
    assert adv[:, 0].tolist() == [1 - 2.5, 2 - 2.0, 3 - 1.5] and adv[:, 1].tolist() == [-1.5, -1.5, 3.0]
    future = torch.tensor([4.0, 0.0])                                          # only sample 0 was executed
    adv_f = group_advantages(r, future, normalize=False)
    assert torch.equal(adv_f[1:], adv[1:]) and adv_f[0].tolist() == [adv[0, 0] + 2.0, adv[0, 1] - 2.0]
    assert group_advantages(r[:1], torch.zeros(2), normalize=False).tolist() == [[0.5, -0.5]]   # K = 1: batch mean
    assert abs(group_advantages(r, torch.zeros(2), normalize=True).std().item() - 1) < 1e-5


def test_loss_pushes_probability_toward_positive_advantage():
    logp = torch.tensor([-1.0, -1.0], requires_grad=True)
    loss, stats = reinforce_loss(logp, torch.tensor([1.0, -1.0]), torch.zeros(2), 0.0)
    loss.backward()
    assert logp.grad[0] < 0 < logp.grad[1]
    assert stats["entropy"] == 0.0


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
    agent = ReinforceAgent(env, ReinforceConfig(lr=1e-2, n_steps=1, gamma=0.0, init_std=0.3, device="cpu", seed=0))
    obs, _ = env.reset(seed=0)
    before = agent.predict(obs)[0].mean()
    agent.learn(800)
    after = agent.predict(obs)[0].mean()
    assert after < before - 0.4 and after < -0.4, (before, after)


def test_needs_same_step_vector_env(backend):
    with pytest.raises(ValueError, match="SAME_STEP"):
        ReinforceAgent(LLMMemoryEnv(backend=backend))
    with pytest.raises(ValueError, match="slot"):
        ReinforceAgent(LLMMemoryVectorEnv(num_envs=1, backend=backend, action_mode="slot"))


def test_write_little_start(backend):
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend)
    agent = ReinforceAgent(env, ReinforceConfig(device="cpu", init_std=0.02))
    obs, _ = env.reset(seed=0)
    assert np.abs(agent.predict(obs)[0]).max() < 0.05                       # mean near 0
    sampled = agent.predict(obs, deterministic=False)[0]
    assert 0.01 < sampled.std() < 0.04                                       # std at init_std


def test_selection_update_moves_probability_toward_the_better_sample(backend):
    """K distinct selections per state are scored; one update raises the log-probability of the
    sample that scored best more than any other's, and lowers the others' on average (they share
    some positions with it)."""
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", reward_mode="full")
    agent = ReinforceAgent(env, ReinforceConfig(lr=1e-2, n_steps=1, group_size=4, ent_coef=0.0, device="cpu", seed=0,
                                                writer=WriterConfig(d_model=16, n_head=2)))
    batch = agent.collect()
    samples = batch["samples"]                                   # (K, T, N, n_slots)
    assert all(not torch.equal(samples[0], samples[k]) for k in range(1, 4))   # distinct samples
    batch["scores"] = torch.zeros_like(batch["scores"])
    batch["scores"][0] = 1.0                                     # sample 0 is the good one
    obs = {k: v.reshape(2, *v.shape[2:]) for k, v in batch["obs"].items()}
    flat = samples.reshape(4, 2, -1)
    with torch.no_grad():
        before, _ = agent.policy.log_prob_entropy(obs, flat)
    agent.update(batch)
    with torch.no_grad():
        after, _ = agent.policy.log_prob_entropy(obs, flat)
    gain = after - before
    assert (gain[0] > 0).all() and (gain[0] > gain[1:].max(0).values).all() and gain[1:].mean() < 0


def test_episode_advantages_leave_one_out_over_reward_to_go():
    from ltm_gym.agents.reinforce import episode_advantages

    # 2 groups of K = 2 episodes, 3 steps; the last env's episode ends after step 1
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 9.0]])
    active = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    adv = episode_advantages(r, active, 2, 1.0, normalize=False)
    # group 0: reward-to-go (1, 1, 1) vs (0, 0, 0): the early actions get the late reward's credit
    assert adv[:, 0].tolist() == [1.0, 1.0, 1.0] and adv[:, 1].tolist() == [-1.0, -1.0, -1.0]
    # group 1: togo (1, 0, 0) vs (2, 2, -): at step 2 env 2 runs alone -> the step's mean baseline
    step2_mean = (1.0 + 0.0 + 0.0) / 3
    assert adv[:2, 2].tolist() == [-1.0, -2.0] and adv[:2, 3].tolist() == [1.0, 2.0]
    assert adv[2, 2].item() == pytest.approx(0.0 - step2_mean) and adv[2, 3] == 0.0     # inactive: no advantage
    assert episode_advantages(r, active, 2, 0.0, normalize=False)[0, 0] == 0.0          # gamma 0: no future
    norm = episode_advantages(r, active, 2, 1.0, normalize=True)
    assert norm[active].std().item() == pytest.approx(1.0, abs=1e-5) and norm[2, 3] == 0.0


def test_gamma_changes_the_update_when_rewards_come_after_the_action(backend):
    """Facts asked two segments later: the reward of an action arrives after it. With whole-episode
    rollouts the discount decides how far that credit reaches, so gamma changes the policy; with the
    one-step rollout of the 'step' preset it could not (the future of a 1-step rollout is empty)."""
    def trained(gamma: float, rollout: str) -> torch.Tensor:
        env = LLMMemoryVectorEnv(num_envs=4, backend=backend, action_mode="select", reward_mode="full")
        agent = ReinforceAgent(env, ReinforceConfig(lr=1e-2, group_size=2, gamma=gamma, rollout=rollout, device="cpu",
                                                    seed=0, writer=WriterConfig(d_model=16, n_head=2)))
        agent.learn(16)
        assert agent.updates >= 1
        return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])

    assert not torch.equal(trained(0.0, "episode"), trained(0.9, "episode"))
    assert torch.equal(trained(0.0, "step"), trained(0.9, "step"))


def test_episode_rollouts_run_k_episodes_of_one_document(backend):
    env = LLMMemoryVectorEnv(num_envs=4, backend=backend, action_mode="select", reward_mode="full")
    agent = ReinforceAgent(env, ReinforceConfig(group_size=2, rollout="episode", device="cpu", seed=0,
                                                writer=WriterConfig(d_model=16, n_head=2)))
    batch = agent.collect()
    T = batch["rewards"].shape[0]
    assert batch["active"].all() and T == backend.docs("train")[0].n_segments - 1       # whole episodes
    tokens = batch["obs"]["tokens"][0]
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[2], tokens[3])        # groups share a document
    assert not torch.equal(batch["samples"][0, 0], batch["samples"][0, 1])                # ... not their actions
    assert agent.num_timesteps == 4 * T
    with pytest.raises(ValueError, match="multiple"):
        ReinforceAgent(LLMMemoryVectorEnv(num_envs=3, backend=backend, action_mode="select"),
                       ReinforceConfig(group_size=2, rollout="episode", device="cpu"))


def test_episode_rollouts_resume_exactly(backend, tmp_path):
    def agent():
        env = LLMMemoryVectorEnv(num_envs=4, backend=backend, action_mode="select", reward_mode="full")
        return ReinforceAgent(env, ReinforceConfig(lr=1e-2, group_size=2, gamma=1.0, rollout="episode", device="cpu",
                                                   seed=3, writer=WriterConfig(d_model=16, n_head=2)))

    def flat(a):
        return torch.cat([p.detach().flatten() for p in a.policy.parameters()])

    straight = agent().learn(24)
    first = agent().learn(8)
    first.save(tmp_path / "agent.pt")
    resumed = agent().load(tmp_path / "agent.pt", restore_env=True)
    resumed.learn(24 - resumed.num_timesteps)
    assert resumed.num_timesteps == straight.num_timesteps == 24
    assert torch.equal(flat(straight), flat(resumed))
    assert resumed.episode_returns == straight.episode_returns


def test_keep_prior_starts_by_keeping_part_of_the_memory(backend):
    """keep_prior is the initial logit of every previous slot: with it, sampled selections keep
    old slots far more often than the uniform start does (10 of L + m candidates); the empty slots
    of a reset memory are never kept, however strong the prior."""
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", reward_mode="full")
    L = env.single_observation_space["tokens"].shape[0]

    def kept_share(prior: float, written: bool) -> float:
        agent = ReinforceAgent(env, ReinforceConfig(keep_prior=prior, device="cpu", seed=0,
                                                    writer=WriterConfig(d_model=16, n_head=2)))
        obs, _ = env.reset(seed=0)
        if written:
            obs, *_ = env.step(np.tile(np.linspace(1, -1, env.single_action_space.shape[0], dtype=np.float32), (2, 1)))
            assert obs["memory"].any(-1).all()
        with torch.no_grad():
            _, order = agent.policy.sample(agent_obs(obs), 64)
        return float((order >= L).float().mean())

    def agent_obs(obs):
        return {k: torch.as_tensor(v) for k, v in obs.items()}

    uniform, kept = kept_share(0.0, True), kept_share(4.0, True)
    assert uniform < 0.25 and kept > 0.6, (uniform, kept)
    assert kept_share(4.0, False) == 0.0


def test_spacing_keeps_the_chosen_tokens_of_a_segment_apart(backend):
    """In an env with ``spacing=s`` no two tokens the policy samples (or takes as its mode) lie
    within s of each other, the samples' log-probabilities are finite under the same rule, and the
    env keeps exactly the sampled candidates."""
    env = LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select", reward_mode="full", spacing=3)
    L = env.single_observation_space["tokens"].shape[0]
    agent = ReinforceAgent(env, ReinforceConfig(device="cpu", seed=0, writer=WriterConfig(d_model=16, n_head=2)))
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v) for k, v in obs.items()}
    with torch.no_grad():
        scores, order = agent.policy.sample(batch, 32)                          # (K, B, n_slots)
        log_prob, _ = agent.policy.log_prob_entropy(batch, order)
        mode = agent.policy.mode(batch)
    tokens = [sorted(int(x) for x in row if x < L) for row in order.reshape(-1, order.shape[-1])]
    assert all(b - a > 3 for row in tokens for a, b in zip(row, row[1:]))
    assert max(len(row) for row in tokens) >= 3 and torch.isfinite(log_prob).all()
    chosen = sorted(int(i) for i in (mode[0] > 0).nonzero().flatten() if i < L)
    assert all(b - a > 3 for a, b in zip(chosen, chosen[1:]))
    kept = [sorted(int(i) for i in (row > 0).nonzero()[0]) for row in scores[0].numpy()]
    assert kept == [sorted(int(i) for i in row) for row in order[0]]              # the action stores the sample


def test_window_scoring_needs_and_reads_the_windows_the_study_spells(study_data, backend):
    """``writer.window_tokens`` is refused, naming the width to use, where the study's codes spell no
    windows or windows of another width; with the right width the agent trains, and its mode keeps
    what it scores highest."""
    from ltm_gym.lm import build_llmltm
    from tests.fixtures import tiny_study_config

    def agent(env, width):
        return ReinforceAgent(env, ReinforceConfig(device="cpu", seed=0, group_size=2, keep_prior=1.0,
                                                   writer=WriterConfig(d_model=16, n_head=2, window_tokens=width)))

    with pytest.raises(ValueError, match="do not spell"):
        agent(LLMMemoryVectorEnv(num_envs=2, backend=backend, action_mode="select"), 3)
    cfg = tiny_study_config().lm
    cfg.memory.read_path, cfg.memory.code_context = "tokens", 2
    spelled = MemoryLMBackend(build_llmltm(cfg, study_data.tokenizer, seed=1), study_data.splits, study_data.tokenizer,
                              device="cpu")
    env = LLMMemoryVectorEnv(num_envs=2, backend=spelled, action_mode="select", reward_mode="full", spacing=2)
    with pytest.raises(ValueError, match="use 3"):
        agent(env, 4)
    a = agent(env, 3)
    before = [p.detach().clone() for p in a.policy.parameters()]
    a.learn(4)
    assert any(not torch.equal(b, p) for b, p in zip(before, a.policy.parameters()))
    obs, _ = env.reset(seed=1)
    action, _ = a.predict(obs)
    with torch.no_grad():
        logits = a.policy.net({k: torch.as_tensor(v) for k, v in obs.items()})
    assert action.shape == (2, env.single_action_space.shape[0]) and torch.isfinite(logits).all()
    assert (action > 0).sum(1).tolist() == [env.single_observation_space["memory"].shape[0]] * 2
