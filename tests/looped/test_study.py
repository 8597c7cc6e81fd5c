import json

import torch

from ltm_gym.baselines.looped.study import evaluate, make_batch_fn, train
from ltm_gym.core import ConfigError, load_checkpoint, load_config
from ltm_gym.baselines.looped.study import LoopedConfig

import pytest


class StopAt:
    def __init__(self, step):
        self.step = step

    def on_step(self, trainer, metrics):
        trainer.stop_requested = trainer.step >= self.step


def test_batches_follow_curricula(tiny_cfg):
    fn = make_batch_fn(tiny_cfg)
    b0, b4 = fn(0), fn(4)
    assert b0["xs"].shape == (8, 5, 3) and (b0["xs"][..., 2:] == 0).all() and b0["n_loops"] == 2
    assert b4["xs"].shape == (8, 7, 3) and (b4["xs"][..., 2] != 0).any() and b4["n_loops"] == 4
    assert torch.equal(fn(4)["xs"], b4["xs"])


def test_train_resume_and_evaluate(tiny_cfg, tmp_path, monkeypatch):
    full = train(tiny_cfg, tmp_path / "a")
    # interrupted after 3 steps, then resumed
    from ltm_gym.core import trainer as trainer_mod
    orig = trainer_mod.Trainer.__init__

    def init(self, *a, **kw):
        orig(self, *a, **kw)
        self.callbacks.append(StopAt(3))

    monkeypatch.setattr(trainer_mod.Trainer, "__init__", init)
    train(tiny_cfg, tmp_path / "b")
    assert load_checkpoint(tmp_path / "b/checkpoint.pt")["step"] == 3
    monkeypatch.undo()
    resumed = train(tiny_cfg, tmp_path / "b")
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    summary = evaluate(tiny_cfg, resumed, tmp_path / "eval")
    assert {"least_squares", "knn3", "averaging", "loop_curve"} <= set(summary)
    assert len(summary["loop_curve"]) == 10 and len(summary["least_squares"]) == 7
    for f in ("error_vs_examples.csv", "error_vs_examples.png", "error_vs_loops.png", "summary.json"):
        assert (tmp_path / "eval" / f).stat().st_size > 0
    rows = [json.loads(r) for r in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 7))


def test_inconsistent_config_is_named():
    with pytest.raises(ConfigError, match="model.n_dims"):
        load_config(LoopedConfig, {"task": {"n_dims": 4}, "curriculum": {"dims": {"start": 2, "end": 4}}})
