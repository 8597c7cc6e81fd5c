import numpy as np
import pytest

from ltm_gym.baselines.scripted_memory import ScriptedSelector, scripted_metrics
from ltm_gym.envs import LLMMemoryEnv, MemoryLMBackend
from tests.fixtures import tiny_study_config

D2 = {"distance": 2, "n_segments": 6, "n_facts": 2, "n_documents": 15}          # 4 open facts, 4 slots
D3 = {"distance": 3, "n_segments": 8, "n_facts": 2, "n_documents": 15}          # 6 open facts, 4 slots
MIX = {"distance": 1, "max_distance": 3, "n_segments": 8, "n_facts": 1, "n_distractors": 1, "n_documents": 15}


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


def test_unasked_drops_answered_facts_and_holds_more_than_fifo(study_backend):
    sel = ScriptedSelector("unasked", segment_len=6, n_slots=3)
    sel.act(np.array([0, 0, 1, 0, 3, -1]), 0)
    assert sorted(sel.slot_due.tolist()) == [-1, 1, 3]             # it cannot tell -1 (never asked) from later
    sel.act(np.zeros(6, dtype=np.int64), 1)                         # the question of the fact due at 1 comes
    assert sorted(sel.slot_due.tolist()) == [-1, 0, 3]             # ... and it is dropped: a free slot
    fifo = ScriptedSelector("fifo", segment_len=6, n_slots=3)
    fifo.act(np.array([0, 0, 1, 0, 3, -1]), 0)
    fifo.act(np.zeros(6, dtype=np.int64), 1)
    assert sorted(fifo.slot_due.tolist()) == [-1, 1, 3]            # a queue keeps the answered fact
    env = LLMMemoryEnv(backend=study_backend, task=MIX, split="test", action_mode="select", reward_mode="full")
    mixed = {p: scripted_metrics(env, p).summary()["held"] for p in ("fifo", "unasked", "keep")}
    assert mixed["fifo"] < mixed["unasked"] < mixed["keep"], mixed


def test_patient_holds_what_it_has_until_asked_or_the_longest_distance():
    sel = ScriptedSelector("patient", segment_len=6, n_slots=2, longest=3)
    sel.act(np.array([0, 0, -1, 0, 9, 0]), 0)
    assert sorted(sel.slot_due.tolist()) == [-1, 9]
    a = sel.act(np.array([0, 5, 0, 0, 0, 6]), 1)                   # new facts wait: the memory is full
    assert set(np.flatnonzero(a > 0.9)) == {6, 7} and sorted(sel.slot_due.tolist()) == [-1, 9]
    sel.act(np.zeros(6, dtype=np.int64), 2)
    sel.act(np.array([0, 7, 0, 0, 0, 0]), 3)                       # 3 segments old: out, the new fact in
    assert 7 in sel.slot_due.tolist()


def test_batched_documents_give_the_rows_of_one_document_at_a_time(study_backend):
    env = LLMMemoryEnv(backend=study_backend, task=MIX, split="test", action_mode="select", reward_mode="full")
    one = scripted_metrics(env, "patient", batch=1)
    many = scripted_metrics(env, "patient", batch=4)               # 4 + 4 + ... documents per forward
    a, b = one.summary(), many.summary()
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    assert one.doc_answers.keys() == many.doc_answers.keys()
    for doc, (s, n) in one.doc_answers.items():
        assert many.doc_answers[doc][1] == n and many.doc_answers[doc][0] == pytest.approx(s, rel=1e-5)


def test_latest_keeps_each_actors_latest_fact():
    sel = ScriptedSelector("latest", segment_len=6, n_slots=3)
    sel.act(np.array([0, -1, 0, 4, 0, 0]), 0, np.array([0, 1, 0, 2, 0, 0]))      # actors 1 and 2
    assert sorted(sel.slot_actor.tolist()) == [0, 1, 2]
    a = sel.act(np.array([0, 0, 5, 0, 0, 0]), 1, np.array([0, 0, 1, 0, 0, 0]))   # actor 1 again
    assert a[2] == 1.0 and sorted(sel.slot_actor.tolist()) == [0, 1, 2]
    assert sel.slot_due[sel.slot_actor == 1].tolist() == [5]                      # the older fact of 1 dropped
    with pytest.raises(ValueError, match="fact actors"):
        ScriptedSelector("latest", 6, 3).act(np.zeros(6, dtype=np.int64), 0)
