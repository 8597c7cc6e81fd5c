"""SB3 agents on the memory envs: the shipped presets train stably in every action mode, and a
numerical failure inside training is reported as a bug (a traceback), not as a user's mistake."""

import math

import pytest

import agents
from agents.training import hyperparams
from ltm_gym.envs import LLMMemoryVectorEnv


def first_updates(backend, algo: str, action_mode: str, nan: bool = False, **overrides) -> list[float]:
    env = LLMMemoryVectorEnv(4, backend=backend, action_mode=action_mode)
    config = {**hyperparams(algo), "n_steps": 16, "features": {"d_model": 32, "n_head": 2}, **overrides}
    agent = agents.make(algo, env, device="cpu", seed=0, **config)
    seen: list[float] = []
    agent.logger.scalars = lambda values, step: seen.extend(v for k, v in values.items() if k == "losses/approx_kl")
    if nan:
        agent.model.policy.log_std.data.fill_(float("nan"))
    agent.learn(4 * agent.model.n_steps * env.num_envs)
    return seen


@pytest.mark.parametrize("action_mode", ["full", "select"])
def test_the_ppo_preset_moves_the_policy_a_bounded_step(backend, action_mode):
    """The 640-dim Gaussian of the continuous memory: an Adam step of the old preset (lr 3e-4)
    moved its mean by several standard deviations (approx KL in the thousands, then an overflowing
    probability ratio and NaN weights); the preset's steps stay near its target_kl."""
    kls = first_updates(backend, "ppo", action_mode)
    assert len(kls) == 3 and all(math.isfinite(k) for k in kls)
    assert max(kls) < 3 * hyperparams("ppo")["target_kl"], kls


def test_a_numerical_failure_in_training_is_a_bug_report(backend):
    with pytest.raises(FloatingPointError, match="ppo: the policy became non-finite"):
        first_updates(backend, "ppo", "full", nan=True)
