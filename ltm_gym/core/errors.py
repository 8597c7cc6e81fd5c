"""Errors that are the user's to fix, and how a script reports them.

A script's ``main`` runs under :func:`run_main`: a mistake in the input (a config value, a path, a
damaged file: a :class:`UserError`, or an OSError naming a path) ends the script with one line, ``error: <what>, <the bad value>, <what is allowed>``,
and exit code 2; a run stopped by Ctrl-C or SIGTERM (:mod:`ltm_gym.core.interrupt`) ends with one
line and exit code 130; anything else is a bug and keeps its traceback. ``--debug`` (or
``LTM_GYM_DEBUG=1``) shows the traceback of an input error too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence


class UserError(ValueError):
    """A mistake in what the user gave (a config value, an option, a path, a damaged file): its
    message names the bad value and what is allowed. A script reports it in one line; a ValueError,
    so Python callers catch it as one."""


class ArtifactError(UserError):
    """A file the package wrote (checkpoint, agent, adapters) that cannot be read back."""

    def __init__(self, path: str | Path, what: str, cause: BaseException | None = None, hint: str = "") -> None:
        first = str(cause).splitlines()[0].split(". ")[0] if cause is not None and str(cause) else "no detail"
        detail = f" ({type(cause).__name__}: {first})" if cause is not None else ""
        super().__init__(f"{path} is not a readable {what}{detail}: damaged, or a file of another kind"
                         + (f"; {hint}" if hint else ""))
        self.path = Path(path)


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, OSError)
"""Input errors: :class:`UserError` (ConfigError, CorpusError, ArtifactError, RunInUseError and every
check of the package) names the bad value, an OSError the path. Any other exception, a ValueError
from deep in torch or numpy included, is a bug and keeps its traceback."""


def run_main(main: Callable[[list[str]], object], argv: Sequence[str] | None = None) -> None:
    """Run a script's ``main(argv)``; input errors become one line on stderr and exit code 2.

    A rank launched by torchrun leaves its process group once every rank is done, then exits at
    once with its code (:func:`_leave`), without the interpreter's teardown."""
    args = list(sys.argv[1:] if argv is None else argv)
    from .distributed import from_environment

    if not from_environment().enabled:
        _report(main, args)
        return
    code: int = 0
    try:
        _report(main, args)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:                                     # a bug: its traceback, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    _leave(code)


def _report(main: Callable[[list[str]], object], args: list[str]) -> None:
    """``main(args)`` with the user's errors and interruptions turned into one line and an exit code."""
    debug = "--debug" in args or os.environ.get("LTM_GYM_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    from .interrupt import EXIT_CODE, Interrupted

    try:
        main(args)
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted: a --resume continues from the last checkpoint written", file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None
    except USER_ERRORS as exc:
        if debug:
            raise
        message = str(exc) or type(exc).__name__
        print(f"error: {message}" + ("" if "--debug" in message else "  (--debug for the traceback)"),
              file=sys.stderr)
        raise SystemExit(2) from None


def _exit_code(code: object) -> int:
    """A process exit status from ``SystemExit.code`` (None is 0; a message is printed, then 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _leave(code: int) -> None:
    """End a torchrun rank: on success wait for every rank and leave the process group, then exit
    without the interpreter's teardown. Gloo's threads can still hold work whose tensors reach back
    into Python; torn down by the interpreter's exit they abort the rank ("terminate called without
    an active exception", SIGABRT) after its work is done, which fails the whole launch. On failure
    the group is not waited for: the launcher stops the other ranks."""
    from .distributed import close_distributed

    if code == 0:
        close_distributed()
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
