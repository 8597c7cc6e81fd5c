"""The RMT's curriculum: the task at growing lengths, each stage trained from the previous one.

RMT trains on 1, 2, 4, ... segments, each stage starting from the last one's weights, and draws
every batch's length from the stages reached so far. On ltm-gym's tasks a stage is the task itself
at a shorter span: a recall level asks its facts ``distance`` = 1, 2, 4, ... segments later (the
gradient must cross that many writes), a bAbI level hides its story in ``2, 4, 8, ...`` segments of
book text. The last stage is the task as given.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from ltm_gym.core import ConfigError
from ltm_gym.data.babilong import BabiTaskConfig
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import AnyTask, TaskConfig, load_task
from ltm_gym.core.errors import UserError


def doubling(limit: int, start: int) -> list[int]:
    """start, 2 start, 4 start, ... below ``limit``."""
    out, n = [], start
    while n < limit:
        out.append(n)
        n *= 2
    return out


def stage_tasks(task: AnyTask, segment_len: int, stages: list[Mapping[str, Any]] | None = None) -> list[AnyTask]:
    """The curriculum's tasks, shortest first, ending with ``task``: each of ``stages`` (task fields
    that override ``task``'s), or when None the automatic one: a fixed-distance recall level at
    distances 1, 2, 4, ... below its own; a bAbI level in 2, 4, 8, ... segments below its own
    length (a mixed-distance level has no shorter stage)."""
    if stages is None:
        if isinstance(task, BabiTaskConfig):
            stages = [{"tokens": n * segment_len} for n in doubling(task.tokens // segment_len, 2)]
        elif isinstance(task, TaskConfig) and not task.max_distance:
            stages = [{"distance": d} for d in doubling(task.distance, 1)]
        else:
            stages = []
    out = []
    for fields in stages:
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(task)})
        if unknown:
            raise ConfigError(f"curriculum stage {dict(fields)!r}: {unknown[0]!r} is not a field of task {task.name!r}")
        stage = dataclasses.replace(task, **fields)
        stage.name = f"{task.name}(" + ",".join(f"{k}={v}" for k, v in sorted(fields.items())) + ")"
        out.append(load_task(stage))                   # validated: a bad stage names its field
    return out + [task]


TRAINING_SEED_OFFSET = 1_000_003
"""Added to a task's seed for the training documents that :func:`training_task` generates."""


def training_task(task: AnyTask, n_documents: int) -> AnyTask:
    """The task whose training split a stage draws from: ``task`` itself (``n_documents`` 0), or the
    same level generated with ``n_documents`` documents from another seed, so that its test
    documents stay unseen. A fully fine-tuned LM memorizes a task's thousand training documents
    (it recognizes a document by its text and recalls its values from its weights, not memory)."""
    if not n_documents:
        return task
    out = dataclasses.replace(task, n_documents=n_documents, seed=task.seed + TRAINING_SEED_OFFSET)
    out.name = f"{task.name}[train {n_documents}]"
    return load_task(out)


def stage_at(step: int, stage_steps: int, n_stages: int) -> int:
    """The curriculum stage reached at optimizer ``step``: ``stage_steps`` steps each, the last
    stage for the rest of the run."""
    return min(step // stage_steps, n_stages - 1) if stage_steps else n_stages - 1


def document_batch(docs: list[Document], batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """``batch`` random documents (of one length): ``ids``, ``answer_mask`` and ``answer_distance``
    (0 where a document has none) (B, S, L)."""
    picks = [docs[int(i)] for i in torch.randint(len(docs), (batch,), generator=g)]
    lengths = {d.n_segments for d in picks}
    if len(lengths) > 1:
        raise UserError(f"documents of one curriculum stage differ in length: {sorted(lengths)} segments")
    ids = torch.stack([d.ids for d in picks])
    return {"ids": ids, "answer_mask": torch.stack([d.answer_mask for d in picks]),
            "answer_distance": torch.stack([d.answer_distance if d.answer_distance is not None
                                            else torch.zeros_like(d.ids) for d in picks])}
