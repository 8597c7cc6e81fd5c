"""Train and evaluate one looped-transformer study run on the shared core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ltm_gym.core import (TrainConfig, Trainer, check, choose_device, save_config, seed_everything,
                          step_generator)
from ltm_gym.core.distributed import from_environment
from ltm_gym.core.run import write_json

from . import evaluate as ev
from .models import LOSSES, ModelConfig, RegressionTransformer, regression_loss
from .tasks import Curriculum, TaskConfig, sample_regression


@dataclass
class EvalConfig:
    n_prompts: int = 1280
    n_points: int = 41
    n_loops: int = 500
    """Loop iterations at evaluation (many more than trained)."""
    n_boot: int = 1000
    seed: int = 12345


@dataclass
class LoopedConfig:
    """Everything one run needs; presets in ``ltm_gym/presets/looped-*.yaml``."""

    name: str = "looped"
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    curriculum: Curriculum = field(default_factory=Curriculum)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500_000, lr=1e-4, log_every=100,
                                                                   eval_every=5000, ckpt_every=1000))
    batch_size: int = 64
    n_loop_window: int = 15
    """T: loop iterations that receive gradient (the rest of b run without)."""
    loss: Literal["mse", "mae", "huber"] = "mse"
    huber_delta: float = 1.0
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        check(self.n_loop_window >= 1, "n_loop_window", self.n_loop_window, ">= 1")
        check(self.loss in LOSSES, "loss", self.loss, ", ".join(LOSSES))
        check(self.curriculum.dims.end <= self.task.n_dims, "curriculum.dims.end", self.curriculum.dims.end,
              f"<= task.n_dims ({self.task.n_dims})")
        check(self.model.n_dims == self.task.n_dims, "model.n_dims", self.model.n_dims,
              f"equal to task.n_dims ({self.task.n_dims})")
        check(self.curriculum.points.end <= self.model.n_positions, "curriculum.points.end",
              self.curriculum.points.end, f"<= model.n_positions ({self.model.n_positions})")
        check(self.eval.n_points <= self.model.n_positions, "eval.n_points", self.eval.n_points,
              f"<= model.n_positions ({self.model.n_positions})")

    @property
    def b(self) -> int:
        return self.curriculum.loops.end


def make_batch_fn(cfg: LoopedConfig):
    """Step -> batch, deterministic in (seed, step): the curricula are functions of the step."""

    def batch_fn(step: int) -> dict:
        g = step_generator(cfg.train.seed, step)
        c = cfg.curriculum
        batch = sample_regression(cfg.batch_size, c.points.at(step), cfg.task.n_dims, c.dims.at(step), g,
                                  noise_std=cfg.task.noise_std)
        xs_in = batch["xs"]
        if cfg.task.x_noise_std:
            xs_in = xs_in + cfg.task.x_noise_std * torch.randn(xs_in.shape, generator=g) * (xs_in != 0)
        return {"xs": xs_in, "ys": batch["ys"], "n_loops": c.loops.at(step)}

    return batch_fn


def make_loss_fn(cfg: LoopedConfig):
    def loss_fn(model: torch.nn.Module, batch: dict):
        preds = model(batch["xs"], batch["ys"], n_loops=batch["n_loops"], n_grad=cfg.n_loop_window)
        loss = regression_loss(preds.float(), batch["ys"], cfg.loss, cfg.huber_delta)
        with torch.no_grad():
            mse_last = ((preds[-1].float() - batch["ys"]) ** 2).mean() / (batch["xs"].abs().sum((0, 1)) > 0).sum()
        return loss, {"normalized_mse_last_loop": float(mse_last), "n_loops": batch["n_loops"]}

    return loss_fn


def eval_prompts(cfg: LoopedConfig, n: int, n_points: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(cfg.eval.seed)
    d = cfg.curriculum.dims.end
    return sample_regression(n, n_points, cfg.task.n_dims, d, g, noise_std=cfg.task.noise_std)


def make_eval_fn(cfg: LoopedConfig):
    """Quick evaluation during training: mean error at the final curriculum, read after b loops."""
    prompts = eval_prompts(cfg, 256, cfg.curriculum.points.end)
    d = cfg.curriculum.dims.end

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        dev = next(model.parameters()).device
        preds = model(prompts["xs"].to(dev), prompts["ys"].to(dev), n_loops=cfg.b, n_grad=1)[-1].float().cpu()
        err = ev.normalized_error(preds, prompts["ys"], d)
        return {"error_mean": float(err.mean()), "error_at_2d": float(err[:, min(2 * d, err.shape[1] - 1)].mean()),
                "error_last": float(err[:, -1].mean())}

    return eval_fn


def train(cfg: LoopedConfig, run_dir: Path, resume: bool = True) -> RegressionTransformer:
    """Train (resuming from ``run_dir/checkpoint.pt`` when present) and return the model."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if from_environment().is_main:             # under torchrun rank 0 writes the run directory
        save_config(cfg, run_dir / "config.yaml")
    seed_everything(cfg.train.seed)
    model = RegressionTransformer(cfg.model)
    trainer = Trainer(model, cfg.train, make_loss_fn(cfg), make_batch_fn(cfg), run_dir=run_dir,
                      eval_fn=make_eval_fn(cfg))
    trainer.fit(resume=resume)
    trainer.close()
    return model


def evaluate(cfg: LoopedConfig, model: RegressionTransformer, out_dir: Path, n_loops: int | None = None,
             n_prompts: int | None = None) -> dict[str, list[float]]:
    """The paper's figures: error per in-context example (CSV + PNG) and error vs loop iteration."""
    e = cfg.eval
    n_loops = n_loops or (e.n_loops if cfg.model.looped else 1)
    prompts = eval_prompts(cfg, n_prompts or e.n_prompts, e.n_points)
    d = cfg.curriculum.dims.end
    xs, ys = prompts["xs"], prompts["ys"]
    model.to(choose_device(cfg.train.device))
    final, curve = ev.model_errors(model, xs, ys, n_loops)
    label = f"{cfg.model.kind}" + (f" ({n_loops} loops)" if cfg.model.looped else "")
    rows = {label: ev.bootstrap_band(final, e.n_boot)}
    for name, fn in ev.BASELINE_FNS.items():
        rows[name] = ev.bootstrap_band(ev.normalized_error(fn(xs, ys), ys, d), e.n_boot)
    out_dir.mkdir(parents=True, exist_ok=True)
    ev.write_table(out_dir / "error_vs_examples.csv", rows, "in_context_examples")
    ev.plot_curves(out_dir / "error_vs_examples.png", rows, "in-context examples",
                   f"linear regression, d = {d}", marker=d)
    summary = {name: [float(v) for v in r[0]] for name, r in rows.items()}
    if cfg.model.looped:
        loop_rows = {f"{cfg.model.kind}, last position": ev.bootstrap_band(curve, e.n_boot)}
        ev.write_table(out_dir / "error_vs_loops.csv", loop_rows, "loop_iteration")
        ev.plot_curves(out_dir / "error_vs_loops.png", loop_rows, "loop iteration",
                       f"error at the last position (trained with b = {cfg.b})", marker=cfg.b)
        summary["loop_curve"] = [float(v) for v in curve.mean(0)]
    write_json(out_dir / "summary.json", summary)
    return summary
