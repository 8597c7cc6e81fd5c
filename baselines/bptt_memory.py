"""The differentiable memory writer: the upper bound the RL memory agents are measured against.

The writer has the REINFORCE policy's architecture (:class:`ltm_gym.agents.networks.MemoryWriter`) and
writes what that policy writes when it acts deterministically: ``m_{t+1} = action_scale *
tanh(mean(s_t, m_t))``. Instead of a score-function estimate it follows the pathwise gradient: the
reward of ``LLMMemory-v0`` (the LM loss of the next segment read with the memory) is
differentiable in the memory, so the loss ``-reward`` is backpropagated through the LLM-LTM into
the memory and on into the writer, across ``tbptt`` consecutive writes (truncated backprop
through the document, as a recurrent memory transformer trains its memory).

With ``train_reader`` the LLM-LTM's memory read path (memory projection, cross-attention, LoRA)
trains jointly with the writer, end to end as in a recurrent memory transformer, and is saved as
``reader.safetensors``: the study's hypothesis-2 reader only ever saw pooled embeddings, and
through it (``train_reader: false``, frozen) even this writer closes only about a fifth of the
recall gap on the tiny default. RL agents can then be trained against the same reader
(``--env-kwargs adapters=RUN/reader.safetensors``) so that the two are compared on one channel.

The reward is the environment's own (:class:`ltm_gym.envs.Reward`, the object ``step`` calls,
here with ``grad=True``), so the writer and the RL agents optimize the same quantity. A trained writer is saved in the REINFORCE
checkpoint layout (``{"policy": state_dict}``), so it can warm-start that policy
(``scripts/train_agent.py --init-from RUN/writer.pt``).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ltm_gym.agents.networks import MemoryWriter, WriterConfig
from ltm_gym.core import TrainConfig, Trainer, atomic_write, check, load_checkpoint, save_config, step_generator
from ltm_gym.core.distributed import from_environment
from ltm_gym.data.tasks import load_task
from ltm_gym.envs import LLMMemoryEnv, MemoryLMBackend, Reward, RewardConfig, Segments
from ltm_gym.metrics import SegmentMetrics
from ltm_gym.core.errors import UserError

TRAINABLE_REWARDS = ("full", "answer", "prefix", "prefix_sampled")
WRITER_FILE = "writer.pt"
READER_FILE = "reader.safetensors"


@dataclass
class BPTTConfig:
    """A differentiable-writer run (preset: ltm_gym/presets/bptt-tiny.yaml)."""

    study_dir: str | None = None
    """The study whose LLM-LTM reads the memory (default: the default study, see ltm_gym.study)."""
    adapters: str = "memory"
    """The LM's adapters: the study's ``memory`` (hypothesis-2 read path), ``lora``, ``none``, or a
    .safetensors file (e.g. another run's reader.safetensors)."""
    task: str | None = None
    """Which documents it trains and is evaluated on: a memory task (a level such as ``recall-d4``
    or a task YAML, :mod:`ltm_gym.data.tasks`); None: the study's own corpus. A fact asked d
    segments later reaches the write that stored it only when ``tbptt`` spans the d writes
    between, wherever the detach falls: ``tbptt >= 2 d`` (or the whole document)."""
    train_reader: bool = True
    """Train the LLM-LTM's read path (memory projection, cross-attention, LoRA) with the writer."""
    batch_size: int = 16
    """Documents per optimizer step; each is unrolled over all its segments."""
    tbptt: int = 2
    """Writes a gradient flows back through (the memory is detached every ``tbptt`` segments)."""
    reward: RewardConfig = field(default_factory=lambda: RewardConfig(mode="full"))
    """The env's reward that is maximized: ``full`` (CE of the next segment, default), ``answer``
    ``prefix`` (the study's prefix reward in expectation) or ``prefix_sampled`` (its k random
    prefixes; a noisier gradient of the same loss)."""
    answer_weight: float = 0.0
    """Extra weight of the answer tokens' mean CE (synthetic corpus), added to -reward: the answers
    are a few tokens of a segment, so under the ``full`` reward alone their gradient is faint, and
    the ``answer`` reward alone lets a co-trained reader forget the other tokens."""
    action_scale: float = 1.0
    """Memory = action_scale * tanh(mean), as the env writes actions."""
    writer: WriterConfig = field(default_factory=WriterConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, lr=1e-3, grad_clip=1.0, eval_every=100, ckpt_every=100, log_every=10))
    eval_documents: int = 64
    """Validation documents scored at every evaluation during training."""
    device: str = "auto"

    def validate(self) -> None:
        check(self.adapters in ("memory", "lora", "select", "none") or self.adapters.endswith(".safetensors"),
              "adapters", self.adapters, "memory, lora, select, none or a .safetensors file")
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.tbptt >= 1, "tbptt", self.tbptt, ">= 1")
        if self.task is not None:
            load_task(self.task)                    # a ConfigError naming the bad level or field
        check(self.reward.mode in TRAINABLE_REWARDS, "reward.mode", self.reward.mode,
              f"one of {TRAINABLE_REWARDS} (delta has the gradient of full; mimic has no LM reward)")
        check(self.action_scale > 0, "action_scale", self.action_scale, "> 0")
        check(self.answer_weight >= 0, "answer_weight", self.answer_weight, ">= 0")
        check(self.eval_documents >= 1, "eval_documents", self.eval_documents, ">= 1")


def build_writer(backend: MemoryLMBackend, cfg: BPTTConfig) -> MemoryWriter:
    """A writer for the env's token observations (the same network REINFORCE builds)."""
    return MemoryWriter(LLMMemoryEnv(backend=backend, action_scale=cfg.action_scale).observation_space, cfg.writer)


def write(writer: MemoryWriter, tokens: torch.Tensor, memory: torch.Tensor, scale: float) -> torch.Tensor:
    """The next memory: what a deterministic policy's action writes in the env (``full`` mode)."""
    mean, _, _ = writer({"tokens": tokens, "memory": memory})
    return scale * torch.tanh(mean)


def document_batch(docs: list, batch: int, k: int | None, g: torch.Generator) -> dict[str, torch.Tensor]:
    """``batch`` random documents cut to their common number of segments: ids, answer_mask
    (B, S, L), and with ``k`` the prefix lengths (B, S - 1, k) of every reward."""
    picks = [docs[int(i)] for i in torch.randint(len(docs), (batch,), generator=g)]
    n_seg = min(d.n_segments for d in picks)
    out = {"ids": torch.stack([d.ids[:n_seg] for d in picks]),
           "answer_mask": torch.stack([d.answer_mask[:n_seg] for d in picks])}
    if k is not None:
        L = out["ids"].shape[-1]
        out["lengths"] = torch.randint(1, L + 1, (batch, n_seg - 1, k), generator=g)
    return out


def unroll(writer: MemoryWriter, reward: Reward, batch: dict[str, torch.Tensor],
           cfg: BPTTConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Write memory through every document of ``batch`` and score each next segment with the
    env's reward; returns the loss -mean(reward) + answer_weight * answer CE (with gradients to
    the writer when grad is enabled) and the mean answer-token CE."""
    ids, mask = batch["ids"], batch["answer_mask"]
    B, S, _ = ids.shape
    grad = torch.is_grad_enabled()
    memory = torch.zeros(B, reward.backend.n_slots, reward.backend.slot_dim, device=ids.device)
    losses, answer_sum, answer_n = [], 0.0, 0
    for t in range(S - 1):
        if t % cfg.tbptt == 0:
            memory = memory.detach()
        memory = write(writer, ids[:, t], memory, cfg.action_scale)
        lengths = batch["lengths"][:, t] if "lengths" in batch else None
        terms = reward(memory, Segments(ids[:, t + 1], mask[:, t + 1], keys=[], lengths=lengths), grad=grad)
        m = mask[:, t + 1].to(terms["losses"].device)
        loss_t = -terms["reward"].mean()
        if cfg.answer_weight and m.any():
            loss_t = loss_t + cfg.answer_weight * terms["losses"][m].mean()
        losses.append(loss_t)
        answer_sum += float(terms["losses"].detach()[m].sum())
        answer_n += int(m.sum())
    loss = torch.stack(losses).mean()
    extra = {"answer_ce": answer_sum / answer_n} if answer_n else {}
    return loss, extra


class WriterAgent:
    """A trained writer behind the agents' ``predict`` (so it gets the agents' table row)."""

    def __init__(self, writer: MemoryWriter, device: torch.device | str = "cpu") -> None:
        self.writer = writer.to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, None]:
        single = obs["memory"].ndim == 2
        tokens = torch.as_tensor(obs["tokens"], device=self.device).long()
        memory = torch.as_tensor(obs["memory"], device=self.device).float()
        if single:
            tokens, memory = tokens[None], memory[None]
        action = write(self.writer, tokens, memory, 1.0).cpu().numpy()         # the action, before scaling
        return (action[0] if single else action), None


def load_backend(cfg: BPTTConfig) -> MemoryLMBackend:
    return MemoryLMBackend.from_study(cfg.study_dir, adapters=cfg.adapters, device=cfg.device, task=cfg.task)


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """No gradient is kept for ``module``'s parameters inside (only the writer trains)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class WriterSystem(torch.nn.Module):
    """What the Trainer optimizes and checkpoints: the writer, plus the LM when its reader trains."""

    def __init__(self, writer: MemoryWriter, reader: torch.nn.Module | None) -> None:
        super().__init__()
        self.writer = writer
        self.reader = reader


def train_writer(cfg: BPTTConfig, run_dir: str | Path, backend: MemoryLMBackend | None = None,
                 resume: bool = True) -> tuple[MemoryWriter, MemoryLMBackend]:
    """Train (or resume) the writer of ``run_dir``; saves ``writer.pt`` (and ``reader.safetensors``
    with ``train_reader``). The backend's LM keeps the trained reader."""
    cfg.validate()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if from_environment().is_main:             # under torchrun rank 0 writes the run directory
        save_config(cfg, run_dir / "config.yaml")
    backend = backend or load_backend(cfg)
    backend.model.eval()
    torch.manual_seed(cfg.train.seed)
    writer = build_writer(backend, cfg)
    train_docs = backend.docs("train")
    val_docs = backend.documents.get("validation") or train_docs
    k = cfg.reward.k if cfg.reward.mode == "prefix_sampled" else None
    val = document_batch(val_docs, min(cfg.eval_documents, len(val_docs)), k,
                         torch.Generator().manual_seed(cfg.train.seed + 99))

    def batch_fn(step: int) -> dict[str, torch.Tensor]:
        return document_batch(train_docs, cfg.batch_size, k, step_generator(cfg.train.seed, step))

    reward = Reward(backend, cfg.reward)

    def loss_fn(model: WriterSystem, batch: dict[str, torch.Tensor]):
        return unroll(model.writer, reward, batch, cfg)

    def eval_fn(model: WriterSystem) -> dict[str, float]:
        dev = next(model.parameters()).device
        loss, extra = unroll(model.writer, reward, {n: v.to(dev) for n, v in val.items()}, cfg)
        return {"loss": float(loss), **extra}

    system = WriterSystem(writer, backend.model if cfg.train_reader else None)
    params = [p for p in system.parameters() if p.requires_grad]
    train_cfg = TrainConfig(**{**vars(cfg.train), "device": cfg.device})
    trainer = Trainer(system, train_cfg, loss_fn, batch_fn, run_dir=run_dir, eval_fn=eval_fn, params=params)
    with contextlib.nullcontext() if cfg.train_reader else frozen(backend.model):
        trainer.fit(resume=resume)
    trainer.close()
    backend.model.eval()
    if trainer.dist.is_main:                     # every rank holds the same writer and reader
        save_writer(writer, cfg, run_dir / WRITER_FILE)
        if cfg.train_reader:
            backend.model.save_adapters(run_dir / READER_FILE)
    return writer, backend


def save_writer(writer: MemoryWriter, cfg: BPTTConfig, path: Path) -> None:
    """REINFORCE's checkpoint layout, so ``ltm_gym.agents.training.init_from`` can start from it."""
    payload = {"policy": {k: v.cpu() for k, v in writer.state_dict().items()},
               "writer": asdict(cfg.writer), "action_scale": cfg.action_scale}
    atomic_write(path, lambda p: torch.save(payload, p))


def load_writer(run_dir: str | Path, backend: MemoryLMBackend, cfg: BPTTConfig) -> MemoryWriter:
    """The writer of a finished run; its co-trained reader (if any) is loaded into ``backend``."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / WRITER_FILE)
    writer = build_writer(backend, cfg)
    writer.load_state_dict(state["policy"])
    if cfg.train_reader:
        backend.model.load_adapters(run_dir / READER_FILE)
    return writer


def evaluate_writer(writer: MemoryWriter, backend: MemoryLMBackend, cfg: BPTTConfig, split: str = "test",
                    with_lm_rows: bool = True) -> dict[str, SegmentMetrics]:
    """The study's table rows: the LM rows of the study (when its adapters exist; on a task, its
    ``lora_baseline`` and ``oracle``) and the writer's, the writer stepping the env as an agent does."""
    from ltm_gym.agents.evaluation import agent_metrics, eval_env
    from ltm_gym.study import StudyDir
    from ltm_gym.study.scoring import eval_documents, study_dir_rows, task_lm_rows

    study = StudyDir(cfg.study_dir)
    if cfg.task is None:
        rows: dict[str, Any] = study_dir_rows(study, split) if with_lm_rows else {}
        n_documents = len(eval_documents(study, split))
    else:
        if split != "test" and with_lm_rows:
            raise UserError(f"split={split!r}: a task's LM rows are measured on its test documents")
        rows = task_lm_rows(study, load_task(cfg.task), device=cfg.device) if with_lm_rows else {}
        n_documents = len(backend.docs(split))
    env = eval_env({"action_scale": cfg.action_scale, "task": cfg.task}, split, backend=backend)
    rows["bptt_writer"] = agent_metrics(WriterAgent(writer, backend.device), env, n_documents)
    return rows
