"""Command-line conventions shared by the tools: user errors are one line and exit status 2.

A *user error* is a problem with the user's input (a config key, a data file, a checkpoint, an
output folder, unreadable data): the tools print ``error: <message>`` and exit 2; ``--debug``
shows the traceback instead. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence, Tuple, Type


class UserError(Exception):
    """A user-input problem that has no more specific class (message: what and how to fix)."""


def user_error_types() -> Tuple[Type[BaseException], ...]:
    """The exception classes reported as one line (imported lazily: they live across core)."""
    from mvit_tasks.checkpoint.io import CheckpointFormatError, UnsafeCheckpointError
    from mvit_tasks.checkpoint.loader import CheckpointMismatchError
    from mvit_tasks.config import ConfigError
    from mvit_tasks.engine.trainer import TooManyFailuresError

    return (UserError, ConfigError, ValueError, FileNotFoundError, NotADirectoryError,
            TooManyFailuresError, CheckpointFormatError, UnsafeCheckpointError,
            CheckpointMismatchError)


def run_cli(main: Callable[..., Any], argv: Sequence[str] = ()) -> int:
    """Run ``main()``; a user error becomes ``error: ...`` on stderr and exit status 2 (the
    traceback with ``--debug`` in ``argv``). Returns 0 or ``main``'s int result."""
    try:
        out = main()
    except user_error_types() as e:
        if "--debug" in argv:
            raise
        message = str(e) or type(e).__name__
        if isinstance(e, KeyError) and message.startswith(("'", '"')):
            message = message[1:-1]
        print(f"error: {message}\n(add --debug for the traceback)", file=sys.stderr)
        return 2
    return out if isinstance(out, int) else 0
