"""Errors that are the user's to fix, and how a script reports them.

A script's ``main`` runs under :func:`run_main`: a mistake in the input (a config value, a path, a
damaged file) ends the script with one line, ``error: <what>, <the bad value>, <what is allowed>``,
and exit code 2; a run stopped by Ctrl-C or SIGTERM (:mod:`ltm_gym.core.interrupt`) ends with one
line and exit code 130; anything else is a bug and keeps its traceback. ``--debug`` (or
``LTM_GYM_DEBUG=1``) shows the traceback of an input error too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence


class ArtifactError(ValueError):
    """A file the package wrote (checkpoint, agent, adapters) that cannot be read back."""

    def __init__(self, path: str | Path, what: str, cause: BaseException | None = None, hint: str = "") -> None:
        first = str(cause).splitlines()[0].split(". ")[0] if cause is not None and str(cause) else "no detail"
        detail = f" ({type(cause).__name__}: {first})" if cause is not None else ""
        super().__init__(f"{path} is not a readable {what}{detail}: damaged, or a file of another kind"
                         + (f"; {hint}" if hint else ""))
        self.path = Path(path)


USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
"""Input errors: ConfigError, CorpusError, ArtifactError and the package's other ValueErrors name
the bad value; OSErrors name the path."""


def run_main(main: Callable[[list[str]], object], argv: Sequence[str] | None = None) -> None:
    """Run a script's ``main(argv)``; input errors become one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LTM_GYM_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    from .distributed import close_distributed
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
    finally:
        close_distributed()
