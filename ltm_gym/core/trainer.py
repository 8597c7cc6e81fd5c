"""A small, task-agnostic training loop shared by the LM, the memory writers and the looped studies.

The task supplies two functions:

* ``batch_fn(step) -> batch``: the *global* batch of optimizer step ``step`` (deterministic in
  ``step``, so a resumed run sees exactly the batches it would have seen);
* ``loss_fn(model, batch) -> loss`` or ``(loss, {name: float})``: the mean loss of a (micro-)batch.

The Trainer moves batches to the device, keeps this rank's slice under ``torchrun``, splits it into
``grad_accum`` micro-batches, runs AdamW with a warmup + constant/cosine/linear schedule and
gradient clipping, logs to TensorBoard and ``metrics.jsonl``, shows a progress bar, evaluates every
``eval_every`` steps and writes atomic checkpoints from which :meth:`Trainer.fit` resumes exactly.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol

import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .config import check
from .device import autocast, bf16_support, choose_device, resolve_precision, to_device
from .distributed import (DistInfo, agree_max, all_reduce_grads, all_reduce_mean, broadcast_parameters,
                          init_distributed, shard, split_batch)
from .interrupt import Interrupted, stop_requested, stop_signals
from .progress import progress_bar
from .seeding import get_rng_state, seed_everything, set_rng_state
from .errors import UserError

LossOut = torch.Tensor | tuple[torch.Tensor, dict[str, float]]


@dataclass
class TrainConfig:
    """Optimization and bookkeeping settings of one training run."""

    steps: int = 1000
    """Number of optimizer steps."""
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    """Final learning rate of cosine/linear decay as a fraction of ``lr``."""
    grad_clip: float | None = None
    """Max global gradient norm; null disables clipping."""
    grad_accum: int = 1
    """Micro-batches each (per-rank) batch is split into; the update is the same as without."""
    log_every: int = 10
    eval_every: int = 0
    """Steps between evaluations; 0 evaluates only at the end (when an eval_fn is given)."""
    ckpt_every: int = 0
    """Steps between checkpoints; 0 writes one at the end only."""
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 elsewhere), fp32 or bf16."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    progress: bool = True

    def validate(self) -> None:
        check(self.steps >= 0, "steps", self.steps, ">= 0")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check(all(0 <= b < 1 for b in self.betas), "betas", self.betas, "two numbers in [0, 1)")
        check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, ">= 0")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", self.min_lr_ratio, "in [0, 1]")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", self.grad_clip, "> 0 or null")
        check(self.grad_accum >= 1, "grad_accum", self.grad_accum, ">= 1")
        check(self.log_every >= 1, "log_every", self.log_every, ">= 1")
        check(self.eval_every >= 0, "eval_every", self.eval_every, ">= 0")
        check(self.ckpt_every >= 0, "ckpt_every", self.ckpt_every, ">= 0")
        check(self.device.split(":")[0] in ("auto", "cpu", "cuda", "mps"), "device", self.device,
              "auto, cpu, cuda[:i], mps")
        check(self.precision in ("auto", "fp32", "bf16"), "precision", self.precision, "auto, fp32, bf16")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at ``step``: linear warmup, then the schedule."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "cosine":
        shape = 0.5 * (1 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape


class Callback(Protocol):
    """What a Trainer calls back: ``on_step`` after every optimizer step; ``on_end``, when defined,
    once the run has finished and saved."""

    def on_step(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...


class _Ready:
    """A batch built when asked for (no prefetch): keeps ``batch_fn`` in step with the global RNG."""

    def __init__(self, fn: Callable[[int], Any], step: int) -> None:
        self.fn, self.step = fn, step

    def result(self) -> Any:
        return self.fn(self.step)


class Trainer:
    """See the module docstring. ``state_objects`` holds extra things with ``state_dict`` /
    ``load_state_dict`` (e.g. a running reward baseline) that belong in checkpoints."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        loss_fn: Callable[[nn.Module, Any], LossOut],
        batch_fn: Callable[[int], Any],
        run_dir: str | Path | None = None,
        eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        callbacks: Iterable[Callback] = (),
        params: Iterable[nn.Parameter] | None = None,
        state_objects: dict[str, Any] | None = None,
        checkpoint_name: str = "checkpoint.pt",
        prefetch: bool = False,
    ) -> None:
        self.cfg = cfg
        self.device = choose_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.dist: DistInfo = init_distributed(self.device)
        seed_everything(cfg.seed)
        self.model = model.to(self.device)
        trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
        if not trainable:
            raise UserError("the model has no trainable parameters")
        self.params = trainable
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        broadcast_parameters(list(self.model.parameters()) + list(self.model.buffers()), self.dist)
        self.wrapped: nn.Module = self.model
        """What the loss sees: the model, compiled with ``compile``. Under torchrun the gradients are
        averaged after the backward pass (:func:`~ltm_gym.core.distributed.all_reduce_grads`), not
        by a DDP wrapper, whose hooks a loss that calls a sub-module (or a method other than
        ``forward``) would bypass silently."""
        if cfg.compile:
            self.wrapped = torch.compile(self.wrapped)  # type: ignore[assignment]
        self.loss_fn, self.batch_fn, self.eval_fn = loss_fn, batch_fn, eval_fn
        self.callbacks = list(callbacks)
        self.state_objects = dict(state_objects or {})
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_name = checkpoint_name
        self.prefetch = prefetch
        """Build the next step's batch in a thread while this one trains; only for a ``batch_fn``
        that is a pure function of the step (it then runs out of order with the global RNG)."""
        self.step = 0
        self.last_metrics: dict[str, float] = {}
        self.eval_history: list[dict[str, float]] = []
        self._writer = None
        self.stop_requested = False

    # ----------------------------------------------------------------- bookkeeping
    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / self.checkpoint_name if self.run_dir is not None else None

    @property
    def writer(self):
        if self._writer is None and self.run_dir is not None and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tb"))
        return self._writer

    def log(self, metrics: dict[str, float], prefix: str) -> None:
        """Write scalars to TensorBoard and ``metrics.jsonl`` (main rank only)."""
        if self.run_dir is None or not self.dist.is_main:
            return
        for k, v in metrics.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, self.step)
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": self.step, "split": prefix, **metrics}) + "\n")

    def model_state(self) -> dict[str, torch.Tensor]:
        """What of the model a checkpoint holds: every entry but the frozen parameters (a real LM's
        frozen base is rebuilt from its source; a checkpoint of SmolLM2 with its adapters would
        otherwise carry 540 MB of it at every save)."""
        frozen = {name for name, p in self.model.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": get_rng_state(),
            "eval_history": self.eval_history,
            "objects": {k: v.state_dict() for k, v in self.state_objects.items()},
        }

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write a checkpoint atomically (main rank only); returns its path."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None or not self.dist.is_main:
            return None
        return save_checkpoint(self.state_dict(), path)

    def load(self, path: str | Path | None = None) -> None:
        """Restore everything a checkpoint holds; training continues at its step, bit for bit."""
        path = Path(path) if path is not None else self.checkpoint_path
        state = load_checkpoint(path, map_location=self.device)
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        frozen = {name for name, p in self.model.named_parameters() if not p.requires_grad}
        if unexpected or set(missing) - frozen:
            raise UserError(f"checkpoint {path} does not fit this model: missing {sorted(set(missing) - frozen)[:3]}, "
                            f"unexpected {sorted(unexpected)[:3]}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.eval_history = list(state.get("eval_history", []))
        for k, v in state.get("objects", {}).items():
            self.state_objects[k].load_state_dict(v)
        self._truncate_metrics_log()

    def try_resume(self) -> bool:
        """Load the run directory's checkpoint if there is one."""
        path = self.checkpoint_path
        if path is not None and path.is_file():
            self.load(path)
            return True
        return False

    def _truncate_metrics_log(self) -> None:
        """Drop log rows written after the checkpoint (they will be written again)."""
        if self.run_dir is None or not self.dist.is_main:
            return
        log = self.run_dir / "metrics.jsonl"
        if log.is_file():
            rows = [r for r in log.read_text().splitlines() if r and json.loads(r)["step"] <= self.step]
            log.write_text("".join(r + "\n" for r in rows))

    # ----------------------------------------------------------------- training
    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimizer step on a global batch; returns averaged metrics."""
        self.wrapped.train()
        local = shard(batch, self.dist)
        micro = split_batch(local, self.cfg.grad_accum)
        totals: dict[str, float] = {}
        for i, mb in enumerate(micro):
            mb = to_device(mb, self.device)
            with autocast(self.device, self.precision):
                out = self.loss_fn(self.wrapped, mb)
            loss, extra = (out if isinstance(out, tuple) else (out, {}))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.step}")
            (loss / len(micro)).backward()
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach()) / len(micro)
            for k, v in extra.items():
                totals[k] = totals.get(k, 0.0) + float(v) / len(micro)
        all_reduce_grads(self.params, self.dist)
        if self.cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([p.grad.detach().norm() for p in self.params if p.grad is not None]))
        totals["grad_norm"] = float(norm)
        totals["lr"] = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return totals

    def evaluate(self) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.precision):
            metrics = {k: float(v) for k, v in self.eval_fn(self.model).items()}
        self.eval_history.append({"step": self.step, **metrics})
        self.log(metrics, "eval")
        for cb in self.callbacks:
            if hasattr(cb, "on_eval"):
                cb.on_eval(self, metrics)
        return metrics

    def _train_loop(self, cfg: TrainConfig, bar: Any, fetch: Callable[[int], Any], upcoming: Any) -> int | None:
        """Steps until ``cfg.steps``, a callback's stop, or a stop signal (returned: the run then
        ends at this step, which the caller checkpoints)."""
        while self.step < cfg.steps and not self.stop_requested:
            signum = self._agreed_stop()
            if signum is not None:
                return signum
            batch = upcoming.result()
            upcoming = fetch(self.step + 1) if self.step + 1 < cfg.steps else None
            metrics = self.train_step(batch)
            metrics = {k: all_reduce_mean(v, self.dist, self.device) for k, v in metrics.items()}
            self.last_metrics = metrics
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                self.log(metrics, "train")
                bar.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=False)
            for cb in self.callbacks:
                if hasattr(cb, "on_step"):
                    cb.on_step(self, metrics)
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                self.evaluate()
            if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                path = self.save()
                if path is not None:
                    bar.write(f"checkpoint: {path} (step {self.step})")
        return None

    def _agreed_stop(self) -> int | None:
        """The stop signal this process received; under torch.distributed every rank stops at the
        same step when any of them received one."""
        return agree_max(stop_requested() or 0, self.dist) or None

    def fit(self, resume: bool = True) -> dict[str, float]:
        """Train up to ``cfg.steps`` (continuing from the checkpoint when ``resume``)."""
        if resume:
            self.try_resume()
        cfg = self.cfg
        first = self.step
        bar = progress_bar(total=cfg.steps, initial=self.step, disable=not (cfg.progress and self.dist.is_main),
                   dynamic_ncols=True, desc=self.run_dir.name if self.run_dir else "train")
        if cfg.progress and self.dist.is_main and self.step < cfg.steps:
            bar.write(f"{bar.desc}: {self.device.type}, {self.precision} ({bf16_support(self.device)[1]})")
        pool = ThreadPoolExecutor(1, thread_name_prefix="batch") if self.prefetch else None
        fetch = (lambda step: pool.submit(self.batch_fn, step)) if pool else (lambda step: _Ready(self.batch_fn, step))
        upcoming = fetch(self.step) if self.step < cfg.steps else None
        signum = None
        try:
            with stop_signals():
                signum = self._train_loop(cfg, bar, fetch, upcoming)
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if signum is not None:
            raise Interrupted(signum, self.save(), f"step {self.step}")
        if self.step == first and first >= cfg.steps and self.checkpoint_path and self.checkpoint_path.is_file():
            return self.last_metrics                  # a finished run, only loaded: nothing to write
        if self.eval_fn is not None and (not self.eval_history or self.eval_history[-1]["step"] != self.step):
            self.evaluate()
        self.save()
        for cb in self.callbacks:
            if hasattr(cb, "on_end"):
                cb.on_end(self)
        if self._writer is not None:
            self._writer.flush()
        return self.last_metrics

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

