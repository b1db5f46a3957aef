"""Command-line conventions shared by the tools: user errors are one line and exit status 2;
one vocabulary of flags, old spellings kept as deprecated aliases.

A *user error* is a problem with the user's input (a config key, a data file, a checkpoint, an
output folder, unreadable data): the tools print ``error: <message>`` and exit 2; ``--debug``
shows the traceback instead. Anything else is a bug and keeps its traceback.

The vocabulary (README "Tools"): ``--config-file FILE`` and trailing ``KEY VALUE`` overrides
(flags may also follow them: :func:`parse_flags_and_overrides`), ``--weights FILE``,
``--output PATH`` (what the tool makes: a file or folder), ``--json FILE`` (the printed result,
also as JSON), ``--device cpu|cuda[:N]`` (:func:`add_device_argument`), ``--score-threshold``,
``--groundtruth`` / ``--detections``, ``--task NAME``. An earlier spelling stays accepted
through :func:`add_deprecated_alias`: hidden from ``--help``, it sets the same value and prints
``--OLD is deprecated; use --NEW`` on stderr.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type

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
    """:func:`parse_flags_and_overrides` whose ``nargs="+"`` option ``dest`` gives the ``KEY
    VALUE`` overrides it swallowed back to ``opts`` (:func:`split_trailing_overrides`)."""
    args = parse_flags_and_overrides(parser, argv)
    values, args.opts = split_trailing_overrides(getattr(args, dest), args.opts)
    if not values:
        parser.error(f"--{dest}: nothing before the KEY VALUE overrides")
    setattr(args, dest, values)
    return args


# ------------------------------------------------------------------------ deprecated aliases
_collected_notes: Optional[List[str]] = None  # set while parse_flags_and_overrides parses


def deprecation_note(old: str, new: str) -> None:
    """Print ``OLD is deprecated; use NEW`` on stderr (collected instead while
    :func:`parse_flags_and_overrides` may parse the same arguments more than once)."""
    note = f"{old} is deprecated; use {new}"
    if _collected_notes is None:
        print(note, file=sys.stderr)
    elif note not in _collected_notes:
        _collected_notes.append(note)


class DeprecatedAlias(argparse.Action):
    """An old spelling of the flag ``canonical``: stores into that flag's ``dest`` (its value,
    or ``const`` for an alias that takes no value) and prints a deprecation note."""

    def __init__(self, option_strings: Sequence[str], dest: str, canonical: str = "",
                 **kwargs: Any) -> None:
        self.canonical = canonical
        kwargs.setdefault("default", argparse.SUPPRESS)  # the canonical flag owns the default
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        deprecation_note(option_string or self.option_strings[0], self.canonical)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str,
                         const: Any = None) -> argparse.Action:
    """Keep the old spelling ``old`` of ``parser``'s option ``new`` working: it sets the same
    ``dest`` (converted as ``new`` converts; with ``const``, ``old`` takes no value and stores
    ``const``, e.g. ``--cpu`` = ``--device cpu``), prints ``OLD is deprecated; use NEW`` on
    stderr, and is hidden from ``--help``. A required ``new`` is satisfied by either spelling
    (they become one required mutually exclusive group); giving both is an error there, as it is
    when ``new`` already belongs to a mutually exclusive group."""
    target = parser._option_string_actions[new]  # argparse keeps no public index of options
    if const is None:
        kwargs = dict(nargs=target.nargs, type=target.type, choices=target.choices,
                      metavar=target.metavar, canonical=new)
    else:
        kwargs = dict(nargs=0, const=const, canonical=f"{new} {const}")
    container: Any = next((g for g in parser._mutually_exclusive_groups
                           if target in g._group_actions), None)
    if container is None and target.required:
        target.required = False  # the group is required instead (the usage line says so)
        container = parser.add_mutually_exclusive_group(required=True)
        container._group_actions.append(target)
    alias = (container or parser).add_argument(old, dest=target.dest, action=DeprecatedAlias,
                                               **kwargs)
    parser._actions.remove(alias)  # next to its flag: the usage line shows a group as one
    parser._actions.insert(parser._actions.index(target) + 1, alias)
    return alias


def add_aliases(parser: argparse.ArgumentParser, aliases: Sequence[Tuple[str, str]]) -> None:
    """:func:`add_deprecated_alias` of each ``(old, new)`` pair."""
    for old, new in aliases:
        add_deprecated_alias(parser, old, new)


# ---------------------------------------------------------------------------------- --device
def add_device_argument(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--device cpu|cuda[:N]`` (default: CUDA when available, else CPU) of a tool that runs a
    model, with ``--cpu`` as its deprecated alias; :func:`resolve_device` reads it."""
    action = parser.add_argument("--device", default=None, metavar="cpu|cuda[:N]",
                                 help="where the model runs (default: cuda when available, "
                                      "else cpu)")
    add_deprecated_alias(parser, "--cpu", "--device", const="cpu")
    return action


def resolve_device(spec: Optional[str]) -> Any:
    """The ``torch.device`` of a ``--device`` value (``None``: CUDA when available); a user
    error for a malformed value or CUDA on a machine without it."""
    import torch

    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"--device {spec}: not a device (cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise UserError(f"--device {spec}: CUDA is not available here (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {spec}: this machine has {count} CUDA device(s)")
    return device


# ------------------------------------------------------------------- flags after overrides
def parse_flags_and_overrides(parser: argparse.ArgumentParser,
                              argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` for a parser whose ``opts`` positional takes the trailing
    ``KEY VALUE`` overrides (``nargs=argparse.REMAINDER``), where flags may also follow the
    overrides (``A.B 1 --num-gpus 8``): a ``-...`` argument where a KEY is due is parsed as
    the flag it is, and ``opts`` keeps the overrides in their order. Nothing after ``--`` is
    taken for a flag (and the ``--`` is not an override)."""
    global _collected_notes
    argv = list(sys.argv[1:] if argv is None else argv)
    before: List[str] = []  # overrides that came before a flag, in order
    outer, _collected_notes = _collected_notes, []
    try:
        while True:
            args = parser.parse_args(argv)
            opts = list(args.opts)
            if opts[:1] == ["--"]:  # "-- KEY VALUE ...": overrides only, the "--" dropped
                opts = opts[1:]
                break
            # opts[0] is always a KEY (REMAINDER starts at a positional); keys never start
            # with "-", and only KEY positions are looked at (a VALUE may be "-1e-4")
            flag = next((i for i in range(2, len(opts), 2) if opts[i].startswith("-")), None)
            if flag is None:
                break
            before += opts[:flag]
            argv = argv[:len(argv) - len(opts)] + opts[flag:]  # opts is argv's verbatim tail
        args.opts = before + opts
        return args
    finally:
        notes, _collected_notes = _collected_notes, outer
        for note in notes:
            print(note, file=sys.stderr)
