"""The study's config: corpus, LM and the LM stages' training settings (presets
``ltm_gym/presets/tiny.yaml`` and ``rugpt3small.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ltm_gym.core import TrainConfig, check
from ltm_gym.data.corpus import CorpusConfig
from ltm_gym.lm.setup import LMConfig


@dataclass
class StageConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    batch_size: int = 16
    context_segments: int = 1
    """Consecutive segments per training sequence (pretrain only: teaches copying across segments)."""
    induction_hint: float = 0.0
    """Pretrain only: weight of the auxiliary attention loss that forms the copying circuit early
    (ltm_gym/lm/induction.py); 0 disables it."""
    induction_hint_steps: int = 0
    """Steps the hint is applied for (0 = all of them)."""
    all_positions: float = 1.0
    """Select only: share of batches whose memory holds the codes of a random number (n_slots to
    all) of random positions of the previous segment (more slots: facts are there more often, and
    the reader learns to find one by its content); the rest hold ``n_slots`` random positions,
    as an agent's selection does."""
    fact_memories: float = 0.0
    """Select only: share of batches whose memory holds facts the way a store-and-keep agent's
    does: the codes of the facts the segment asks (each with probability 0.8), of other facts of
    the same document, and of random earlier positions, in random slot order (synthetic corpus:
    a question's VALUE has its statement's code). Teaches the reader to pick one fact among many
    held from several segments back, as the long-memory tasks need."""
    answer_weight: float = 0.0
    """Pretrain only: the answer tokens' mean CE is added to the loss with this weight (bAbI
    documents: a question's answer is 1 token of ~100, and it is what the oracle must learn)."""
    fresh_documents: bool = True
    """Synthetic corpus: every batch from documents generated for it, outside every split (a small
    LM pre-trained on them learns to copy instead of memorizing); false: from the train split, so
    that a frozen trunk is computed once per segment and then cached (a real LM's readers)."""
    answer_loss: bool = False
    """Select only: train on the answer tokens' loss alone, the output layer run only there
    (:meth:`~ltm_gym.lm.LLMLTM.candidate_losses`). On a real LM's 49k-token vocabulary the output
    layer over every position costs more than the memory blocks; the recall reader needs the answers."""
    uninformative: float = 0.0
    """Memory only: share of rows whose memory says nothing about the text (all zeros, Gaussian
    noise at the memory's scale, or another document's memory, in equal parts), for the reader to
    learn to ignore it."""

    def validate(self) -> None:
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.context_segments >= 1, "context_segments", self.context_segments, ">= 1")
        check(self.induction_hint >= 0, "induction_hint", self.induction_hint, ">= 0")
        check(self.induction_hint_steps >= 0, "induction_hint_steps", self.induction_hint_steps, ">= 0")
        check(0 <= self.all_positions <= 1, "all_positions", self.all_positions, "in [0, 1]")
        check(0 <= self.uninformative < 1, "uninformative", self.uninformative, "in [0, 1)")
        check(0 <= self.fact_memories <= 1, "fact_memories", self.fact_memories, "in [0, 1]")
        check(self.answer_weight >= 0, "answer_weight", self.answer_weight, ">= 0")

    def hint_at(self, step: int) -> float:
        """The induction hint's weight at optimizer step ``step``."""
        on = self.induction_hint_steps == 0 or step < self.induction_hint_steps
        return self.induction_hint if on else 0.0


@dataclass
class StudyConfig:
    """The whole LLM-LTM study on one corpus and LM."""

    name: str = "tiny"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(
        TrainConfig(steps=1500, lr=1e-3, schedule="cosine", warmup_steps=100, min_lr_ratio=0.1,
                    grad_clip=1.0, eval_every=250, ckpt_every=250, log_every=25), 32, 4))
    lora: StageConfig = field(default_factory=lambda: StageConfig(
        TrainConfig(steps=300, lr=1e-3, grad_clip=1.0, eval_every=100, ckpt_every=100, log_every=25), 16))
    memory: StageConfig = field(default_factory=lambda: StageConfig(
        TrainConfig(steps=300, lr=1e-3, grad_clip=1.0, eval_every=100, ckpt_every=100, log_every=25), 16))
    select: StageConfig = field(default_factory=lambda: StageConfig(
        TrainConfig(steps=2000, lr=3e-3, grad_clip=1.0, eval_every=250, ckpt_every=250, log_every=25), 16))
    """The reader of selection memory (``action_mode="select"``): adapters ``select``."""
    eval_batch: int = 32
    eval_documents: int = 0
    """Test documents evaluated (0 = all)."""
    oracle_segments: int = 0
    """Previous segments the full-context oracle sees (0 = all); a tiny LM only knows the positions
    it was pre-trained on, so its preset sets pretrain.context_segments - 1."""
    seed: int = 0

    def validate(self) -> None:
        check(self.eval_batch >= 1, "eval_batch", self.eval_batch, ">= 1")
        if self.corpus.source in ("synthetic", "babi"):
            need = self.pretrain.context_segments * self.corpus.segment_len + 1
            if self.lm.base == "tiny":
                check(self.lm.tiny.n_positions >= need, "lm.tiny.n_positions", self.lm.tiny.n_positions,
                      f">= {need} (pretrain.context_segments x segment_len + BOS)")
