"""The shared training core: device & precision, seeding, configs, checkpoints, the Trainer, DDP.

It knows no task, model or algorithm; the LM, the agents and the looped studies call it.
"""

from .checkpoint import atomic_write, load_checkpoint, save_checkpoint
from .config import ConfigError, check, config_changes, from_dict, load_config, save_config, to_dict
from .device import autocast, bf16_support, choose_device, cpu_bf16_flags, resolve_precision, to_device
from .errors import USER_ERRORS, ArtifactError, UserError, run_main
from .distributed import DistInfo, init_distributed, shard, split_batch
from .run import (RunInUseError, add_run_args, announce, lock_run_dir, new_run_dir, prepare_run_dir, refuse_existing_run,
                  run_config_source, unlock_run_dir)
from .seeding import get_rng_state, seed_everything, set_rng_state, step_generator
from .trainer import TrainConfig, Trainer, lr_factor

__all__ = [
    "USER_ERRORS", "ArtifactError", "RunInUseError", "UserError", "lock_run_dir", "unlock_run_dir", "run_main", "ConfigError", "DistInfo", "TrainConfig", "Trainer", "add_run_args", "announce", "atomic_write",
    "autocast", "bf16_support", "check", "config_changes", "cpu_bf16_flags", "choose_device", "from_dict", "get_rng_state", "init_distributed",
    "load_checkpoint", "load_config", "lr_factor", "new_run_dir", "prepare_run_dir", "refuse_existing_run", "run_config_source",
    "resolve_precision", "save_checkpoint", "save_config", "seed_everything", "set_rng_state",
    "shard", "split_batch", "step_generator", "to_device", "to_dict",
]
