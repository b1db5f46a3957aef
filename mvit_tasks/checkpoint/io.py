"""Safe checkpoint reading and atomic writing.

* ``.pth`` / ``.pyth`` / ``.pt`` files are read with ``torch.load(weights_only=True)``; a file that
  needs arbitrary pickled objects is refused with :class:`UnsafeCheckpointError`, which says why
  and how to opt in (``MODEL.WEIGHTS_UNSAFE_PICKLE True`` / ``--unsafe-pickle``).
* ``.pkl`` files (detectron2 model zoo: plain pickles of numpy arrays) are read by a restricted
  unpickler that only admits numpy arrays and builtin containers; arrays become tensors of the
  same shape (0-d ones, e.g. BatchNorm ``num_batches_tracked``, stay 0-d).
* ``.safetensors`` files are read with ``safetensors``.
* :func:`save_checkpoint` writes to a temporary file in the same folder and renames it, so a crash
  mid-write never leaves a truncated checkpoint behind.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import re
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from mvit_tasks.utils.fileio import atomic_write

logger = logging.getLogger(__name__)


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint needs arbitrary code (pickled objects) to load."""


class CheckpointFormatError(RuntimeError):
    """The file is not a checkpoint we can read."""


_SAFE_PKL_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # numpy arrays pickled with protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_PKL_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def _unsafe_message(path: str, detail: str) -> str:
    return (
        f"Refusing to load '{path}': it needs arbitrary pickled Python objects to load "
        f"({detail.strip().splitlines()[0] if detail.strip() else 'unknown object'}), and unpickling "
        "can run arbitrary code. If you trust the file, opt in explicitly with "
        "MODEL.WEIGHTS_UNSAFE_PICKLE True (config) or --unsafe-pickle (tools), or re-save its "
        "tensors with torch.save(state_dict) first."
    )


def load_checkpoint_file(path: str, allow_unsafe: bool = False) -> Any:
    """Read a checkpoint file without executing pickled code (unless ``allow_unsafe``).

    Returns whatever the file holds (usually a dict); numpy arrays from ``.pkl`` files are
    turned into tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: '{path}'")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            data = f.read()
        try:
            obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
        except pickle.UnpicklingError as e:
            if not allow_unsafe:
                raise UnsafeCheckpointError(_unsafe_message(path, str(e))) from None
            logger.warning("loading '%s' with the full unpickler (explicit opt-in): %s", path, e)
            obj = pickle.loads(data, encoding="latin1")  # noqa: S301 (explicit opt-in)
        except Exception as e:  # not a pickle at all: maybe a torch file named .pkl
            try:
                return _torch_load(path, allow_unsafe)
            except CheckpointFormatError:
                raise CheckpointFormatError(f"'{path}' is neither a pickle nor a torch file: {e}") from None
        return _numpy_to_torch(obj)
    return _torch_load(path, allow_unsafe)


# torch's weights_only refusals, across versions: the object they name is group 1 or 2
_GLOBAL_RE = re.compile(r"(?:GLOBAL (\S+) was not an allowed global|Unsupported global: "
                        r"(?:GLOBAL )?(\S+)|unsupported GLOBAL (\S+)|Unsupported class (\S+))",
                        re.IGNORECASE)


def _named_global(message: str) -> Optional[str]:
    """The ``module.name`` a weights-only refusal names, or None (not such a refusal)."""
    found = _GLOBAL_RE.search(message)
    if found is None:
        return None
    return next(g for g in found.groups() if g).rstrip(".,:;")


def diagnose_file(path: str) -> str:
    """A plain reason why ``path`` is not a readable torch checkpoint (size and magic bytes)."""
    size = os.path.getsize(path)
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 65558))  # the zip end record sits in the last 64 KiB + 22 bytes
        tail = f.read()
    if head == b"PK\x03\x04":
        if b"PK\x05\x06" not in tail:
            return (f"truncated at byte {size}: a torch zip checkpoint without its end record "
                    "(an interrupted write or copy)")
        return "a damaged torch zip checkpoint"
    if head[:1] == b"\x80":
        return f"a pickle that cannot be read to the end ({size} bytes; truncated or damaged)"
    return f"not a torch or pickle file (starts with bytes {head!r})"


def _torch_load(path: str, allow_unsafe: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        name = _named_global(str(e))
        if name is None:  # corrupt or not a checkpoint at all (e.g. "Unsupported operand")
            raise CheckpointFormatError(f"cannot read checkpoint '{path}': "
                                        f"{diagnose_file(path)}") from None
        if not allow_unsafe:
            raise UnsafeCheckpointError(_unsafe_message(path, f"it names {name}")) from None
        logger.warning("loading '%s' with the full unpickler (explicit opt-in): it names %s, "
                       "which runs code from the file", path, name)
        return torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614 (opt-in)
    except (RuntimeError, EOFError, ValueError, IndexError, KeyError, TypeError, OSError) as e:
        reason = diagnose_file(path)
        if reason.startswith("a damaged") and str(e):
            reason += f" ({str(e).splitlines()[0][:200]})"
        raise CheckpointFormatError(f"cannot read checkpoint '{path}': {reason}") from None


def _numpy_to_torch(obj: Any) -> Any:
    """numpy arrays (and numeric numpy scalars) -> tensors of the same shape (0-d stays 0-d:
    ``np.ascontiguousarray`` would make it 1-d); read-only or strided arrays are copied."""
    if isinstance(obj, np.ndarray):
        if not (obj.flags.c_contiguous and obj.flags.writeable):
            obj = np.array(obj, order="C")
        return torch.from_numpy(obj)
    if isinstance(obj, np.generic) and obj.dtype.kind in "biufc":
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, Mapping):
        return {k: _numpy_to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy_to_torch(v) for v in obj)
    return obj


def save_checkpoint(obj: Any, path: str) -> None:
    """``torch.save`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def extract_state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    """Find the model state dict inside a checkpoint object.

    Knows SlowFast / mvit (``model_state``), detectron2 and our engine (``model``), timm /
    torchvision exports (``state_dict`` / plain dicts).
    """
    if isinstance(obj, Mapping):
        for key in ("model_state", "model", "state_dict", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                if any(isinstance(v, torch.Tensor) for v in inner.values()):
                    return {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}
        if obj and any(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    raise CheckpointFormatError(
        "no state dict found: expected a dict of tensors, or one under 'model_state' (SlowFast/mvit), "
        f"'model' (detectron2 / mvit-tasks) or 'state_dict'; top-level keys: "
        f"{sorted(obj)[:20] if isinstance(obj, Mapping) else type(obj).__name__}"
    )
