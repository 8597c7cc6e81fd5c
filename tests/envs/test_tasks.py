import gymnasium as gym
import numpy as np
import pytest

from ltm_gym.core import ConfigError
from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv, MemoryLMBackend
from tests.fixtures import tiny_study_config

D2 = {"distance": 2, "n_segments": 6, "n_facts": 2, "n_documents": 12}


@pytest.fixture(scope="module")
def study_backend(backend):
    """The tests' backend, knowing its study's corpus (what a task's documents are made in)."""
    return MemoryLMBackend(backend.model, backend.documents, backend.tokenizer, "cpu", corpus=tiny_study_config().corpus)


def test_task_picks_the_documents_single_and_vector(study_backend):
    env = LLMMemoryEnv(backend=study_backend, task=D2, action_mode="select", reward_mode="answer")
    assert env.backend.task.distance == 2 and env.backend.model is study_backend.model
    assert study_backend.task is None and len(study_backend.docs("train")[0].ids) == 3     # the study's own, untouched
    obs, info = env.reset(seed=0)
    assert "fact_due" in info and set(np.unique(info["fact_due"])) <= {-1, 0, 2}
    steps, answered = 0, []
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        steps += 1
        done = term or trunc
        if info.get("answer_tokens"):
            answered.append(info["segment"])
            assert info["answer_distance"] == [2, 2] and len(info["answer_hit"]) == 2
            assert len(info["answer_held"]) == 2
    assert steps == 5 and answered == [2, 3, 4, 5]
    venv = LLMMemoryVectorEnv(3, backend=study_backend, task=D2, action_mode="select", reward_mode="answer")
    venv.reset(seed=0)
    for _ in range(2):
        _, _, _, _, infos = venv.step(venv.action_space.sample())
    assert infos["answer_distance"].dtype == object and list(infos["answer_distance"][0]) == [2, 2]
    assert venv.n_documents == len(env.backend.docs("train"))


def test_gym_make_with_a_task_name_and_its_errors(default_study):
    env = gym.make("ltm_gym/LLMMemory-v0", task={"name": "recall-d2", "n_facts": 2, "n_documents": 12}, device="cpu")
    assert env.unwrapped.episodes.docs[0].n_segments == 6
    with pytest.raises(ConfigError, match="recall-d9"):
        gym.make("ltm_gym/LLMMemory-v0", task="recall-d9", device="cpu")
    with pytest.raises(ConfigError, match="segment_len"):            # recall-d2's 3 facts do not fit 32 tokens
        gym.make("ltm_gym/LLMMemory-v0", task="recall-d2", device="cpu")


def test_held_says_whether_memory_holds_the_fact_when_asked(study_backend):
    env = LLMMemoryEnv(backend=study_backend, task=D2, action_mode="select", reward_mode="full")
    L, m = 32, 4
    _, info = env.reset(options={"document": 0})
    stated = np.flatnonzero(info["fact_due"] > 0)
    a = np.full(L + m, -1.0, np.float32)
    a[stated] = 1.0                                                   # store segment 0's facts
    _, _, _, _, info = env.step(a)
    junk = [p for p in range(L) if p not in stated][: m - len(stated)]  # ties: the earliest positions
    slots = [i for i, p in enumerate(sorted([*stated, *junk])) if p in stated]   # slots in position order
    keep = np.full(L + m, -1.0, np.float32)
    keep[[L + i for i in slots]] = 1.0                                # keep them through segment 1
    _, _, _, _, info = env.step(keep)
    assert info["segment"] == 2 and info["answer_held"] == [True, True]
    drop = np.full(L + m, -1.0, np.float32)                           # segment 2: store nothing useful
    _, _, _, _, info = env.step(drop)
    assert info["answer_held"] == [False, False]
