"""Atomic checkpoints: write to a temporary file in the same directory, fsync, then rename.

A crash while writing leaves the previous checkpoint untouched and loadable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import ArtifactError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Save ``state`` (any torch-serializable dict) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _numpy_globals() -> list[Any]:
    """What a checkpoint's numpy arrays and scalars (RNG states, observations) need to load, and
    nothing that can run code."""
    import numpy as np
    from numpy._core import multiarray

    kinds = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
             np.uint32, np.uint64, np.bool_)
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, *(type(np.dtype(k)) for k in kinds)]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; a missing, empty, truncated or foreign
    file is an error naming it. Loads are weights-only (tensors, numpy arrays, plain Python
    values): a checkpoint from elsewhere cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises EOFError, RuntimeError, UnpicklingError, ... by damage kind
        raise ArtifactError(path, "checkpoint", exc, "restore it, or delete it to start over") from exc
    if not isinstance(state, dict):
        raise ArtifactError(path, "checkpoint", TypeError(f"it holds a {type(state).__name__}, not a dict"))
    return state


def save_tensors(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """``state`` as a safetensors file, written atomically."""
    from safetensors.torch import save_file

    return atomic_write(path, lambda tmp: save_file(state, str(tmp)))


def load_tensors(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a missing file is a FileNotFoundError, a damaged one an
    :class:`ArtifactError` naming ``what`` it should have been."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types by damage kind
        raise ArtifactError(path, f"{what} (safetensors)", exc) from exc
