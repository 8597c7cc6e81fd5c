import pytest
import torch

from ltm_gym.core import ConfigError, load_config
from ltm_gym.core.config import parse_overrides
from ltm_gym.data import SyntheticConfig, generate_corpus
from ltm_gym.data.tasks import LEVELS, TaskConfig, load_task, task_documents
from ltm_gym.study import StudyConfig
from tests.fixtures import tiny_study_config

N_SLOTS = 10


def test_every_level_fits_the_tiny_study():
    tiny = load_config(StudyConfig, "tiny")
    for name in LEVELS:
        task = load_task(name)
        assert task.name == name
        task.synthetic(tiny.corpus.synthetic)                       # validates in the study's vocabulary
        assert task.n_segments >= 2 * task.longest + 2               # long enough for the distance
    for name in ("recall-d2", "recall-d4", "recall-d8"):
        assert load_task(name).open_facts <= N_SLOTS                 # a perfect agent can hold them all
    mixed = load_task("recall-mixed")
    assert mixed.open_facts > N_SLOTS and mixed.n_distractors > 0    # capacity pressure: it must choose
    # recall-d1 is the tiny study's own corpus
    d1 = load_task("recall-d1").synthetic(tiny.corpus.synthetic)
    assert d1 == tiny.corpus.synthetic


def test_overrides_and_errors_name_the_field():
    task = load_task({"name": "recall-d4", "distance": 3, "n_segments": 8})
    assert (task.distance, task.n_segments, task.n_facts) == (3, 8, 2)
    assert task.name == "recall-d4(distance=3,n_segments=8)"
    assert load_task({"distance": 2, "n_segments": 6}).n_facts == 3          # from recall-d1
    assert parse_overrides(["task=recall-d4", "task.distance=3"]) == {"task": {"name": "recall-d4", "distance": 3}}
    assert parse_overrides(["task.distance=3", "task=recall-d4"]) == {"task": {"distance": 3, "name": "recall-d4"}}
    with pytest.raises(ConfigError, match="recall-d5.*levels: recall-d1"):
        load_task("recall-d5")
    with pytest.raises(ConfigError, match="task.distanse"):
        load_task({"distanse": 3})
    with pytest.raises(ConfigError, match="task.n_segments"):
        load_task({"distance": 4, "n_segments": 4})
    with pytest.raises(ConfigError, match="neither a level name"):
        load_task(3)


def test_mixed_distances_are_annotated_consistently():
    cfg = SyntheticConfig(n_documents=6, n_segments=10, segment_len=48, n_facts=2, distance=1, max_distance=4,
                          n_distractors=1, n_values=20, n_keys=32, filler_words=40)
    for doc in generate_corpus(cfg):
        words = doc.text.split()
        starts, pos = {}, 0
        for i, w in enumerate(words):                      # character start of each word -> word index
            starts[pos + 1] = i
            pos += 1 + len(w)
        segment = [starts[a] // cfg.segment_len for a, _ in doc.answer_spans]
        stated = {starts[a]: due for (a, _), due in zip(doc.fact_spans, doc.fact_dues)}
        assert set(doc.answer_distances) <= set(range(1, 5)) and len(set(doc.answer_distances)) > 1
        for (a, _), d, t in zip(doc.answer_spans, doc.answer_distances, segment):
            key, value = words[starts[a] - 1], words[starts[a]]
            src = [i for i, due in stated.items() if due == t and words[i] == value and words[i - 1] == key]
            assert len(src) == 1 and src[0] // cfg.segment_len == t - d         # stated d segments before
        assert sum(due == -1 for due in doc.fact_dues) >= cfg.n_segments     # distractors are never asked
        per_seg = [segment.count(t) for t in range(cfg.n_segments)]
        assert max(per_seg) <= cfg.max_questions


def test_fixed_distance_documents_unchanged_by_the_annotations():
    cfg = SyntheticConfig(n_documents=3, n_segments=5, segment_len=48, n_facts=2, distance=2, n_values=20,
                          n_keys=32, filler_words=40)
    for doc in generate_corpus(cfg):
        assert doc.answer_distances == [2] * len(doc.answer_spans) == [2] * (2 * 3)
        assert sorted(doc.fact_dues) == [-1] * 4 + [2, 2, 3, 3, 4, 4]


def test_task_documents_in_the_study_vocabulary(study_data):
    corpus = tiny_study_config().corpus
    same = TaskConfig(distance=1, n_segments=3, n_facts=2, n_documents=40)   # the test study's own corpus
    splits = task_documents(same, corpus, study_data.tokenizer)
    for split in ("train", "test"):
        for a, b in zip(splits[split], study_data.splits[split]):
            assert torch.equal(a.ids, b.ids) and torch.equal(a.answer_mask, b.answer_mask)
    assert task_documents(same, corpus, study_data.tokenizer) is splits            # built once
    from transformers import PreTrainedTokenizerFast

    twin = PreTrainedTokenizerFast(tokenizer_object=study_data.tokenizer.backend_tokenizer, bos_token="<|endoftext|>")
    assert task_documents(same, corpus, twin) is splits            # ... per tokenizer, not per tokenizer object
    d2 = task_documents(TaskConfig(distance=2, n_segments=6, n_facts=2, n_documents=12), corpus, study_data.tokenizer)
    doc = d2["train"][0]
    assert doc.ids.shape == (6, corpus.segment_len)
    assert doc.answer_mask[:2].sum() == 0 and doc.answer_mask[2:].sum() == 2 * 4
    assert set(doc.answer_distance[doc.answer_mask].tolist()) == {2}
    assert (doc.fact_due > 0).sum() == 2 * 4 and (doc.fact_due == -1).sum() == 2 * 2
    with pytest.raises(ConfigError, match="not 'synthetic'"):
        task_documents(same, tiny_study_config(corpus={"source": "/tmp/texts"}).corpus, study_data.tokenizer)
