"""SB3 agents on the memory envs: the shipped presets train stably in every action mode, and a
numerical failure inside training is reported as a bug (a traceback), not as a user's mistake."""

import math

import numpy as np
import torch

import pytest

import ltm_gym.agents as agents
from ltm_gym.agents.training import hyperparams
from ltm_gym.core import ConfigError
from ltm_gym.envs import LLMMemoryVectorEnv


def first_updates(backend, algo: str, action_mode: str, nan: bool = False, **overrides) -> list[float]:
    env = LLMMemoryVectorEnv(4, backend=backend, action_mode=action_mode)
    config = {**hyperparams(algo, action_mode), "n_steps": 16, "features": {"d_model": 32, "n_head": 2}, **overrides}
    agent = agents.make(algo, env, device="cpu", seed=0, **config)
    seen: list[float] = []
    agent.logger.scalars = lambda values, step: seen.extend(v for k, v in values.items() if k == "losses/approx_kl")
    if nan:
        agent.model.policy.log_std.data.fill_(float("nan"))
    agent.learn(4 * agent.model.n_steps * env.num_envs)
    return seen


@pytest.mark.parametrize("action_mode", ["full", "slot"])
def test_the_ppo_preset_moves_the_policy_a_bounded_step(backend, action_mode):
    """The 640-dim Gaussian of the continuous memory: an Adam step of the old preset (lr 3e-4)
    moved its mean by several standard deviations (approx KL in the thousands, then an overflowing
    probability ratio and NaN weights); the preset's steps stay near its target_kl."""
    kls = first_updates(backend, "ppo", action_mode)
    assert len(kls) == 3 and all(math.isfinite(k) for k in kls)
    assert max(kls) < 3 * hyperparams("ppo")["target_kl"], kls


def test_selection_envs_get_the_binary_ppo_preset(backend):
    """Select mode's own preset (a Bernoulli per candidate, one shared head): its first updates are
    finite and small, with no target_kl to stop them."""
    select, full = hyperparams("ppo", "select"), hyperparams("ppo", "full")
    assert select["binary_select"] and select["candidate_head"] and select["target_kl"] is None
    assert full == hyperparams("ppo") and "binary_select" not in full
    assert all(hyperparams(a, "select")["candidate_head"] and not hyperparams(a).get("candidate_head")
               for a in ("sac", "td3", "ddpg", "tqc"))
    assert hyperparams("a2c", "select")["candidate_head"] and hyperparams("a2c", "select")["gamma"] > 0
    kls = first_updates(backend, "ppo", "select")
    assert len(kls) == 3 and all(math.isfinite(k) and 0 < k < 0.5 for k in kls), kls


def test_a_numerical_failure_in_training_is_a_bug_report(backend):
    with pytest.raises(FloatingPointError, match="ppo: the policy became non-finite"):
        first_updates(backend, "ppo", "full", nan=True)


def test_binary_selection_maps_choices_to_the_envs_scores():
    from ltm_gym.envs.sb3_vec import binary_selection_scores
    from ltm_gym.envs.selection import top_choices

    choices = np.array([[0, 1, 0, 1, 0, 1, 0]])                       # 5 positions, then 2 slots
    scores = binary_selection_scores(choices, n_slots=2)
    assert scores.tolist() == [[-1.0, 0.5, -1.0, 0.5, -1.0, 1.0, 0.0]]
    assert top_choices(scores, 2).tolist() == [[1, 5]]                # the chosen slot first, then positions
    assert top_choices(scores, 4).tolist() == [[1, 3, 5, 6]]          # the unchosen slot fills before junk
    too_many = binary_selection_scores(np.ones((1, 7)), n_slots=2)
    assert top_choices(too_many, 2).tolist() == [[5, 6]]              # dropped: the latest positions


def test_binary_ppo_starts_from_its_priors_and_acts_in_the_envs_space(backend):
    env = LLMMemoryVectorEnv(2, backend=backend, action_mode="select")
    config = {**hyperparams("ppo"), "n_steps": 8, "features": {"d_model": 32, "n_head": 2},
              "batch_size": 16, "binary_select": True, "store_prior": -3.0, "keep_prior": 2.0}
    agent = agents.make("ppo", env, device="cpu", seed=0, **config)
    m = env.single_observation_space["memory"].shape[0]
    bias = agent.model.policy.action_net.bias.detach()
    assert agent.venv.action_space.n == env.single_action_space.shape[0]
    assert torch.all(bias[-m:] > 1.9) and torch.all(bias[:-m] < -2.9)
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)
    assert action.shape == (2, *env.single_action_space.shape) and action.dtype == np.float32
    assert np.all(action[:, -m:] == 1.0) and np.all(action[:, :-m] == -1.0)   # keep all, store none
    agent.learn(16)
    assert agent.num_timesteps == 16


def test_priors_need_a_selection_policy(backend):
    env = LLMMemoryVectorEnv(2, backend=backend, action_mode="full")
    with pytest.raises(ConfigError, match="keep_prior=1.0"):
        agents.make("ppo", env, device="cpu", seed=0, **{**hyperparams("ppo"), "keep_prior": 1.0})
    with pytest.raises(ValueError, match="binary_select is for selection envs"):
        agents.make("ppo", env, device="cpu", seed=0, **{**hyperparams("ppo"), "binary_select": True})


def test_candidate_head_scores_every_candidate_alike_and_reloads(backend, tmp_path):
    from ltm_gym.agents.sb3_selection import CandidateHead

    env = LLMMemoryVectorEnv(2, backend=backend, action_mode="select")
    config = {**hyperparams("ppo"), "n_steps": 8, "batch_size": 16, "features": {"d_model": 32, "n_head": 2},
              "binary_select": True, "candidate_head": True, "store_prior": -1.0}
    agent = agents.make("ppo", env, device="cpu", seed=0, **config)
    head = agent.model.policy.action_net
    assert isinstance(head, CandidateHead) and head.n == env.single_action_space.shape[0]
    with torch.no_grad():
        head.score.weight.normal_()
        latent = torch.randn(3, head.n * head.h)
        perm = torch.randperm(head.n)
        permuted = latent.view(3, head.n, head.h)[:, perm].reshape(3, -1)
        shared = head(latent) - head.bias
        torch.testing.assert_close(head(permuted) - head.bias, shared[:, perm])   # one map for every candidate
    agent.learn(16)
    obs, _ = env.reset(seed=1)
    path = agent.save(tmp_path / "agent.zip")
    again = agents.make("ppo", env, device="cpu", seed=1, **config).load(path)
    np.testing.assert_array_equal(again.predict(obs)[0], agent.predict(obs)[0])
    full = LLMMemoryVectorEnv(2, backend=backend, action_mode="full")
    with pytest.raises(ConfigError, match="candidate_head"):
        agents.make("sac", full, device="cpu", seed=0, **{**hyperparams("sac"), "candidate_head": True})


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_off_policy_selection_policies_share_one_head_and_an_additive_critic(backend, tmp_path, algo):
    """SAC, TD3 (DDPG's policy too) and TQC on selections: the actor scores every candidate with one
    head; the critic is a sum over candidates of one shared MLP of (features, score, margin over
    the n_slots-th best score), so permuting candidates with their scores leaves Q unchanged, and
    what moves Q is whether a candidate crosses into the kept set; a trained agent reloads exactly."""
    from ltm_gym.agents.sb3_selection import CandidateCritic, CandidateHead

    env = LLMMemoryVectorEnv(2, backend=backend, action_mode="select")
    config = {**hyperparams(algo, "select"), "learning_starts": 8, "batch_size": 8,
              "features": {"d_model": 32, "n_head": 2}}
    agent = agents.make(algo, env, device="cpu", seed=0, **config)
    policy, n = agent.model.policy, env.single_action_space.shape[0]
    assert isinstance(policy.action_head, CandidateHead) and policy.action_head.n == n
    assert agent.rollout_steps() == (2, "2 envs x train_freq 1")          # an update after every vector step
    q = agent.model.critic.q_networks[0]
    assert isinstance(q, CandidateCritic) and q.n_keep == env.single_observation_space["memory"].shape[0]
    with torch.no_grad():
        features, scores = torch.randn(3, n * q.h), torch.rand(3, n)
        perm = torch.randperm(n)
        permuted = features.view(3, n, q.h)[:, perm].reshape(3, -1)
        torch.testing.assert_close(q(torch.cat([permuted, scores[:, perm]], 1)), q(torch.cat([features, scores], 1)))
        q.net[0].weight[:, -2].zero_()                           # the raw score's weights: only the margin is left
        q_of = lambda s: q(torch.cat([features, s], 1))           # noqa: E731
        torch.testing.assert_close(q_of(scores + 0.5), q_of(scores))          # margins over the kept set: unchanged
        crossed = scores.clone()
        crossed[:, 0] = scores.max() + 1.0                       # candidate 0 joins the kept set
        assert not torch.allclose(q_of(crossed), q_of(scores))
    agent.learn(24)
    obs, _ = env.reset(seed=1)
    path = agent.save(tmp_path / "agent.zip")
    again = agents.make(algo, env, device="cpu", seed=1, **config).load(path)
    np.testing.assert_array_equal(again.predict(obs)[0], agent.predict(obs)[0])


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sb3_agents_train_a_co_trained_reader(backend, algo):
    """lm_update=True (the co-training wrapper) under SB3: the reader's loss reaches every env's
    info as an array, and the reader moves while the agent trains."""
    import gymnasium as gym

    env = gym.make_vec("ltm_gym/LLMMemory-v0", num_envs=2, vectorization_mode="vector_entry_point", backend=backend,
                       action_mode="select", lm_update=True, lm_lr=1e-2)
    reader = {n: p.detach().clone() for n, p in backend.model.named_parameters() if p.requires_grad}
    try:
        env.reset(seed=0)
        *_, infos = env.step(env.action_space.sample())
        assert infos["lm_loss"].shape == (2,) and infos["_lm_loss"].all() and np.isfinite(infos["lm_loss"]).all()
        config = {"features": {"d_model": 16, "n_head": 2}, **({"n_steps": 8, "batch_size": 16} if algo == "ppo"
                                                                 else {"learning_starts": 4, "batch_size": 8})}
        agents.make(algo, env, device="cpu", seed=0, **config).learn(16)
        assert any(not torch.equal(p, reader[n]) for n, p in backend.model.named_parameters() if n in reader)
    finally:
        with torch.no_grad():                                       # the shared backend's reader, as it was
            for n, p in backend.model.named_parameters():
                if n in reader:
                    p.copy_(reader[n])
        backend.model_changed()


def test_sb3_selection_scores_spelled_windows_and_refuses_a_wrong_width(study_data, backend):
    """``features.window_tokens``: the SB3 extractor scores each candidate from the window its code
    spells (REINFORCE's ``writer.window_tokens``), refused by name where the study spells none or
    windows of another width."""
    from ltm_gym.envs import MemoryLMBackend
    from ltm_gym.lm import build_llmltm
    from tests.fixtures import tiny_study_config

    config = {**hyperparams("ppo", "select"), "n_steps": 8, "batch_size": 16}

    def make(env, width):
        return agents.make("ppo", env, device="cpu", seed=0,
                           **{**config, "features": {"d_model": 16, "n_head": 2, "window_tokens": width}})

    with pytest.raises(ValueError, match="features.window_tokens=3: .*do not spell"):
        make(LLMMemoryVectorEnv(2, backend=backend, action_mode="select"), 3)
    cfg = tiny_study_config().lm
    cfg.memory.read_path, cfg.memory.code_context = "tokens", 2
    spelled = MemoryLMBackend(build_llmltm(cfg, study_data.tokenizer, seed=1), study_data.splits, study_data.tokenizer,
                              device="cpu")
    env = LLMMemoryVectorEnv(2, backend=spelled, action_mode="select", reward_mode="full")
    with pytest.raises(ValueError, match="features.window_tokens=4: .*use 3"):
        make(env, 4)
    agent = make(env, 3)
    extractor = agent.model.policy.features_extractor
    assert extractor.encoder.window_tokens == 3 and not hasattr(extractor.encoder, "encoder")
    before = [p.detach().clone() for p in extractor.parameters()]
    agent.learn(16)
    assert any(not torch.equal(b, p) for b, p in zip(before, extractor.parameters()))
    obs, _ = env.reset(seed=1)
    assert agent.predict(obs)[0].shape == (2, env.single_action_space.shape[0])
