"""The Recurrent Memory Transformer: the field's end-to-end memory, beside the RL agents."""

from .curriculum import stage_tasks
from .model import RecurrentMemoryLM
from .training import RMTConfig, RMTSetup, evaluate_rmt, load_rmt, rmt_metrics, train_rmt, unroll

__all__ = ["RMTConfig", "RMTSetup", "RecurrentMemoryLM", "evaluate_rmt", "load_rmt", "rmt_metrics", "stage_tasks",
           "train_rmt", "unroll"]
