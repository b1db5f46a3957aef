"""Atomic file writes: a crash mid-write never leaves a truncated file at the target path."""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, BinaryIO, Callable, List

TEMPORARY_PREFIX = ".tmp_"  # atomic_write's temporary files: .tmp_XXXXXXXX<suffix>


def _default_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_file(path: str, write: Callable[[BinaryIO], None]) -> str:
    """``write(f)`` into a new fsync'd temporary file next to ``path`` (mode as ``open()``
    would give ``path``, not mkstemp's 0600); returns its name. Removed again on error."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=os.path.splitext(path)[1],
                               dir=folder)
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def write_temp_file(path: str, data: bytes) -> str:
    """``data`` in a temporary file next to ``path`` (see :func:`atomic_write`); the caller
    renames it onto ``path`` (``os.replace``) or removes it. Returns its name."""
    return _temp_file(path, lambda f: f.write(data))


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, fsync, then rename onto
    ``path``; on any error the temporary file is removed and ``path`` is left untouched. The
    file gets the mode ``open()`` would give it (``0o666`` less the umask)."""
    tmp = _temp_file(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))



def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` (not recursive) when
    a process was killed inside a write; returns their paths. Call it only while no writer is
    active in ``folder`` (at the start of a run, on the main process)."""
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(TEMPORARY_PREFIX) and os.path.isfile(path):
            os.unlink(path)
            removed.append(path)
    return removed


def strict_json_value(obj: Any) -> Any:
    """``obj`` with NaN / +-inf floats as None, tuples as lists and numpy / torch scalars as
    Python numbers: what strict JSON can hold (``json.dump`` would write ``NaN``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_value(v) for v in obj]
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(obj, "ndim", 1) == 0:
        return strict_json_value(item())
    tolist = getattr(obj, "tolist", None)  # numpy / torch arrays
    if callable(tolist):
        return strict_json_value(tolist())
    return obj


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (see :func:`strict_json_value`); never writes ``NaN``."""
    return json.dumps(strict_json_value(obj), allow_nan=False, **kwargs)


def write_json(path: str, obj: Any, **kwargs: Any) -> None:
    """Write :func:`dumps_json` of ``obj`` to ``path`` atomically."""
    atomic_write_text(path, dumps_json(obj, **kwargs) + "\n")
