"""Device and precision: cuda > mps > cpu unless told otherwise; bf16 autocast where the hardware
multiplies bf16 natively (CUDA with bf16, a CPU with AVX512-BF16 or AMX), fp32 elsewhere."""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import torch
from .errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def choose_device(name: str = "auto") -> torch.device:
    """The device to run on: ``auto`` picks cuda, then mps, then cpu; ``cuda:1`` etc. pass through."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"device {name!r} is not a device name; allowed: {', '.join(DEVICES)} (or cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device {name!r} is not supported; allowed: {', '.join(DEVICES)}")
    return dev


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPU_BF16_ENV = "LTM_GYM_CPU_BF16"
"""Overrides the CPU's bf16 detection: ``1`` acts as a CPU with native bf16 (so ``auto`` picks bf16),
``0`` as one without; unset reads ``/proc/cpuinfo``. The test suite runs under both to behave the
same on every CPU (``make test-bf16``)."""


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The CPU's native bf16 features (``/proc/cpuinfo`` flags among :data:`CPU_BF16_FLAGS`); empty
    where bf16 matmuls are emulated (AVX2-only CPUs: bf16 autocast runs ~30x slower than fp32).
    ``$LTM_GYM_CPU_BF16`` overrides the reading when no ``cpuinfo`` text is given."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if cpuinfo is None and forced:
        if forced not in ("0", "1"):
            raise UserError(f"{CPU_BF16_ENV}={forced!r} is not allowed; allowed: 0, 1 (or unset)")
        return [f"{CPU_BF16_ENV}=1"] if forced == "1" else []
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return [f for f in CPU_BF16_FLAGS if f in flags]


def cpu_name() -> str:
    """The CPU's model name and its native bf16 features (what a benchmark's table names)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or "unknown CPU")
    flags = cpu_bf16_flags(info) if info else []
    return f"{name}, {os.cpu_count()} cores, " + (f"native bf16 ({' '.join(flags)})" if flags else "no native bf16")


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 natively, and why (for logs and the benches)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "CUDA with bf16" if ok else "CUDA without bf16"
    if device.type == "cpu":
        flags = cpu_bf16_flags()
        return (True, "CPU with " + "/".join(flags)) if flags else \
            (False, "CPU without AVX512-BF16/AMX: bf16 is emulated, ~30x slower than fp32")
    return False, f"{device.type}: bf16 autocast not used"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the device runs it natively (:func:`bf16_support`), fp32 elsewhere;
    an explicit ``bf16`` on hardware that only emulates it is kept, with a warning."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
    native, why = bf16_support(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        warnings.warn(f"precision bf16 on {why}", RuntimeWarning, stacklevel=2)
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` (a no-op in fp32). bf16 needs no loss scaling."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in nested dicts/lists/tuples to ``device`` (non-blocking from pinned memory)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
