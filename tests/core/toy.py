"""A toy regression task for the core's tests (also run by the torchrun worker)."""

from __future__ import annotations

import torch
from torch import nn

from ltm_gym.core import TrainConfig, Trainer, step_generator


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 1))


def batch_fn(step: int) -> dict[str, torch.Tensor]:
    g = step_generator(7, step)
    x = torch.randn(8, 4, generator=g)
    return {"x": x, "y": x.sum(dim=1, keepdim=True).sin()}


def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])


def make_trainer(steps: int, run_dir=None, dropout: bool = True, prefetch: bool = False, **kw) -> Trainer:
    """A trainer of the toy task, in fp32 unless ``precision`` is given: the exact comparisons
    (resume, accumulation, ranks) must not depend on whether the CPU runs bf16 natively."""
    kw.setdefault("precision", "fp32")
    model = make_model()
    if not dropout:
        model[2].p = 0.0
    cfg = TrainConfig(steps=steps, lr=1e-2, schedule="cosine", warmup_steps=2, grad_clip=1.0,
                      device="cpu", progress=False, log_every=1, **kw)
    return Trainer(model, cfg, loss_fn, batch_fn, run_dir=run_dir, prefetch=prefetch)
