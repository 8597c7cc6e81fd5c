"""Stopping a run at a point it can resume from exactly (Ctrl-C, SIGTERM).

While a training loop runs inside :func:`stop_signals`, the first SIGINT or SIGTERM only sets a
flag (:func:`stop_requested`); the loop finishes the update in flight, writes its checkpoint and
raises :class:`Interrupted`, which :func:`ltm_gym.core.errors.run_main` turns into one line and
exit code 130. A second signal stops at once (the last checkpoint written stays the resume point).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODE = 130
_received: list[int] = []


class Interrupted(Exception):
    """A run stopped by a signal after writing a checkpoint it resumes from exactly."""

    def __init__(self, signum: int, checkpoint: str | Path | None, where: str, resume: str = "") -> None:
        name = signal.Signals(signum).name
        saved = f"checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint written"
        super().__init__(f"stopped by {name} at {where}: {saved}" + (f"; {resume}" if resume else ""))
        self.signum, self.checkpoint = signum, checkpoint


def stop_requested() -> int | None:
    """The signal received inside :func:`stop_signals`, or None."""
    return _received[0] if _received else None


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request for the duration (main thread only; elsewhere, or
    nested, a no-op). The request is cleared on entry and exit."""
    if threading.current_thread() is not threading.main_thread() or _installed():
        yield
        return
    _received.clear()

    def handler(signum: int, frame: object) -> None:
        if _received:                                   # the second signal: stop now
            raise KeyboardInterrupt
        _received.append(signum)
        print(f"\n{signal.Signals(signum).name}: stopping after the update in flight, at a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    handler._ltm_gym = True  # type: ignore[attr-defined]
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _received.clear()


def _installed() -> bool:
    return getattr(signal.getsignal(signal.SIGINT), "_ltm_gym", False)
