"""The LLM-LTM study's LM stages on the shared core: pre-train the tiny LM, the LoRA baseline
without memory, and LM pre-training with previous-segment memory (hypothesis 2).

A study directory holds every stage's output, so later stages (and the environments) find them:
``lm/`` (the pre-trained base LM and its tokenizer, HF format), ``lora_baseline.safetensors`` and
``memory_lm.safetensors`` (LoRA + memory read parameters), each stage's logs under ``stages/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ltm_gym.core import TrainConfig, Trainer, check, save_config, seed_everything, step_generator
from ltm_gym.data.corpus import CorpusConfig, build_corpus, fresh_synthetic_documents, load_tokenizer
from ltm_gym.data.segments import Document

from .induction import captured_attention, induction_hint_loss
from .memory import embedding_memory
from .model import LLMLTM
from .setup import LMConfig, build_llmltm

STAGES = ("pretrain", "lora", "memory")


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

    def validate(self) -> None:
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.context_segments >= 1, "context_segments", self.context_segments, ">= 1")
        check(self.induction_hint >= 0, "induction_hint", self.induction_hint, ">= 0")
        check(self.induction_hint_steps >= 0, "induction_hint_steps", self.induction_hint_steps, ">= 0")

    def hint_at(self, step: int) -> float:
        """The induction hint's weight at optimizer step ``step``."""
        on = self.induction_hint_steps == 0 or step < self.induction_hint_steps
        return self.induction_hint if on else 0.0


@dataclass
class StudyConfig:
    """The whole LLM-LTM study on one corpus and LM (presets: configs/tiny.yaml, configs/rugpt3small.yaml)."""

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
    eval_batch: int = 32
    eval_documents: int = 0
    """Test documents evaluated (0 = all)."""
    oracle_segments: int = 0
    """Previous segments the full-context oracle sees (0 = all); a tiny LM only knows the positions
    it was pre-trained on, so its preset sets pretrain.context_segments - 1."""
    seed: int = 0

    def validate(self) -> None:
        check(self.eval_batch >= 1, "eval_batch", self.eval_batch, ">= 1")
        if self.corpus.source == "synthetic":
            need = self.pretrain.context_segments * self.corpus.segment_len + 1
            if self.lm.base == "tiny":
                check(self.lm.tiny.n_positions >= need, "lm.tiny.n_positions", self.lm.tiny.n_positions,
                      f">= {need} (pretrain.context_segments x segment_len + BOS)")


class StudyData:
    """The tokenizer and the split corpus of a study, built once."""

    def __init__(self, cfg: StudyConfig, cache_dir: str | Path) -> None:
        self.cfg = cfg
        self.tokenizer = load_tokenizer(cfg.corpus, cache_dir)
        self.splits = build_corpus(cfg.corpus, self.tokenizer)


def base_dir(study_dir: Path, cfg: StudyConfig) -> Path | None:
    """Where the base LM comes from: the study's pre-trained tiny LM, or None (cfg.lm.base)."""
    return study_dir / "lm" if cfg.lm.base == "tiny" else None


def window_batch(docs: list[Document], batch: int, n_ctx: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random windows of ``n_ctx`` consecutive segments: ids (B, n_ctx * L)."""
    rows = []
    for _ in range(batch):
        d = docs[int(torch.randint(len(docs), (1,), generator=g))]
        n = min(n_ctx, d.n_segments)
        s = int(torch.randint(d.n_segments - n + 1, (1,), generator=g))
        rows.append(d.ids[s : s + n].reshape(-1))
    width = min(len(r) for r in rows)
    return {"ids": torch.stack([r[:width] for r in rows])}


def pair_batch(docs: list[Document], batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random (previous segment, segment) pairs: prev, ids, answer_mask (B, L)."""
    prev, cur, mask = [], [], []
    for _ in range(batch):
        d = docs[int(torch.randint(len(docs), (1,), generator=g))]
        t = int(torch.randint(1, d.n_segments, (1,), generator=g))
        prev.append(d.ids[t - 1])
        cur.append(d.ids[t])
        mask.append(d.answer_mask[t])
    return {"prev": torch.stack(prev), "ids": torch.stack(cur), "answer_mask": torch.stack(mask)}


def previous_segment_memory(model: LLMLTM, prev_ids: torch.Tensor) -> torch.Tensor:
    """Hypothesis-2 memory of a batch of previous segments: (B, n_slots, slot_dim)."""
    from .memory import fixed_projection

    m = model.mem_cfg
    A = fixed_projection(m.slot_dim, model.hidden, m.projection_seed).to(prev_ids.device)
    with torch.no_grad():
        return embedding_memory(model.token_embeddings(prev_ids).float(), m.n_slots, A)


def stage_loss(stage: str):
    def loss_fn(model: LLMLTM, batch: dict):
        out: dict[str, float] = {}
        hint = float(batch["hint"][0]) if "hint" in batch else 0.0
        if stage == "memory":
            mem = previous_segment_memory(_unwrap(model), batch["prev"])
            _, losses = model(batch["ids"], mem)
        elif hint > 0:
            inner = _unwrap(model)
            with captured_attention(inner.lm, (0, 1)) as attentions:
                _, losses = model(batch["ids"])
            bos = batch["ids"].new_full((len(batch["ids"]), 1), inner.bos_token_id)
            aux = induction_hint_loss(attentions, torch.cat([bos, batch["ids"]], 1))
            out["induction_hint"] = float(aux.detach())
            return losses.mean() + hint * aux, out
        else:
            _, losses = model(batch["ids"])
        if stage != "pretrain" and batch["answer_mask"].any():
            out["answer_ce"] = float(losses.detach()[batch["answer_mask"]].mean())
        return losses.mean(), out

    return loss_fn


def _unwrap(model: torch.nn.Module) -> LLMLTM:
    return getattr(model, "module", model)


def run_stage(stage: str, cfg: StudyConfig, data: StudyData, study_dir: Path, resume: bool = True) -> Path:
    """Train one stage and write its artifact; returns the artifact's path. A finished stage
    (artifact present) is not run again."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {STAGES}")
    study_dir.mkdir(parents=True, exist_ok=True)
    artifact = {"pretrain": study_dir / "lm", "lora": study_dir / "lora_baseline.safetensors",
                "memory": study_dir / "memory_lm.safetensors"}[stage]
    if artifact.exists():
        return artifact
    if stage == "pretrain" and cfg.lm.base != "tiny":
        raise ValueError(f"the pretrain stage builds the tiny LM; lm.base is {cfg.lm.base!r} (already pre-trained)")
    sc: StageConfig = getattr(cfg, stage)
    seed_everything(cfg.seed)
    if stage == "pretrain":
        model = build_llmltm(cfg.lm, data.tokenizer, lora=False, seed=cfg.seed)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.lm.parameters():
            p.requires_grad_(True)
    else:
        model = build_llmltm(cfg.lm, data.tokenizer, base_dir=base_dir(study_dir, cfg), lora=cfg.lm.lora.enabled,
                             seed=cfg.seed)
        if stage == "lora":  # the baseline has no memory: only LoRA trains
            for n, p in model.named_parameters():
                if not n.startswith("lm."):
                    p.requires_grad_(False)
    train_docs, val_docs = data.splits["train"], data.splits["validation"] or data.splits["train"]
    seed = sc.train.seed

    synthetic = cfg.corpus.source == "synthetic"

    def batch_fn(step: int) -> dict:
        g = step_generator(seed, step)
        docs = train_docs
        if synthetic:  # a fresh stream of documents outside every split
            first = cfg.corpus.synthetic.n_documents + step * sc.batch_size
            docs = fresh_synthetic_documents(cfg.corpus, data.tokenizer, list(range(first, first + sc.batch_size)))
        if stage == "pretrain":
            batch = window_batch(docs, sc.batch_size, sc.context_segments, g)
            if sc.hint_at(step) > 0:
                batch["hint"] = torch.full((sc.batch_size,), sc.hint_at(step))
            return batch
        return pair_batch(docs, sc.batch_size, g)

    g_val = torch.Generator().manual_seed(seed + 99)
    val = (window_batch(val_docs, 64, sc.context_segments, g_val) if stage == "pretrain"
           else pair_batch(val_docs, 64, g_val))
    loss_fn = stage_loss(stage)

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        dev = next(m.parameters()).device
        loss, extra = loss_fn(m, {k: v.to(dev) for k, v in val.items()})
        return {"loss": float(loss), **extra}

    run_dir = study_dir / "stages" / stage
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, study_dir / "config.yaml")
    trainer = Trainer(model, sc.train, loss_fn, batch_fn, run_dir=run_dir, eval_fn=eval_fn)
    trainer.fit(resume=resume)
    trainer.close()
    model.cpu()
    if stage == "pretrain":
        tmp = study_dir / "lm.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        model.lm.save_pretrained(str(tmp))
        data.tokenizer.save_pretrained(str(tmp))
        tmp.rename(artifact)
    else:
        model.save_adapters(artifact)
    return artifact
