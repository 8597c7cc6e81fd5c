"""Looped transformer vs GPT-2 (and the report's variants) on one task, in one figure and one table.

Each run is an ordinary looped-study run directory (``train`` resumes it, so a finished run is
reused); the comparison reads every model on the same evaluation prompts, the looped ones at 10 b
loop iterations (far past the b they were trained with), against least squares, 3-NN and
averaging, with 5-95 % bootstrap bands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ltm_gym.core import ConfigError, choose_device, load_config, to_dict

from . import evaluate as ev
from .study import LoopedConfig, eval_prompts, train

VARIANTS: dict[str, list[str]] = {
    "looped": [],
    "nlast": ["model.kind=nlast", "model.n_last=2"],
    "ab": ["model.kind=ab"],
    "ssm": ["model.mixer=ssm"],
    "ema": ["model.injection=ema", "model.ema_alpha=0.5"],
    "huber": ["loss=huber"],
    "mae": ["loss=mae"],
    "x_noise": ["task.x_noise_std=0.1"],
}
"""The report's ideas as overrides of the looped preset: N = 2 last tokens fed back, two blocks
A -> B, an SSM mixer instead of attention, EMA injection (a = 0.5), Huber and MAE losses, noisy
inputs (std 0.1)."""
LOOP_FACTOR = 10
"""Looped models are read at ``LOOP_FACTOR * b`` iterations."""


@dataclass
class RunResult:
    name: str
    cfg: LoopedConfig
    final: torch.Tensor
    """Error / d per prompt and in-context position (N, n), read at the last iteration."""
    curve: torch.Tensor | None
    """Looped: error / d at the last position after every iteration (N, LOOP_FACTOR * b)."""

    def at(self, k: int) -> float:
        """Mean error / d of the prediction made after k in-context examples."""
        return float(self.final[:, k].mean())


def run_config(preset: str | Path, overrides: list[str], seed: int) -> LoopedConfig:
    return load_config(LoopedConfig, preset, [*overrides, f"train.seed={seed}"])


def train_or_reuse(cfg: LoopedConfig, run_dir: Path, progress: bool = True) -> torch.nn.Module:
    """Train ``cfg`` in ``run_dir``, resuming it (a finished run is only loaded); a run directory
    that holds another config is refused."""
    cfg.train.progress = progress
    stored = run_dir / "config.yaml"
    if stored.is_file():
        old = load_config(LoopedConfig, stored)
        old.train.progress = progress                                   # display only
        if to_dict(old) != to_dict(cfg):
            raise ConfigError(f"{run_dir} holds a run of another config; remove it or pick another --out")
    return train(cfg, run_dir, resume=True)


def evaluate_run(name: str, cfg: LoopedConfig, model: torch.nn.Module, prompts: dict) -> RunResult:
    model.to(choose_device(cfg.train.device))
    n_loops = LOOP_FACTOR * cfg.b if cfg.model.looped else 1
    final, curve = ev.model_errors(model, prompts["xs"], prompts["ys"], n_loops)
    return RunResult(name, cfg, final, curve if cfg.model.looped else None)


def baselines(cfg: LoopedConfig, prompts: dict) -> dict[str, torch.Tensor]:
    d = cfg.curriculum.dims.end
    return {n: ev.normalized_error(fn(prompts["xs"], prompts["ys"]), prompts["ys"], d)
            for n, fn in ev.BASELINE_FNS.items()}


def common_prompts(results_cfgs: list[LoopedConfig]) -> dict[str, torch.Tensor]:
    """The evaluation prompts every compared config shares (same d, points and eval seed)."""
    first = results_cfgs[0]
    for cfg in results_cfgs[1:]:
        same = (cfg.curriculum.dims.end, cfg.eval.n_points, cfg.task.n_dims, cfg.eval.seed) == \
            (first.curriculum.dims.end, first.eval.n_points, first.task.n_dims, first.eval.seed)
        if not same:
            raise ConfigError(f"run {cfg.name!r} is evaluated on other prompts than {first.name!r} "
                              "(d, eval.n_points, task.n_dims and eval.seed must agree)")
    return eval_prompts(first, first.eval.n_prompts, first.eval.n_points)


def table(results: list[RunResult], base: dict[str, torch.Tensor], d: int) -> str:
    """Markdown: error / d after k = d, 2d and the last example, per run and baseline."""
    n = next(iter(base.values())).shape[1]
    ks = sorted({k for k in (d, 2 * d, n - 1) if k < n})
    head = "| run | " + " | ".join(f"k = {k}" for k in ks) + " | flat to 10 b |\n|---|" + "---|" * (len(ks) + 1)
    rows = []
    for r in results:
        flat = "-"
        if r.curve is not None:
            tail, at_b = float(r.curve[:, -1].mean()), float(r.curve[:, r.cfg.b - 1].mean())
            flat = f"{at_b:.3f} -> {tail:.3f}" if torch.isfinite(r.curve).all() else "diverges"
        rows.append(f"| {r.name} | " + " | ".join(f"{r.at(k):.3f}" for k in ks) + f" | {flat} |")
    for name, err in base.items():
        rows.append(f"| {name} | " + " | ".join(f"{float(err[:, k].mean()):.3f}" for k in ks) + " | - |")
    return "\n".join([head, *rows])


def figure(path: Path, results: list[RunResult], base: dict[str, torch.Tensor], d: int, n_boot: int) -> None:
    """Left: error / d vs in-context examples (models and baselines, bootstrap bands); right: the
    looped runs' error at the last example vs loop iteration, out to 10 b."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    curves = {r.name: r.final for r in results} | base
    for i, (name, err) in enumerate(curves.items()):
        mean, lo, hi = ev.bootstrap_band(err, n_boot)
        x = range(0, len(mean))
        style = "-" if name not in base else "--"
        left.plot(x, mean.numpy(), style, color=f"C{i}", label=name)
        left.fill_between(x, lo.numpy(), hi.numpy(), color=f"C{i}", alpha=0.2)
    left.axvline(d, color="grey", linestyle=":", linewidth=1)
    left.set(xlabel="in-context examples", ylabel="squared error / d", ylim=(0, 1.3),
             title=f"linear regression, d = {d}")
    left.legend(fontsize=8)
    for i, r in enumerate(results):
        if r.curve is None:
            continue
        mean, lo, hi = ev.bootstrap_band(r.curve, n_boot)
        x = range(1, len(mean) + 1)
        right.plot(x, mean.numpy(), color=f"C{i}", label=r.name)
        right.fill_between(x, lo.numpy(), hi.numpy(), color=f"C{i}", alpha=0.2)
        right.axvline(r.cfg.b, color="grey", linestyle=":", linewidth=1)
    right.set(xlabel="loop iteration", ylabel="squared error / d at the last example", yscale="log",
              title="looped models past their b (dotted)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_json(path: Path, results: list[RunResult], base: dict[str, torch.Tensor]) -> None:
    data = {r.name: {"error_vs_examples": [float(v) for v in r.final.mean(0)],
                     "loop_curve": [float(v) for v in r.curve.mean(0)] if r.curve is not None else None}
            for r in results}
    data.update({n: {"error_vs_examples": [float(v) for v in e.mean(0)]} for n, e in base.items()})
    path.write_text(json.dumps(data, indent=1))
