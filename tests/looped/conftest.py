import pytest

from ltm_gym.baselines.looped.study import LoopedConfig
from ltm_gym.core import load_config


@pytest.fixture
def tiny_cfg():
    """A few-second looped study: d = 3, 7 points, 16-wide model."""
    return load_config(LoopedConfig, {
        "name": "tiny",
        "model": {"kind": "looped", "n_dims": 3, "n_positions": 8, "n_embd": 16, "n_head": 2},
        "task": {"n_dims": 3},
        "curriculum": {"dims": {"start": 2, "end": 3, "inc": 1, "interval": 2},
                       "points": {"start": 5, "end": 7, "inc": 2, "interval": 2},
                       "loops": {"start": 2, "end": 4, "inc": 2, "interval": 2}},
        "n_loop_window": 2,
        "batch_size": 8,
        "train": {"steps": 6, "lr": 1e-3, "device": "cpu", "progress": False, "log_every": 1},
        "eval": {"n_prompts": 32, "n_points": 7, "n_loops": 10, "n_boot": 50},
    })
