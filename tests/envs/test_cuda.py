"""On a CUDA machine (``make gpu-check``): the env's rewards and a REINFORCE update on the GPU equal
the CPU's within float tolerance."""

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make gpu-check)")]


def test_rewards_and_candidate_scores_match_the_cpu():
    import gymnasium as gym

    import ltm_gym  # noqa: F401

    out = {}
    for device in ("cpu", "cuda"):
        env = gym.make("ltm_gym/LLMMemory-v0", task="recall-d4", action_mode="select", adapters="select",
                       reward_mode="answer", device=device)
        env.reset(seed=0)
        actions = np.random.default_rng(0).uniform(-1, 1, (4, *env.action_space.shape)).astype(np.float32)
        out[device] = (env.unwrapped.score_actions(actions), env.step(actions[0])[1])
    assert np.allclose(out["cpu"][0], out["cuda"][0], atol=1e-3)
    assert out["cpu"][1] == pytest.approx(out["cuda"][1], abs=1e-3)
