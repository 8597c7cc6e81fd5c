"""Run directories and the command-line options every script shares.

A run directory holds the resolved config (``config.yaml``), TensorBoard logs (``tb/``),
``metrics.jsonl`` and checkpoints. Scripts print where it is.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

RUNS_ROOT = Path("runs")


def new_run_dir(name: str, seed: int | None = None, root: str | Path = RUNS_ROOT) -> Path:
    """``runs/{name}__{seed}__{YYYYmmdd-HHMMSS}``, created."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parts = [name] + ([str(seed)] if seed is not None else []) + [stamp]
    path = Path(root) / "__".join(parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def prepare_run_dir(args: argparse.Namespace, name: str, seed: int | None) -> Path:
    """The run directory for ``args``: new, or an existing one when resuming."""
    if args.resume:
        if args.run_dir is None:
            raise SystemExit("--resume needs --run-dir pointing at the run to continue")
        if not Path(args.run_dir).is_dir():
            raise SystemExit(f"--run-dir {args.run_dir} does not exist, nothing to resume")
        return Path(args.run_dir)
    if args.run_dir is not None:
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
        return Path(args.run_dir)
    return new_run_dir(name, seed)


def announce(run_dir: Path) -> None:
    """Print where the run writes and how to look at it."""
    print(f"run directory: {run_dir}")
    print(f"TensorBoard:   tensorboard --logdir {run_dir}")


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=float))
