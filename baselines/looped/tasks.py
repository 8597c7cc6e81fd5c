"""Linear-regression prompts and the three curricula (dimensions, points, loops), all seeded.

x_i ~ N(0, I_d), w ~ N(0, I_d), y_i = w . x_i (no scaling, so Var y = d); the noisy variant adds
N(0, noise_std^2). Inputs live in ``n_dims`` dimensions; coordinates from ``d_cur`` on are zero in
both x and w while the dimension curriculum is below ``n_dims``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ltm_gym.core import check
from ltm_gym.core.errors import UserError


@dataclass
class Stage:
    """A value growing from ``start`` by ``inc`` every ``interval`` steps, capped at ``end``."""

    start: int
    end: int
    inc: int = 0
    interval: int = 1

    def at(self, step: int) -> int:
        return min(self.end, self.start + self.inc * (step // self.interval))

    def validate(self) -> None:
        check(self.start >= 1, "start", self.start, ">= 1")
        check(self.end >= self.start, "end", self.end, f">= start ({self.start})")
        check(self.inc >= 0, "inc", self.inc, ">= 0")
        check(self.interval >= 1, "interval", self.interval, ">= 1")


@dataclass
class Curriculum:
    """The paper's curriculum: dims 5 -> 20 (+1 / 5000), points 11 -> 41 (+2 / 5000), loops T -> b (+2 / 500)."""

    dims: Stage = field(default_factory=lambda: Stage(5, 20, 1, 5000))
    points: Stage = field(default_factory=lambda: Stage(11, 41, 2, 5000))
    loops: Stage = field(default_factory=lambda: Stage(15, 20, 2, 500))


@dataclass
class TaskConfig:
    n_dims: int = 20
    noise_std: float = 0.0
    """Label noise of the noisy variant (the paper's: 0.1)."""
    x_noise_std: float = 0.0
    """Gaussian augmentation of the *model's* x inputs during training (labels stay clean)."""

    def validate(self) -> None:
        check(self.n_dims >= 1, "n_dims", self.n_dims, ">= 1")
        check(self.noise_std >= 0, "noise_std", self.noise_std, ">= 0")
        check(self.x_noise_std >= 0, "x_noise_std", self.x_noise_std, ">= 0")


def sample_regression(batch: int, n_points: int, n_dims: int, d_cur: int,
                      generator: torch.Generator, noise_std: float = 0.0) -> dict[str, torch.Tensor]:
    """A batch of prompts: ``xs`` (B, n, n_dims), ``ys`` (B, n), ``w`` (B, n_dims)."""
    if not 1 <= d_cur <= n_dims:
        raise UserError(f"d_cur={d_cur} must be in [1, n_dims={n_dims}]")
    xs = torch.randn(batch, n_points, n_dims, generator=generator)
    w = torch.randn(batch, n_dims, generator=generator)
    xs[..., d_cur:] = 0
    w[..., d_cur:] = 0
    ys = torch.einsum("bnd,bd->bn", xs, w)
    if noise_std:
        ys = ys + noise_std * torch.randn(ys.shape, generator=generator)
    return {"xs": xs, "ys": ys, "w": w}
