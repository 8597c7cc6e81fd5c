"""Training and evaluating the RMT reference (``ltm-gym train-rmt``).

The loss is the answer tokens' CE (RMT's answer-only loss on task documents), optionally plus the
LM loss of every token (``lm_weight``), backpropagated through all segments of each document (or
through ``bptt`` of them). The evaluation scores the same segments as the agents' rows
(:func:`ltm_gym.agents.evaluation.agent_metrics`): every segment after the first of a recall
document, the question's segment of a bAbI one, with the same per-segment metrics, so the ``rmt``
row stands in the agents' tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ltm_gym.core import TrainConfig, Trainer, check, save_config, step_generator
from ltm_gym.core.device import choose_device
from ltm_gym.core.distributed import from_environment
from ltm_gym.data.segments import Document
from ltm_gym.data.tasks import AnyTask, load_task, task_documents
from ltm_gym.envs import MemoryLMBackend
from ltm_gym.lm import LoraSettings
from ltm_gym.metrics import SegmentMetrics

from .curriculum import document_batch, stage_at, stage_tasks, training_task
from .model import Finetune, RecurrentMemoryLM, study_base_lm

WEIGHTS_FILE = "rmt.safetensors"
ROW = "rmt"


@dataclass
class RMTConfig:
    """An RMT run (preset: ltm_gym/presets/rmt-tiny.yaml)."""

    study_dir: str | None = None
    """The study whose LM and tokenizer the RMT uses (a directory or a shipped study's name;
    default: the default study)."""
    task: str | dict[str, Any] = "recall-d4"
    """The task it trains on and is evaluated on: a level (``recall-d4``, ``babi-qa1-4k``) or a
    dict of task fields (``--set task=recall-d4 --set task.distance=3``)."""
    n_memory: int = 16
    """Memory tokens (each of the LM's width)."""
    finetune: Finetune = "full"
    """``full``: every LM weight trains; ``lora``: LoRA adapters of the study's ``lm.lora`` settings."""
    curriculum: list[dict[str, Any]] | None = None
    """Stages before the task itself, as task fields (``[{distance: 1}, {distance: 2}]``); null:
    the automatic one (:func:`~ltm_gym.baselines.rmt.curriculum.stage_tasks`); ``[]``: none."""
    stage_steps: int = 500
    """Optimizer steps of each stage before the last; the last stage runs to ``train.steps``."""
    mix_stages: bool = True
    """Each batch draws its stage from those reached so far (RMT's lengths 1..max within a stage),
    else the current stage only."""
    train_documents: int = 0
    """Training documents of each stage: 0, the task's own training split; N, the level generated
    anew with N documents (of a recall level about 0.8 N train; of a bAbI level N) from another
    seed, its test documents unseen (a full fine-tune memorizes a thousand documents)."""
    bptt: int = 0
    """Segments a gradient flows back through (the memory is detached every ``bptt``); 0: the whole document."""
    lm_weight: float = 0.0
    """Weight of every token's LM loss added to the answer tokens' CE (0: answer-only, as RMT)."""
    batch_size: int = 16
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, lr=1e-3, schedule="cosine", warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0,
        eval_every=250, ckpt_every=250, log_every=25, precision="fp32"))
    eval_documents: int = 64
    """Validation documents scored at every evaluation during training."""
    device: str = "auto"

    def validate(self) -> None:
        check(self.n_memory >= 1, "n_memory", self.n_memory, ">= 1")
        check(self.finetune in ("full", "lora"), "finetune", self.finetune, "full, lora")
        check(self.stage_steps >= 0, "stage_steps", self.stage_steps, ">= 0")
        check(self.train_documents >= 0, "train_documents", self.train_documents, ">= 0 (0: the task's own)")
        check(self.bptt >= 0, "bptt", self.bptt, ">= 0 (0: the whole document)")
        check(self.lm_weight >= 0, "lm_weight", self.lm_weight, ">= 0")
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.eval_documents >= 1, "eval_documents", self.eval_documents, ">= 1")
        load_task(self.task)                            # a ConfigError naming the bad level or field


class RMTSetup:
    """A study, its RMT and the task's documents at every curriculum stage."""

    def __init__(self, cfg: RMTConfig) -> None:
        from ltm_gym.study import StudyDir

        cfg.validate()
        self.cfg = cfg
        self.study = StudyDir(cfg.study_dir)
        self.task = load_task(cfg.task)
        self.segment_len = self.study.config.corpus.segment_len
        self.stages = stage_tasks(self.task, self.segment_len, cfg.curriculum)
        study_cfg = self.study.config
        torch.manual_seed(cfg.train.seed)
        self.model = RecurrentMemoryLM(study_base_lm(self.study), cfg.n_memory, self.study.tokenizer.bos_token_id,
                                       cfg.finetune, LoraSettings(**vars(study_cfg.lm.lora)), seed=cfg.train.seed)
        self.model.check_length(self.segment_len)

    def documents(self, task: AnyTask, split: str) -> list[Document]:
        return task_documents(task, self.study.config.corpus, self.study.tokenizer, self.segment_len)[split]


def unroll(model: RecurrentMemoryLM, batch: dict[str, torch.Tensor], bptt: int = 0,
           lm_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Read every document of ``batch`` segment by segment; the loss is the mean CE of the answer
    tokens (plus ``lm_weight`` times every token's mean CE), with gradients through the memory."""
    ids, mask = batch["ids"], batch["answer_mask"].bool()
    B, S, L = ids.shape
    memory = model.initial_memory(B)
    answer_sum = lm_sum = ids.new_zeros((), dtype=torch.float32)
    answer_n = hits = 0
    for t in range(S):
        if bptt and t and t % bptt == 0:
            memory = memory.detach()
        hidden, memory = model(ids[:, t], memory)
        m = mask[:, t]
        if lm_weight:
            logits, losses = model.token_losses(hidden, ids[:, t])
            lm_sum = lm_sum + losses.sum()
            picked_logits, picked = logits[m], losses[m]
        elif m.any():
            picked_logits, picked = model.token_losses(hidden[m], ids[:, t][m])
        else:
            continue
        answer_sum = answer_sum + picked.sum()
        answer_n += int(m.sum())
        hits += int((picked_logits.argmax(-1) == ids[:, t][m]).sum())
    loss = answer_sum / max(answer_n, 1) + lm_weight * lm_sum / (B * S * L)
    stats = {"answer_ce": float(answer_sum.detach()) / answer_n, "recall": hits / answer_n} if answer_n else {}
    return loss, stats


def train_rmt(cfg: RMTConfig, run_dir: str | Path, resume: bool = True) -> RMTSetup:
    """Train (or resume) the RMT of ``run_dir`` through its curriculum; saves ``rmt.safetensors``."""
    setup = RMTSetup(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if from_environment().is_main:
        save_config(cfg, run_dir / "config.yaml")
        (run_dir / "curriculum.json").write_text(json.dumps(
            [{"stage": i, "task": t.name, "from_step": i * cfg.stage_steps} for i, t in enumerate(setup.stages)],
            indent=2))
    train_docs = [setup.documents(training_task(t, cfg.train_documents), "train") for t in setup.stages]
    val_docs = setup.documents(setup.task, "validation")
    val = document_batch(val_docs, min(cfg.eval_documents, len(val_docs)), torch.Generator().manual_seed(cfg.train.seed + 99))

    def batch_fn(step: int) -> dict[str, torch.Tensor]:
        g = step_generator(cfg.train.seed, step)
        top = stage_at(step, cfg.stage_steps, len(train_docs))
        stage = int(torch.randint(top + 1, (), generator=g)) if cfg.mix_stages else top
        return document_batch(train_docs[stage], cfg.batch_size, g)

    def loss_fn(model: RecurrentMemoryLM, batch: dict[str, torch.Tensor]):
        return unroll(model, batch, cfg.bptt, cfg.lm_weight)

    def eval_fn(model: RecurrentMemoryLM) -> dict[str, float]:
        dev = next(model.parameters()).device
        with torch.no_grad():
            loss, stats = unroll(model, {k: v.to(dev) for k, v in val.items()})
        return {"loss": float(loss), **stats}

    train_cfg = TrainConfig(**{**vars(cfg.train), "device": cfg.device})
    trainer = Trainer(setup.model, train_cfg, loss_fn, batch_fn, run_dir=run_dir, eval_fn=eval_fn, prefetch=True)
    trainer.fit(resume=resume)
    trainer.close()
    setup.model.eval()
    if trainer.dist.is_main:
        setup.model.save(run_dir / WEIGHTS_FILE)
    return setup


def load_rmt(run_dir: str | Path, device: str | None = None) -> RMTSetup:
    """The finished run of ``run_dir`` (its config and trained weights)."""
    from ltm_gym.core import load_config

    run_dir = Path(run_dir)
    cfg = load_config(RMTConfig, run_dir / "config.yaml")
    if device is not None:
        cfg.device = device
    setup = RMTSetup(cfg)
    setup.model.load(run_dir / WEIGHTS_FILE)
    setup.model.eval()
    return setup


@torch.no_grad()
def rmt_metrics(model: RecurrentMemoryLM, docs: list[Document], batch: int = 32, device: str = "auto") -> SegmentMetrics:
    """The RMT's row on ``docs``: each document read from its start, and scored on the segments
    an agent's row is (every segment after the first; of a bAbI document, the question's), with
    the env's per-segment metrics (CE, top-k, answer CE, recall, by fact distance)."""
    dev = choose_device(device)
    model.to(dev).eval()
    metrics = SegmentMetrics()
    by_length: dict[int, list[int]] = {}
    for i, d in enumerate(docs):
        by_length.setdefault(d.n_segments, []).append(i)
    for S, members in sorted(by_length.items()):
        for s in range(0, len(members), batch):
            chunk = members[s : s + batch]
            ids = torch.stack([docs[i].ids for i in chunk]).to(dev)
            memory = model.initial_memory(len(chunk))
            for t in range(S):
                hidden, next_memory = model(ids[:, t], memory)
                memory = next_memory
                scored = [r for r, i in enumerate(chunk) if t >= 1 and (docs[i].oracle is None or docs[i].answer_mask[t].any())]
                if not scored:
                    continue
                rows = torch.tensor(scored, device=dev)
                logits, losses = model.token_losses(hidden[rows], ids[rows, t])
                mask = torch.stack([docs[chunk[r]].answer_mask[t] for r in scored])
                distance = torch.stack([docs[chunk[r]].answer_distance[t] if docs[chunk[r]].answer_distance is not None
                                        else torch.zeros_like(docs[chunk[r]].ids[t]) for r in scored])
                for r, info in zip(scored, MemoryLMBackend.segment_metrics(logits, ids[rows, t], losses, mask, distance)):
                    metrics.add_info(info, chunk[r])
    return metrics


def evaluate_rmt(setup: RMTSetup, tasks: list[str | dict[str, Any]] | None = None, n_documents: int | None = None,
                 with_lm_rows: bool = True) -> dict[str, dict[str, SegmentMetrics]]:
    """Per task (default: the run's own), on its test documents: the study's ``lora_baseline``
    (no memory) and ``oracle`` rows and the ``rmt`` row."""
    from ltm_gym.study.scoring import task_lm_rows

    out = {}
    for spec in tasks or [setup.cfg.task]:
        task = load_task(spec)
        docs = setup.documents(task, "test")[:n_documents]
        rows = task_lm_rows(setup.study, task, n_documents, device=setup.cfg.device) if with_lm_rows else {}
        rows[ROW] = rmt_metrics(setup.model, docs, setup.study.config.eval_batch, setup.cfg.device)
        out[task.name] = rows
    return out
