"""The study's figures: LM stages' validation loss, agents' episode returns, per-position loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .layout import StudyDir


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure():
    plt = _pyplot()
    return plt, *plt.subplots(figsize=(6, 4))


def _save(plt, fig, ax, labels: tuple[str, str, str], path: Path, legend_size: int | None = None) -> Path:
    """Label the axes (x, y, title), add the legend, write ``path``."""
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(labels[2])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def smooth(values: list[float], window: int = 20) -> np.ndarray:
    """Trailing moving average (the first points average what there is)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_study(study: StudyDir, tables: dict, episode_returns: dict[str, list[float]]) -> list[Path]:
    """Write the three figures to ``study.plots_dir``; returns their paths."""
    out = []
    plt, fig, ax = _figure()
    for stage_dir in sorted((study.root / "stages").glob("*")):
        log = stage_dir / "metrics.jsonl"
        if log.is_file():
            rows = [json.loads(r) for r in log.read_text().splitlines() if '"eval"' in r]
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="o", label=stage_dir.name)
    if not ax.get_lines():
        ax.text(0.5, 0.5, "no LM-stage logs in this study:\nits LM stages came with the shipped default\n"
                "(run-study --from-scratch trains them)", ha="center", va="center", transform=ax.transAxes)
    out.append(_save(plt, fig, ax, ("step", "validation loss (nats / token)", "LM stages: validation loss"),
                     study.plots_dir / "validation_loss.png"))

    if episode_returns:  # one panel per agent: their rewards differ in kind and scale (mimic: distance)
        plt = _pyplot()
        n = len(episode_returns)
        fig, axes = plt.subplots(n, 1, figsize=(6, 1.8 * n + 0.6), sharex=False, squeeze=False)
        for i, (ax, (name, returns)) in enumerate(zip(axes[:, 0], episode_returns.items())):
            ax.plot(returns, alpha=0.25, color=f"C{i}")
            ax.plot(smooth(returns), color=f"C{i}", label=f"{name} (moving average of 20)")
            ax.set_ylabel("return")
            ax.legend(fontsize=7, loc="lower right")
        axes[-1, 0].set_xlabel("episode")
        fig.suptitle("agents: episode return during training")
        path = study.plots_dir / "agent_reward.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        out.append(path)

    plt, fig, ax = _figure()
    for name, row in tables.items():
        curve = row.get("position_curve")
        if curve:
            ax.plot(range(1, len(curve) + 1), curve, label=name)
    out.append(_save(plt, fig, ax, ("position in segment", "loss (nats)", "per-position loss with and without memory"),
                     study.plots_dir / "position_loss.png", legend_size=7))
    return out
