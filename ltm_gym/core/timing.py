"""Timing for the benchmark scripts: median wall time of a call after one warm-up call."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: bool = True) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` (one untimed warm-up call first, unless the
    caller has made it)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
