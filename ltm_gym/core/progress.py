"""Progress bars that suit both a terminal and a log file.

On a terminal: an ordinary tqdm bar. When stderr is not a terminal (``make demo > log``, CI): one
plain line at most every ``LOG_INTERVAL`` seconds (and at the end), never carriage-return redraws.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

LOG_INTERVAL = 30.0
"""Seconds between two progress lines in a log file."""


class _Lines:
    """A stream that turns tqdm's redraws into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)`` on a terminal; in a log file, a line every ``LOG_INTERVAL`` s."""
    stream = kwargs.get("file") or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs.update(file=_Lines(stream), mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL,
                      dynamic_ncols=False, ncols=100)
    return tqdm(*args, **kwargs)
