import gymnasium as gym
import numpy as np
import pytest

import ltm_gym  # noqa: F401
from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv
from ltm_gym.envs.sb3_vec import SB3VecEnv


def actions(n, shape, step):
    rng = np.random.default_rng(step)
    return rng.uniform(-1, 1, (n, *shape)).astype(np.float32)


def test_make_vec_declares_same_step(backend):
    venv = gym.make_vec("ltm_gym/LLMMemory-v0", num_envs=3, vectorization_mode="vector_entry_point", backend=backend)
    assert isinstance(venv.unwrapped, LLMMemoryVectorEnv)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = venv.reset(seed=0)
    assert obs["tokens"].shape == (3, 32) and obs["memory"].shape == (3, 4, 16)
    assert venv.single_action_space.shape == (4, 16)


@pytest.mark.parametrize("mode", ["prefix_sampled", "prefix", "answer"])
def test_vector_equals_single_envs(backend, mode):
    n = 3
    venv = LLMMemoryVectorEnv(num_envs=n, backend=backend, reward_mode=mode)
    singles = [LLMMemoryEnv(backend=backend, reward_mode=mode) for _ in range(n)]
    obs, _ = venv.reset(seed=10)
    single_obs = [e.reset(seed=10 + i)[0] for i, e in enumerate(singles)]
    assert all(np.array_equal(obs["tokens"][i], single_obs[i]["tokens"]) for i in range(n))
    for step in range(2):
        a = actions(n, (4, 16), step)
        obs, rewards, term, trunc, info = venv.step(a)
        for i, e in enumerate(singles):
            o, r, t, tr, _ = e.step(a[i])
            assert abs(rewards[i] - r) < 1e-5
            assert bool(term[i]) == t
            if not t:
                assert np.array_equal(obs["memory"][i], o["memory"])


def test_same_step_autoreset(backend):
    venv = LLMMemoryVectorEnv(num_envs=2, backend=backend)
    venv.reset(seed=0, options={"documents": [0, 1]})
    n_seg = backend.docs("train")[0].n_segments
    for _ in range(n_seg - 2):
        venv.step(actions(2, (4, 16), 0))
    obs, r, term, trunc, info = venv.step(np.full((2, 4, 16), 0.5, np.float32))
    assert term.all()
    assert info["_final_obs"].all()
    assert np.allclose(info["final_obs"][0]["memory"], 0.5)       # the last observation of the episode
    assert not obs["memory"].any()                                 # the new episode's first observation
    assert "ce" in info["final_info"]


def test_sb3_adapter(backend):
    venv = SB3VecEnv(LLMMemoryVectorEnv(num_envs=2, backend=backend, max_segments=1))
    obs = venv.reset()
    assert obs["tokens"].shape == (2, 32)
    obs, rewards, dones, infos = venv.step(actions(2, (4, 16), 1))
    assert rewards.dtype == np.float32 and dones.all()
    assert infos[0]["TimeLimit.truncated"] is True
    assert np.allclose(infos[0]["terminal_observation"]["memory"], actions(2, (4, 16), 1)[0])
    assert "ce" in infos[1]
