import numpy as np
import pytest

from baselines.scripted_memory import ScriptedSelector, scripted_metrics
from ltm_gym.envs import LLMMemoryEnv, MemoryLMBackend
from tests.fixtures import tiny_study_config

D2 = {"distance": 2, "n_segments": 6, "n_facts": 2, "n_documents": 15}          # 4 open facts, 4 slots
D3 = {"distance": 3, "n_segments": 8, "n_facts": 2, "n_documents": 15}          # 6 open facts, 4 slots


@pytest.fixture(scope="module")
def study_backend(backend):
    return MemoryLMBackend(backend.model, backend.documents, backend.tokenizer, "cpu", corpus=tiny_study_config().corpus)


def held(backend, task, policy):
    env = LLMMemoryEnv(backend=backend, task=task, split="test", action_mode="select", reward_mode="full")
    s = scripted_metrics(env, policy).summary()
    assert set(k for k in s if k.startswith("recall_d")) == {f"recall_d{task['distance']}"}
    return s["held"]


def test_keep_holds_every_fact_that_fits_store_holds_none(study_backend):
    assert held(study_backend, D2, "keep") == 1.0
    assert held(study_backend, D2, "fifo") == 1.0          # the 4 newest facts are exactly the open ones
    assert held(study_backend, D2, "store") == 0.0         # stored facts are gone before they are asked
    keep3, fifo3 = held(study_backend, D3, "keep"), held(study_backend, D3, "fifo")
    assert fifo3 == 0 < keep3 < 1       # too many open facts: the 4 newest are never the ones asked next


def test_selector_follows_the_slots_it_keeps():
    sel = ScriptedSelector("keep", segment_len=6, n_slots=2)
    due = np.array([0, 0, 3, 0, 2, -1])
    a = sel.act(due, 0)
    assert set(np.flatnonzero(a > 0)) == {2, 4}                    # never-asked (-1) and filler are not stored
    assert sorted(sel.slot_due.tolist()) == [2, 3]
    a = sel.act(np.zeros(6, dtype=np.int64), 1)
    assert set(np.flatnonzero(a > 0)) == {6, 7}                    # both kept (asked at 2 and 3)
    a = sel.act(np.zeros(6, dtype=np.int64), 2)
    assert sel.slot_due.tolist().count(3) == 1 and 2 not in sel.slot_due.tolist()   # the fact asked at 2 is dropped
    with pytest.raises(ValueError, match="'lru'"):
        ScriptedSelector("lru", 6, 2)
