"""The paper's evaluation: squared error per in-context position divided by d, against baselines.

Baselines each predict 0 for the first point: least squares (minimum norm), 3-nearest-neighbours
(uniform weights) and averaging (w = mean x_i y_i). The looped model is read after many more loop
iterations than it was trained with; the error at the last position versus loop iteration shows
whether it converged to a fixed point. Bands are 5-95 % bootstrap intervals of the mean.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from .models import RegressionTransformer

BASELINES = ("least_squares", "knn3", "averaging")


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares fitted on the pairs before each position: (B, n)."""
    xs, ys = xs.double(), ys.double()
    preds = torch.zeros_like(ys)
    for i in range(1, xs.shape[1]):
        w = torch.linalg.pinv(xs[:, :i]) @ ys[:, :i, None]                     # (B, d, 1)
        preds[:, i] = (xs[:, i : i + 1] @ w)[:, 0, 0]
    return preds.float()


def knn(xs: torch.Tensor, ys: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Mean label of the k nearest earlier inputs (fewer when fewer exist): (B, n)."""
    preds = torch.zeros_like(ys)
    dist = torch.cdist(xs, xs)                                                  # (B, n, n)
    for i in range(1, xs.shape[1]):
        kk = min(k, i)
        idx = dist[:, i, :i].topk(kk, largest=False).indices                   # (B, kk)
        preds[:, i] = ys[:, :i].gather(1, idx).mean(1)
    return preds


def averaging(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """w_hat = mean over earlier pairs of x_j y_j; prediction x_i . w_hat: (B, n)."""
    s = torch.cumsum(xs * ys[..., None], dim=1)                                 # (B, n, d)
    counts = torch.arange(1, xs.shape[1] + 1, device=xs.device, dtype=xs.dtype)[None, :, None]
    w = torch.zeros_like(s)
    w[:, 1:] = (s / counts)[:, :-1]
    return (w * xs).sum(-1)


BASELINE_FNS = {"least_squares": least_squares, "knn3": knn, "averaging": averaging}


def normalized_error(preds: torch.Tensor, ys: torch.Tensor, d: int) -> torch.Tensor:
    """Squared error divided by the prompts' dimension d (1.0 = predicting zero)."""
    return (preds - ys) ** 2 / d


def bootstrap_band(errors: torch.Tensor, n_boot: int = 1000, seed: int = 0,
                   q: tuple[float, float] = (0.05, 0.95)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over prompts (dim 0) and its bootstrap quantile band, per remaining index."""
    g = torch.Generator().manual_seed(seed)
    n = errors.shape[0]
    idx = torch.randint(0, n, (n_boot, n), generator=g)
    means = errors[idx].mean(1)                                                 # (n_boot, ...)
    lo, hi = torch.quantile(means, torch.tensor(q, dtype=means.dtype), dim=0)
    return errors.mean(0), lo, hi


@torch.no_grad()
def model_errors(model: RegressionTransformer, xs: torch.Tensor, ys: torch.Tensor, n_loops: int,
                 batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors per position read at the last iteration (N, n) and, for looped models, the error at
    the last position after every iteration (N, n_loops)."""
    model.eval()
    d = int((xs.abs().sum((0, 1)) > 0).sum())
    final, curve = [], []
    device = next(model.parameters()).device
    for s in range(0, xs.shape[0], batch):
        x, y = xs[s : s + batch].to(device), ys[s : s + batch].to(device)
        preds = model(x, y, n_loops=n_loops, n_grad=None).float()              # (K, b, n)
        errs = normalized_error(preds, y[None], d).cpu()
        final.append(errs[-1])
        curve.append(errs[:, :, -1].T)
    return torch.cat(final), torch.cat(curve)


def write_table(path: Path, rows: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                index_name: str) -> None:
    """CSV with columns index, then mean/lo/hi per row name."""
    names = list(rows)
    length = len(next(iter(rows.values()))[0])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([index_name] + [f"{n}_{s}" for n in names for s in ("mean", "lo", "hi")])
        for i in range(length):
            w.writerow([i + 1] + [f"{float(rows[n][j][i]):.6g}" for n in names for j in range(3)])


def plot_curves(path: Path, rows: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                xlabel: str, title: str, marker: int | None = None) -> None:
    """Mean curves with bootstrap bands; an optional vertical line (e.g. at b or at k = d)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (mean, lo, hi) in rows.items():
        x = range(1, len(mean) + 1)
        ax.plot(x, mean.numpy(), label=name)
        ax.fill_between(x, lo.numpy(), hi.numpy(), alpha=0.2)
    if marker is not None:
        ax.axvline(marker, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("squared error / d")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
