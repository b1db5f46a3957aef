"""Command-line conventions shared by the tools: user errors are one line and exit status 2.

A *user error* is a problem with the user's input (a config key, a data file, a checkpoint, an
output folder, unreadable data): the tools print ``error: <message>`` and exit 2; ``--debug``
shows the traceback instead. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable, List, Sequence, Tuple, Type

CONFIG_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")  # the KEY of a KEY VALUE override


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


def split_trailing_overrides(values: Sequence[str],
                             opts: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(values, opts)`` with the ``KEY VALUE`` overrides that a ``nargs="+"`` option swallowed
    (``--input a.mp4 DATA.NUM_FRAMES 8``) moved to ``opts``: they start at the first value
    that is a config key (``A.B``, capitals) and no existing file."""
    cut = next((i for i, v in enumerate(values) if CONFIG_KEY.match(v) and not os.path.exists(v)),
               len(values))
    return list(values[:cut]), [*values[cut:], *opts]


def parse_with_overrides(parser: argparse.ArgumentParser, argv: Sequence[str],
                         dest: str = "input") -> argparse.Namespace:
    """``parser.parse_args(argv)`` whose ``nargs="+"`` option ``dest`` gives the ``KEY VALUE``
    overrides it swallowed back to ``opts`` (:func:`split_trailing_overrides`)."""
    args = parser.parse_args(list(argv))
    values, args.opts = split_trailing_overrides(getattr(args, dest), args.opts)
    if not values:
        parser.error(f"--{dest}: nothing before the KEY VALUE overrides")
    setattr(args, dest, values)
    return args
