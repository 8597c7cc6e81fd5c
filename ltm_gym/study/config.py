"""The study's config: corpus, LM and the LM stages' training settings, one dataclass per stage.

The defaults are the embedded default study's preset, ``ltm_gym/presets/tiny.yaml`` (a test holds
them equal); the other presets (``babi-tiny``, ``rugpt3small``, ...) write out what they change."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ltm_gym.core import TrainConfig, check, load_config
from ltm_gym.core.config import load_preset_dict
from ltm_gym.data.babilong import babi_level
from ltm_gym.data.corpus import CorpusConfig
from ltm_gym.lm.setup import LMConfig


@dataclass
class StageConfig:
    """What every LM stage has: its training loop, batch size and where its documents come from
    (the ``lora`` stage needs nothing more)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    batch_size: int = 16
    fresh_documents: bool = True
    """Synthetic corpus: every batch from documents generated for it, outside every split (a small
    LM pre-trained on them learns to copy instead of memorizing); false: from the train split, so
    that a frozen trunk is computed once per segment and then cached (a real LM's readers)."""

    def validate(self) -> None:
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")

    def validation(self) -> "StageConfig":
        """The settings of the stage's fixed validation batch: 64 rows, no training-only noise."""
        return replace(self, batch_size=64)


@dataclass
class PretrainConfig(StageConfig):
    """The tiny LM's pre-training."""

    context_segments: int = 2
    """Consecutive segments per training sequence (teaches copying across segments)."""
    induction_hint: float = 1.0
    """Weight of the auxiliary attention loss that forms the copying circuit early
    (ltm_gym/lm/induction.py); 0 disables it."""
    induction_hint_steps: int = 0
    """Steps the hint is applied for (0 = all of them)."""
    answer_weight: float = 0.0
    """The answer tokens' mean CE is added to the loss with this weight (bAbI documents: a
    question's answer is 1 token of ~100, and it is what the oracle must learn)."""
    answer_hint: float = 0.0
    """bAbI documents: weight of two auxiliary attention losses (:func:`~ltm_gym.lm.induction.attention_hint_loss`):
    one head of the first block points each fact's location, and a question's last token, at the
    actor they are about; one head of the last block points the position that predicts a qa1 answer
    (its question names the actor) at the supporting fact's word that states it. 0 disables them."""

    def validate(self) -> None:
        super().validate()
        check(self.context_segments >= 1, "context_segments", self.context_segments, ">= 1")
        check(self.induction_hint >= 0, "induction_hint", self.induction_hint, ">= 0")
        check(self.induction_hint_steps >= 0, "induction_hint_steps", self.induction_hint_steps, ">= 0")
        check(self.answer_weight >= 0, "answer_weight", self.answer_weight, ">= 0")
        check(self.answer_hint >= 0, "answer_hint", self.answer_hint, ">= 0")

    def validation(self) -> "PretrainConfig":
        return replace(self, batch_size=64, induction_hint=0.0, answer_hint=0.0)

    def hint_at(self, step: int) -> float:
        """The induction hint's weight at optimizer step ``step``."""
        on = self.induction_hint_steps == 0 or step < self.induction_hint_steps
        return self.induction_hint if on else 0.0


@dataclass
class MemoryStageConfig(StageConfig):
    """The reader of the previous segment's embeddings (hypothesis 2)."""

    uninformative: float = 0.0
    """Share of rows whose memory says nothing about the text (all zeros, Gaussian noise at the
    memory's scale, or another document's memory, in equal parts), for the reader to learn to
    ignore it."""

    def validate(self) -> None:
        super().validate()
        check(0 <= self.uninformative < 1, "uninformative", self.uninformative, "in [0, 1)")

    def validation(self) -> "MemoryStageConfig":
        return replace(self, batch_size=64, uninformative=0.0)


@dataclass
class SelectStageConfig(StageConfig):
    """The reader of selection memory (``action_mode="select"``: adapters ``select``)."""

    all_positions: float = 1.0
    """Share of batches whose memory holds the codes of a random number (n_slots to all) of random
    positions of the previous segment (more slots: facts are there more often, and the reader
    learns to find one by its content); the rest hold ``n_slots`` random positions, as an agent's
    selection does."""
    fact_memories: float = 0.5
    """Share of batches whose memory holds facts the way a store-and-keep agent's does: the codes of
    the facts the segment asks (each with probability 0.8), of other facts of the same document,
    and of random earlier positions, in random slot order (synthetic corpus: a question's VALUE has
    its statement's code). Teaches the reader to pick one fact among many held from several
    segments back, as the long-memory tasks need."""
    held_facts: str = "asked"
    """bAbI-in-books documents: which facts a fact memory holds (``asked``: those the segment asks;
    ``current``: and every other actor's latest fact; ``all``: every fact stated, in the order a
    selection keeps them, for a reader with ``lm.memory.slot_order`` or ``read_path: tokens``), see
    :func:`~ltm_gym.study.stages.supporting_fact_batch`."""
    supporting_facts: int = 0
    """bAbI-in-books fact memories: only questions that rest on this many facts (1: qa1's; 0: any),
    for a reader of one task family drawn from a study's mixed corpus."""
    task: str | None = None
    """A bAbI-in-books level (``babi-qa1-1k``) whose training and validation documents the stage
    draws instead of the study corpus's: memories as many facts deep, and questions as far from
    their facts, as the env's; None: the study corpus."""
    task_questions: int = 0
    """With ``task``: questions a document (0: the level's own; more: answers along the way, so
    that more segments train the reader)."""
    read_hint: float = 0.0
    """bAbI-in-books fact memories: weight of an auxiliary loss that points head 0 of the last
    reader, at each answer, at the slot holding its supporting fact
    (:meth:`~ltm_gym.study.stages.SelectStage.hinted_loss`); 0: the answer loss alone."""
    answer_loss: bool = False
    """Train on the answer tokens' loss alone, the output layer run only there
    (:meth:`~ltm_gym.lm.LLMLTM.candidate_losses`). On a real LM's 49k-token vocabulary the output
    layer over every position costs more than the memory blocks; the recall reader needs the answers."""

    def validate(self) -> None:
        super().validate()
        check(0 <= self.all_positions <= 1, "all_positions", self.all_positions, "in [0, 1]")
        check(0 <= self.fact_memories <= 1, "fact_memories", self.fact_memories, "in [0, 1]")
        check(self.held_facts in ("asked", "current", "all"), "held_facts", self.held_facts, "asked, current or all")
        check(self.read_hint >= 0, "read_hint", self.read_hint, ">= 0")
        check(self.supporting_facts >= 0, "supporting_facts", self.supporting_facts, ">= 0")
        check(self.task_questions >= 0, "task_questions", self.task_questions, ">= 0")
        if self.task:
            babi_level(self.task)                                   # a bad name fails on load, with the levels


def _stage_train(steps: int, lr: float, every: int, **cosine: float | int | str) -> TrainConfig:
    return TrainConfig(precision="fp32", steps=steps, lr=lr, grad_clip=1.0, eval_every=every, ckpt_every=every,
                       log_every=25, **cosine)


@dataclass
class StudyConfig:
    """The whole LLM-LTM study on one corpus and LM."""

    name: str = "tiny"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    pretrain: PretrainConfig = field(default_factory=lambda: PretrainConfig(
        _stage_train(1500, 1e-3, 250, schedule="cosine", warmup_steps=100, min_lr_ratio=0.1), 32))
    lora: StageConfig = field(default_factory=lambda: StageConfig(_stage_train(300, 1e-3, 100)))
    memory: MemoryStageConfig = field(default_factory=lambda: MemoryStageConfig(_stage_train(300, 1e-3, 100)))
    select: SelectStageConfig = field(default_factory=lambda: SelectStageConfig(_stage_train(6000, 3e-3, 250)))
    eval_batch: int = 32
    eval_documents: int = 0
    """Test documents evaluated (0 = all)."""
    oracle_segments: int = 1
    """Previous segments the full-context oracle sees (0 = all); a tiny LM only knows the positions
    it was pre-trained on: pretrain.context_segments - 1."""
    seed: int = 0

    def validate(self) -> None:
        check(self.eval_batch >= 1, "eval_batch", self.eval_batch, ">= 1")
        ordered = self.lm.memory.slot_order or self.lm.memory.read_path == "tokens"
        if self.lm.memory.slot_order:
            check(self.select.held_facts == "all", "select.held_facts", self.select.held_facts,
                  "'all' with lm.memory.slot_order (memories in the order kept)")
        if self.select.held_facts == "all":
            check(ordered, "select.held_facts", self.select.held_facts,
                  "'asked' or 'current' unless the reader knows the slots' order (lm.memory.slot_order, "
                  "or read_path tokens: the slots read as text, oldest first)")
        if self.select.task and self.corpus.source == "synthetic":
            check(not self.select.fresh_documents, "select.fresh_documents", self.select.fresh_documents,
                  "false with select.task (the stage draws the level's documents, not fresh synthetic ones)")
        if self.corpus.source in ("synthetic", "babi"):
            need = self.pretrain.context_segments * self.corpus.segment_len + 1
            if self.lm.base == "tiny":
                check(self.lm.tiny.n_positions >= need, "lm.tiny.n_positions", self.lm.tiny.n_positions,
                      f">= {need} (pretrain.context_segments x segment_len + BOS)")


STAGE_CLASSES: dict[str, type[StageConfig]] = {"pretrain": PretrainConfig, "lora": StageConfig,
                                               "memory": MemoryStageConfig, "select": SelectStageConfig}
_ONE_CLASS_FIELDS = ("context_segments", "induction_hint", "induction_hint_steps", "answer_weight",
                     "uninformative", "all_positions", "fact_memories", "answer_loss")
"""Fields that every stage carried when one class served the four of them (study directories
written then hold them); in a stage whose class lacks one, it had no effect there."""


def load_study_config(source: str | Path | Mapping[str, Any] | None = None,
                      overrides: list[str] | Mapping[str, Any] | None = None) -> StudyConfig:
    """A :class:`StudyConfig` from a preset name, a YAML path or a mapping, with ``key=value``
    overrides; a study directory's ``config.yaml`` of any version of the package is read."""
    data = dict(source) if isinstance(source, Mapping) else load_preset_dict(source) if source is not None else {}
    for stage, cls in STAGE_CLASSES.items():
        settings = data.get(stage)
        if isinstance(settings, Mapping):
            own = {f.name for f in fields(cls)}
            data[stage] = {k: v for k, v in settings.items() if k in own or k not in _ONE_CLASS_FIELDS}
    return load_config(StudyConfig, data, overrides)
