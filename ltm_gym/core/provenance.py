"""Where and when a result was measured: written beside every table a command writes
(``<table>.provenance.yaml``: no ``*.json`` pattern picks it up as a table), so that ``ltm-gym report`` can date and place each row."""

from __future__ import annotations

import shlex
from importlib import metadata
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from .device import cpu_name

SUFFIX = ".provenance.yaml"


def provenance() -> dict[str, Any]:
    """The date (UTC), the machine (CPU, and the GPU when one is visible), the command line and the
    package version of this process."""
    try:
        version = metadata.version("ltm-gym")
    except metadata.PackageNotFoundError:          # a checkout on sys.path, not installed
        version = "unknown"
    machine = cpu_name()
    if torch.cuda.is_available():
        machine += f"; GPU {torch.cuda.get_device_name(0)}"
    command = " ".join([sys.argv[0], *(shlex.quote(a) for a in sys.argv[1:])])
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine,
            "command": command, "version": version}


def write_provenance(table: str | Path) -> Path:
    """``<table without .json>.provenance.yaml`` beside the table file ``table``."""
    table = Path(table)
    path = table.with_name(table.name.removesuffix(".json") + SUFFIX)
    path.write_text(yaml.safe_dump(provenance(), sort_keys=False))
    return path


def read_provenance(table: str | Path) -> dict[str, Any] | None:
    """What :func:`write_provenance` wrote beside ``table`` (None for a table written without it)."""
    table = Path(table)
    path = table.with_name(table.name.removesuffix(".json") + SUFFIX)
    return yaml.safe_load(path.read_text()) if path.is_file() else None
