"""Memory tasks: which documents an env draws, on top of a study (without rebuilding it).

A *study* is an LM, its tokenizer and its readers; a *task* is the documents an env steps through
and what they ask. Tasks are levels of one ladder (presets ``ltm_gym/presets/tasks/*.yaml``):

* ``recall-d1``: facts asked in the next segment (the study's own corpus; a contextual bandit);
* ``recall-d2``, ``recall-d4``, ``recall-d8``: facts asked d segments later; documents of
  2 d + 2 segments; facts per segment sized so that every fact still to be asked fits the
  10-slot memory (``open_facts`` <= 10);
* ``recall-mixed``: each fact draws its distance from 1..8, plus facts stated but never asked:
  more facts are open at once than the memory holds, so an agent must choose what to keep;
* ``babi-qa1-1k`` ... ``babi-qa3-64k``: bAbI questions hidden in book text, the question at the
  end (:mod:`ltm_gym.data.babilong`), named by length; on any study.

Task documents are synthetic documents in the study corpus's vocabulary, laid out in the study
tokenizer's tokens (a word may be several), generated from the task's own seed and split by document.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ltm_gym.core import ConfigError, check, from_dict, load_config, to_dict
from ltm_gym.core.keyed import Keyed

from .babilong import BabiTaskConfig, babi_documents, babi_level, is_babi
from .segments import Document, split_documents, tokenize_documents
from .synthetic import SyntheticConfig, generate_corpus
from .tokenizer import tokenizer_fingerprint, word_costs

LEVELS = ("recall-d1", "recall-d2", "recall-d4", "recall-d8", "recall-mixed")
"""The named levels shipped as presets (``tasks/<name>``)."""


@dataclass
class TaskConfig:
    """One level of the memory-task ladder (fields of :class:`~ltm_gym.data.synthetic.SyntheticConfig`
    that say what is asked when; the vocabulary and segment length are the study corpus's)."""

    name: str = "custom"
    distance: int = 1
    """Segments between a fact and its question (the shortest with ``max_distance``)."""
    max_distance: int = 0
    """0: every fact at ``distance``; else each fact draws its distance from ``distance .. max_distance``."""
    n_segments: int = 4
    n_facts: int = 3
    """Facts stated per segment that are asked later (unless the document ends first)."""
    n_distractors: int = 0
    """Facts stated per segment that are never asked."""
    n_documents: int = 1200
    seed: int = 0
    split_seed: int = 0

    def validate(self) -> None:
        check(self.distance >= 1, "task.distance", self.distance, ">= 1")
        check(self.max_distance == 0 or self.max_distance > self.distance, "task.max_distance", self.max_distance,
              f"0 or > task.distance ({self.distance})")
        check(self.n_segments > self.longest, "task.n_segments", self.n_segments,
              f"> the longest distance ({self.longest}): some fact must be asked")
        check(self.n_facts >= 1, "task.n_facts", self.n_facts, ">= 1")
        check(self.n_distractors >= 0, "task.n_distractors", self.n_distractors, ">= 0")
        check(self.n_documents >= 3, "task.n_documents", self.n_documents, ">= 3 (train, validation, test)")

    @property
    def longest(self) -> int:
        return max(self.distance, self.max_distance)

    @property
    def open_facts(self) -> int:
        """The most facts a memory must hold at once for every one to be recalled: the facts
        stated in the last ``longest`` segments (all of them still to be asked at a fixed distance)."""
        return self.n_facts * self.longest

    def synthetic(self, base: SyntheticConfig) -> SyntheticConfig:
        """The corpus config of this task in ``base``'s vocabulary and segment length."""
        cfg = replace(base, distance=self.distance, max_distance=self.max_distance, n_segments=self.n_segments,
                      n_facts=self.n_facts, n_distractors=self.n_distractors, n_documents=self.n_documents,
                      seed=self.seed)
        cfg.validate()
        return cfg


AnyTask = TaskConfig | BabiTaskConfig


def load_task(task: str | Mapping[str, Any] | AnyTask) -> AnyTask:
    """A task from a level name (``recall-d4``, ``babi-qa1-4k``), a YAML path, a task config, or a
    dict of fields whose optional ``name`` picks the level they override (default ``recall-d1``):
    ``{"name": "recall-d4", "distance": 3}`` is recall-d4 asked at distance 3,
    ``{"name": "babi-qa1-4k", "tokens": 3000}`` qa1 in 3000 tokens."""
    if isinstance(task, (TaskConfig, BabiTaskConfig)):
        task.validate()
        return task
    if isinstance(task, str):
        return _preset(task)
    if not isinstance(task, Mapping):
        raise ConfigError(f"task={task!r} is neither a level name ({', '.join(LEVELS)}, babi-qa1-4k, ...) nor a "
                          "dict of task fields")
    fields = dict(task)
    base = _preset(str(fields.pop("name", "recall-d1")))
    cfg = from_dict(type(base), {**to_dict(base), **fields}, prefix="task.")
    if fields:
        cfg.name = f"{base.name}(" + ",".join(f"{k}={v}" for k, v in sorted(fields.items())) + ")"
    return cfg


def protocol_task(task: str | Mapping[str, Any] | AnyTask) -> AnyTask:
    """The task as it is evaluated: a bAbI level asks its final question alone (BABILong's
    protocol); questions along the way (``task.questions``) are a training option, a denser reward."""
    resolved = load_task(task)
    if not isinstance(resolved, BabiTaskConfig) or resolved.questions == 1:
        return resolved
    if isinstance(task, Mapping):
        resolved = load_task({k: v for k, v in task.items() if k != "questions"})
    return resolved if resolved.questions == 1 else replace(resolved, questions=1)


def _preset(name: str) -> AnyTask:
    if is_babi(name):
        level = babi_level(name)
        level.validate()
        return level
    if name.endswith((".yaml", ".yml")):
        return load_config(TaskConfig, name)
    if name not in LEVELS:
        raise ConfigError(f"task {name!r} is not a level; levels: {', '.join(LEVELS)}, babi-qa{{1,2,3}}-{{N}}k "
                          "(or a YAML path, or a dict of task fields)")
    return load_config(TaskConfig, f"tasks/{name}")


def task_documents(task: AnyTask, corpus: Any, tokenizer, segment_len: int | None = None) -> Mapping[str, list[Document]]:
    """The task's ``train``/``validation``/``test`` documents, in the vocabulary of a study whose
    corpus config is ``corpus`` (a :class:`~ltm_gym.data.corpus.CorpusConfig`; of the synthetic
    corpus for the recall ladder), tokenized with its ``tokenizer``. Built once per process, task
    and tokenizer (by its fingerprint: a study loaded twice shares them); a bAbI task's split is
    built when first read (:class:`~ltm_gym.data.babilong.BabiSplits`), in segments of the study's
    length (``segment_len``, default the corpus's), over any study."""
    if isinstance(task, BabiTaskConfig):
        if segment_len is None and corpus is None:
            raise ConfigError(f"task {task.name!r}: the segment length is unknown (no study corpus)")
        return babi_documents(task, tokenizer, segment_len or corpus.segment_len)
    if corpus is None or corpus.source != "synthetic":
        source = "unknown" if corpus is None else repr(corpus.source)
        raise ConfigError(f"task={task.name!r} draws synthetic documents in the study corpus's vocabulary; "
                          f"this study's corpus is {source}, not 'synthetic'")
    syn = task.synthetic(corpus.synthetic)
    key = (json.dumps(to_dict(task), sort_keys=True), json.dumps(to_dict(syn), sort_keys=True),
           tokenizer_fingerprint(tokenizer))
    return _synthetic_splits(Keyed(key, (task, syn, tokenizer)))


@functools.lru_cache(maxsize=8)
def _synthetic_splits(args: Keyed[tuple[TaskConfig, Any, Any]]) -> dict[str, list[Document]]:
    """The recall ladder's split documents of (task, its synthetic config, tokenizer), once per process."""
    task, syn, tokenizer = args.value
    records = [d.record(i) for i, d in enumerate(generate_corpus(syn, word_costs(syn, tokenizer)))]
    docs = tokenize_documents(records, tokenizer, syn.segment_len, 0, None)
    short = [d.doc_id for d in docs if d.n_segments != syn.n_segments]
    if short or len(docs) != len(records):
        raise ConfigError(f"task {task.name!r}: the tokenizer does not tokenize the corpus word by word "
                          f"(documents {short[:3]} are not {syn.n_segments} segments of {syn.segment_len} tokens)")
    return split_documents(docs, task.split_seed)
