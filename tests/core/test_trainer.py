import json
import math

import pytest
import torch

from ltm_gym.core import TrainConfig, lr_factor
from tests.core.toy import make_trainer


class StopAt:
    def __init__(self, step):
        self.at = step

    def on_step(self, trainer, metrics):
        trainer.stop_requested = trainer.step >= self.at


def params(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def test_training_reduces_loss():
    t = make_trainer(steps=60)
    first = t.train_step(t.batch_fn(0))["loss"]
    t.fit(resume=False)
    assert t.last_metrics["loss"] < first


def test_resume_is_bit_exact(tmp_path):
    straight = make_trainer(steps=10, run_dir=tmp_path / "a")
    straight.fit()
    interrupted = make_trainer(steps=10, run_dir=tmp_path / "b")
    interrupted.callbacks.append(StopAt(4))
    interrupted.fit()
    assert interrupted.step == 4
    resumed = make_trainer(steps=10, run_dir=tmp_path / "b")
    resumed.fit()  # picks up the checkpoint at step 4, dropout RNG included
    assert resumed.step == 10
    assert torch.equal(params(straight), params(resumed))
    assert not torch.equal(params(make_trainer(steps=0)), params(resumed))


def test_metrics_log_has_no_duplicate_steps_after_resume(tmp_path):
    make_trainer(steps=4, run_dir=tmp_path, ckpt_every=2).fit()
    log = tmp_path / "metrics.jsonl"
    rows = [json.loads(r) for r in log.read_text().splitlines()]
    # simulate a crash after step 4 that had logged rows past the last checkpoint
    with open(log, "a") as fh:
        fh.write(json.dumps({"step": 5, "split": "train", "loss": 1.0}) + "\n")
    make_trainer(steps=6, run_dir=tmp_path).fit()
    steps = [json.loads(r)["step"] for r in log.read_text().splitlines() if '"train"' in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert len(rows) == 4


def test_grad_accumulation_matches_full_batch():
    a = make_trainer(steps=3, dropout=False)
    a.fit(resume=False)
    b = make_trainer(steps=3, dropout=False, grad_accum=4)
    b.fit(resume=False)
    assert torch.allclose(params(a), params(b), atol=1e-6)


def test_grad_accumulation_matches_full_batch_in_bf16():
    """bf16 autocast (what ``auto`` picks on a CPU with native bf16): the same within bf16's rounding."""
    a = make_trainer(steps=3, dropout=False, precision="bf16")
    a.fit(resume=False)
    b = make_trainer(steps=3, dropout=False, grad_accum=4, precision="bf16")
    b.fit(resume=False)
    assert a.precision == b.precision == "bf16"
    assert torch.allclose(params(a), params(b), atol=2e-2)
    assert not torch.allclose(params(a), params(make_trainer(steps=0)), atol=1e-3)   # it trained


def test_lr_schedules():
    cfg = TrainConfig(steps=10, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.5)
    assert lr_factor(2, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(0.1)
    lin = TrainConfig(steps=10, schedule="linear")
    assert lr_factor(5, lin) == pytest.approx(0.5)
    assert lr_factor(3, TrainConfig(steps=10)) == 1.0


def test_nan_loss_is_reported():
    t = make_trainer(steps=1)
    t.loss_fn = lambda model, batch: torch.tensor(math.nan, requires_grad=True)
    with pytest.raises(FloatingPointError, match="step 0"):
        t.fit(resume=False)


def test_prefetch_trains_the_same_batches_and_resumes_exactly(tmp_path):
    import threading

    plain = make_trainer(steps=10)
    plain.fit(resume=False)
    seen = []
    fetching = make_trainer(steps=10, prefetch=True)
    inner = fetching.batch_fn
    fetching.batch_fn = lambda step: (seen.append((step, threading.current_thread().name)), inner(step))[1]
    fetching.fit(resume=False)
    assert torch.equal(params(plain), params(fetching))
    assert [s for s, _ in seen] == list(range(10))                    # each step's batch once, in order
    assert all(name.startswith("batch") for _, name in seen)          # built off the training thread
    interrupted = make_trainer(steps=10, run_dir=tmp_path / "b", prefetch=True)
    interrupted.callbacks.append(StopAt(4))
    interrupted.fit()
    resumed = make_trainer(steps=10, run_dir=tmp_path / "b", prefetch=True)
    resumed.fit()
    assert resumed.step == 10 and torch.equal(params(plain), params(resumed))


def test_checkpoints_leave_out_frozen_parameters_and_resume_exactly(tmp_path):
    from ltm_gym.core import Trainer, load_checkpoint
    from tests.core import toy

    def frozen_first(run_dir):
        t = make_trainer(steps=8, run_dir=run_dir)
        t.model[0].requires_grad_(False)
        return Trainer(t.model, t.cfg, toy.loss_fn, toy.batch_fn, run_dir=run_dir)

    straight = frozen_first(tmp_path / "a")
    straight.fit()
    interrupted = frozen_first(tmp_path / "b")
    interrupted.callbacks.append(StopAt(3))
    interrupted.fit()
    saved = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["model"]
    assert set(saved) == {"3.weight", "3.bias"}                   # the frozen first layer is rebuilt, not stored
    resumed = frozen_first(tmp_path / "b")
    resumed.fit()
    assert resumed.step == 8 and torch.equal(params(straight), params(resumed))
    other = make_trainer(steps=8, run_dir=tmp_path / "b")           # every parameter trainable: "0.*" missing
    with pytest.raises(ValueError, match=r"does not fit this model: missing \['0.bias'"):
        other.load()
