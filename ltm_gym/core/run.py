"""Run directories and the command-line options every script shares.

A run directory holds the resolved config (``config.yaml``), TensorBoard logs (``tb/``),
``metrics.jsonl`` and checkpoints. Scripts print where it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .device import choose_device
from .distributed import DistInfo, broadcast_object, from_environment, init_distributed
from .errors import UserError

RUNS_ROOT = Path("runs")
RESUME_KEYS = ("train.steps",)
"""What ``--set`` may change when resuming a run."""
LOCK_NAME = ".lock"
OWNER_NAME = ".lock.owner"
"""Beside the lock file: the pid of the process that holds it (named when another run is refused)."""
_HELD: dict[Path, FileLock] = {}


class RunInUseError(UserError):
    """A run directory another live process holds."""


def lock_run_dir(run_dir: str | Path) -> bool:
    """Hold ``RUN_DIR/.lock`` (an OS file lock, through ``filelock``; the holder's pid in
    ``RUN_DIR/.lock.owner``) until :func:`unlock_run_dir` or the process ends; the directory is
    created. A directory held by another live process is refused, naming its pid; the lock of a
    process that died is free (the OS drops it), so it is taken over. Holding it again in the same
    process is a no-op (returns False; True when this call took the lock)."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD:
        return False
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"run directory {run_dir} is a file; choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = run_dir / OWNER_NAME
        holder = (owner.read_text().strip() if owner.is_file() else "") or "unknown"
        raise RunInUseError(f"{run_dir} is in use by another run (process {holder}); wait for it to end, "
                            "or choose another directory") from None
    (run_dir / OWNER_NAME).write_text(f"{os.getpid()}\n")
    _HELD[run_dir] = lock
    return True


def unlock_run_dir(run_dir: str | Path) -> None:
    """Release a lock :func:`lock_run_dir` took (the files stay; the lock is free once released)."""
    lock = _HELD.pop(Path(run_dir).resolve(), None)
    if lock is not None:
        lock.release()


def new_run_dir(name: str, seed: int | None = None, root: str | Path = RUNS_ROOT, create: bool = True,
                device: str = "auto") -> Path:
    """``runs/{name}__{seed}__{YYYYmmdd-HHMMSS}``, created unless ``create=False``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank gets the directory rank 0 chose: the ranks
    join the process group for ``device`` (as the run will) and rank 0 broadcasts its path."""
    info = init_distributed(choose_device(device)) if from_environment().enabled else DistInfo()
    path = None
    if info.is_main:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(root) / "__".join([name] + ([str(seed)] if seed is not None else []) + [stamp])
        if create or info.enabled:
            path.mkdir(parents=True, exist_ok=True)
    return Path(broadcast_object(path, info))


def add_run_args(parser: argparse.ArgumentParser, default_config: str | None = None) -> None:
    """Options shared by every training script: config, overrides, run directory, resume, device."""
    parser.add_argument("--config", default=default_config,
                        help=f"preset name (ltm_gym/presets) or a YAML path (default: {default_config})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="run directory (default: a new one under runs/)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last checkpoint")


def run_config_source(args: argparse.Namespace) -> str | Path | None:
    """Where the run's config comes from: ``--config`` for a new run, the run's own
    ``config.yaml`` when resuming. A resume without a run to continue, or with ``--set`` of
    anything but :data:`RESUME_KEYS` (a run continues with the config it started with), is refused
    before anything is read or written."""
    if not args.resume:
        return args.config
    if args.run_dir is None:
        raise UserError("--resume needs --run-dir, the directory of the run to continue")
    config = Path(args.run_dir) / "config.yaml"
    if not Path(args.run_dir).is_dir():
        raise UserError(f"--run-dir {args.run_dir} does not exist; nothing to resume")
    if not config.is_file():
        raise UserError(f"--run-dir {args.run_dir} holds no run (no config.yaml); nothing to resume")
    changed = [o for o in getattr(args, "overrides", None) or [] if o.split("=", 1)[0].strip() not in RESUME_KEYS]
    if changed:
        raise UserError(f"--set {' '.join(changed)} with --resume: a run continues with its own config "
                        f"({config}); only {', '.join(RESUME_KEYS)} may change (to train longer); "
                        "start a new --run-dir for another config")
    return config


def prepare_run_dir(args: argparse.Namespace, name: str, seed: int | None) -> Path:
    """The run directory for ``args``, locked for this process (:func:`lock_run_dir`): the run to
    continue (``--resume``), the given ``--run-dir`` if it holds no run yet, or a new one under
    runs/. A ``--run-dir`` holding another run without ``--resume``, or in use, is refused before
    anything is written."""
    if args.resume:
        run_config_source(args)
        _lock_on_rank0(args.run_dir)
        return Path(args.run_dir)
    if args.run_dir is not None:
        if from_environment().rank > 0:   # rank 0 checks; its config.yaml may already be there for the others
            _lock_on_rank0(args.run_dir)
            return Path(args.run_dir)
        refuse_existing_run(Path(args.run_dir))
        _lock_on_rank0(args.run_dir)
        refuse_existing_run(Path(args.run_dir))   # again, holding the lock: a run that started meanwhile
        return Path(args.run_dir)
    path = new_run_dir(name, seed, device=getattr(args, "device", "auto"))
    _lock_on_rank0(path)
    return path


def _lock_on_rank0(run_dir: str | Path) -> None:
    """Under torchrun rank 0 holds the lock for all ranks (the others write nothing of their own)."""
    if from_environment().is_main:
        lock_run_dir(run_dir)
    else:
        Path(run_dir).mkdir(parents=True, exist_ok=True)


def refuse_existing_run(run_dir: Path) -> None:
    """A new run must not write into a directory that holds one (its config.yaml)."""
    if (run_dir / "config.yaml").is_file():
        raise UserError(f"--run-dir {run_dir} already holds a run (config.yaml); pass --resume to continue it, "
                        "or choose a new --run-dir")


def announce(run_dir: Path) -> None:
    """Print where the run writes and how to look at it."""
    print(f"run directory: {run_dir}")
    print(f"TensorBoard:   tensorboard --logdir {shlex.quote(str(run_dir))}")


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=float))
