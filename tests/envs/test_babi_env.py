"""The bAbI-in-books levels in the env: chosen at gym.make, the question at the end, and the
references that read them (keep, random, retrieval)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import ltm_gym  # noqa: F401  (registers the ids)
from ltm_gym.baselines.retrieval import retrieve
from ltm_gym.baselines.scripted_memory import scripted_metrics
from ltm_gym.core.config import parse_overrides
from ltm_gym.envs import LLMMemoryVectorEnv

TASK = {"name": "babi-qa1-1k", "tokens": 256, "n_documents": 4, "n_eval": 3}


def test_a_babi_level_at_gym_make_asks_only_at_the_end(backend):
    env = gym.make("ltm_gym/LLMMemory-v0", backend=backend, task=TASK, split="test", action_mode="select",
                   reward_mode="answer")
    obs, info = env.reset(seed=0, options={"document": 1})
    assert obs["tokens"].shape == (backend.segment_len,) and "fact_due" in info
    rewards, infos, done = [], [], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    assert len(rewards) == 256 // backend.segment_len - 1
    assert all(r == 0.0 for r in rewards[:-1]) and rewards[-1] < 0      # only the question is scored
    assert "answer_distance" in infos[-1] and all("answer_distance" not in i for i in infos[:-1])


def test_task_overrides_reach_the_vector_env_as_env_kwargs_spell_them(backend):
    kwargs = parse_overrides(["task=babi-qa2-1k", "task.tokens=192", "task.seed=7", "task.n_eval=2", "task.facts=3"])
    venv = LLMMemoryVectorEnv(2, backend=backend, split="test", **kwargs)
    assert venv.backend.task.qa == 2 and venv.backend.task.tokens == 192 and venv.backend.task.seed == 7
    obs, _ = venv.reset(seed=[3, 4])
    assert obs["tokens"].shape == (2, backend.segment_len)
    assert venv.backend.docs("test")[0].n_segments == 192 // backend.segment_len


def test_keep_holds_every_supporting_fact_and_random_seldom_does(backend):
    env = gym.make("ltm_gym/LLMMemory-v0", backend=backend, task=TASK, split="test", action_mode="select",
                   reward_mode="full")
    keep = scripted_metrics(env, "keep").summary()
    rand = scripted_metrics(env, "random").summary()
    assert keep["held"] == 1.0 and rand["held"] < 1.0


def test_retrieval_picks_the_windows_that_hold_the_question_words():
    history = np.array([9, 9, 5, 1, 2, 9, 9, 9, 5, 3, 4, 9])
    chosen = retrieve(torch.tensor(history), {5}, n_slots=2, context=2)
    assert chosen == [10, 4]                  # the later window first; windows do not overlap


def test_vector_env_takes_a_seed_per_env_refuses_unknown_options_and_use_after_close(backend):
    venv = LLMMemoryVectorEnv(2, backend=backend)
    a, _ = venv.reset(seed=[5, 9])
    b, _ = LLMMemoryVectorEnv(2, backend=backend).reset(seed=[5, 9])
    assert np.array_equal(a["tokens"], b["tokens"])
    with pytest.raises(ValueError, match="2 seeds for 2 envs|has 3 seeds"):
        venv.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="unknown reset options \\['document'\\].*'documents'"):
        venv.reset(options={"document": 1})
    venv.close()
    with pytest.raises(RuntimeError, match="closed"):
        venv.reset(seed=0)
    env = gym.make("ltm_gym/LLMMemory-v0", backend=backend)
    env.reset(seed=0)
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.unwrapped.step(env.action_space.sample())


def test_a_fact_is_held_by_any_code_whose_window_still_reaches_its_actor(backend):
    import copy
    import dataclasses

    from ltm_gym.envs.selection import segment_codes, supporting_held
    from ltm_gym.lm.memory import tokens_before

    env = gym.make("ltm_gym/LLMMemory-v0", backend=backend, task=TASK, split="test", action_mode="select")
    env.reset(seed=0)
    doc = next(d for d in env.unwrapped.backend.docs("test")
               if (d.fact_due[: d.n_segments - 1] == d.n_segments - 1).any())
    t, L = doc.n_segments - 1, doc.ids.shape[1]
    facts = [(s * L + p, int(doc.subject_source[s, p])) for s, p in (doc.fact_due[:t] == t).nonzero().tolist()]
    assert all(first < mark for mark, first in facts)
    c = max(mark - first for mark, first in facts) + 1          # every window from the actor to one past the mark
    model = copy.deepcopy(backend.model)
    model.mem_cfg = dataclasses.replace(model.mem_cfg, code_context=c)
    codes = segment_codes(model, doc.ids, 1.0, tokens_before(doc.ids, range(doc.n_segments), c, model.bos_token_id))
    flat = codes.reshape(-1, codes.shape[-1])

    def held(positions, subject=doc.subject_source):
        memory = np.zeros((model.mem_cfg.n_slots, flat.shape[1]), np.float32)
        memory[: len(positions)] = flat[positions]
        return supporting_held(model, memory, doc.ids, doc.fact_due, t, 1.0, subject)

    marks = [mark for mark, _ in facts]
    reach = [first + c for _, first in facts]                   # the last window that still holds the actor
    past = [first + c + 1 for _, first in facts]                # the actor has left the window
    assert all(m < r < p < t * L for m, r, p in zip(marks, reach, past))
    assert held(marks) and held(reach) and not held(past)
    assert held(marks, subject=None) and not held(reach, subject=None)   # without actors: the marked word only
    assert not held(reach[1:] + past[:1])


def test_an_agent_is_evaluated_on_the_final_question_alone(backend):
    """Questions along the way (task.questions) are a training option: eval_env asks the protocol's."""
    from ltm_gym.agents.evaluation import eval_env

    task = {**TASK, "tokens": 512, "questions": 3}
    trained = gym.make("ltm_gym/LLMMemory-v0", backend=backend, task=task, split="test").unwrapped
    evaluated = eval_env({"task": task, "action_mode": "select"}, "test", backend=backend)
    assert evaluated.backend.task.questions == 1 and evaluated.backend.task.name == "babi-qa1-1k(n_documents=4,n_eval=3,tokens=512)"
    for doc in evaluated.backend.docs("test"):
        assert doc.answer_mask[:-1].sum() == 0 and doc.answer_mask[-1].sum() > 0
    assert any(d.answer_mask[:-1].sum() > 0 for d in trained.backend.docs("test"))
