"""n-step returns on Dict observations: sums, discounts and bootstrap observations by hand."""

import numpy as np
import pytest
from gymnasium import spaces

from ltm_gym.agents.replay import DictNStepReplayBuffer

OBS = spaces.Dict({"x": spaces.Box(-10, 10, (1,), np.float32)})
ACT = spaces.Box(-1, 1, (1,), np.float32)


def filled(n_steps: int, rewards: list[float], dones: list[bool], size: int = 16, gamma: float = 0.5):
    """One env; transition i: obs i -> next obs i + 0.5 (so bootstraps show which one was used)."""
    buf = DictNStepReplayBuffer(size, OBS, ACT, device="cpu", n_envs=1, n_steps=n_steps, gamma=gamma)
    for i, (r, d) in enumerate(zip(rewards, dones)):
        buf.add({"x": np.array([[i]], np.float32)}, {"x": np.array([[i + 0.5]], np.float32)},
                np.zeros((1, 1), np.float32), np.array([r], np.float32), np.array([d]), [{}])
    return buf


def test_n_step_returns_stop_at_episode_ends_and_at_the_newest_step():
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    buf = filled(3, rewards, [False, False, True, False, False, False])
    s = buf._get_samples(np.array([0, 1, 2, 3, 4, 5]))
    # 0: r0 + g r1 + g^2 r2, episode ends at 2 (done: no bootstrap); 1: r1 + g r2, done
    # 2: r2 alone, done; 3: r3 + g r4 + g^2 r5, bootstrap from next obs of 5 with g^3
    # 4: r4 + g r5, then the newest step stops it: bootstrap with g^2; 5: r5, g
    assert s.rewards.flatten().tolist() == pytest.approx([1 + 1 + 1, 2 + 2, 4, 8 + 8 + 8, 16 + 16, 32])
    assert s.dones.flatten().tolist() == [1, 1, 1, 0, 0, 0]
    assert s.discounts.flatten().tolist() == pytest.approx([0.125, 0.25, 0.5, 0.125, 0.25, 0.5])
    assert s.next_observations["x"].flatten().tolist() == [2.5, 2.5, 2.5, 5.5, 5.5, 5.5]
    assert s.observations["x"].flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_one_step_equals_sb3s_dict_buffer():
    from stable_baselines3.common.buffers import DictReplayBuffer

    rewards, dones = [1.0, -2.0, 3.0, 0.5], [False, True, False, False]
    ours = filled(1, rewards, dones, gamma=0.9)
    theirs = DictReplayBuffer(16, OBS, ACT, device="cpu", n_envs=1)
    for name in ("observations", "next_observations"):
        for k in OBS.spaces:
            getattr(theirs, name)[k][:] = getattr(ours, name)[k]
    theirs.actions[:], theirs.rewards[:], theirs.dones[:], theirs.pos = ours.actions, ours.rewards, ours.dones, ours.pos
    inds = np.arange(4)
    a, b = ours._get_samples(inds), theirs._get_samples(inds)
    assert a.rewards.tolist() == b.rewards.tolist() and a.dones.tolist() == b.dones.tolist()
    assert a.next_observations["x"].tolist() == b.next_observations["x"].tolist()
    assert a.discounts.flatten().tolist() == pytest.approx([0.9] * 4)


def test_off_policy_agents_take_n_steps_on_the_memory_env(backend):
    import ltm_gym.agents as agents
    from ltm_gym.envs import LLMMemoryVectorEnv

    env = LLMMemoryVectorEnv(2, backend=backend, action_mode="select")
    agent = agents.make("sac", env, device="cpu", seed=0, n_steps=3, gamma=0.8,
                        features={"d_model": 32, "n_head": 2}, learning_starts=4, batch_size=8)
    buf = agent.model.replay_buffer
    assert isinstance(buf, DictNStepReplayBuffer) and (buf.n_steps, buf.gamma) == (3, 0.8)
    agent.learn(16)
    sample = agent.model.replay_buffer.sample(32)
    assert set(np.round(sample.discounts.flatten().tolist(), 4)) <= {0.8, 0.64, 0.512}   # gamma^k, k <= 3
    assert (sample.discounts < 0.8 - 1e-6).any()                                      # some sum 2+ rewards
    with pytest.raises(ValueError, match="n_steps=0"):
        DictNStepReplayBuffer(4, OBS, ACT, device="cpu", n_steps=0)
