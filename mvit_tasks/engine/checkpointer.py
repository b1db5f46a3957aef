"""Training checkpoints: atomic ``last`` / periodic / ``best`` files and exact resume.

Layout under ``OUTPUT_DIR/checkpoints/``: ``last.pth`` (rewritten every epoch and every
``TRAIN.CHECKPOINT_ITER_PERIOD`` iterations), ``epoch_0005.pth`` (every
``TRAIN.CHECKPOINT_PERIOD`` epochs), ``best.pth`` (best ``TRAIN.BEST_METRIC``). Files are
written to a temporary name and renamed (:func:`mvit_tasks.checkpoint.io.save_checkpoint`), so a
crash mid-write never leaves a broken ``last.pth``; should one be broken all the same (a disk
that filled up, a copy cut short), :meth:`Checkpointer.load_latest` falls back to the newest
checkpoint that loads.

A checkpoint holds ``model`` (the unwrapped model's state dict: loadable by ``MODEL.WEIGHTS``),
and the training state: optimizer, AMP scaler, EMA, epoch, position in the epoch, iteration,
best metric, every rank's RNG states (python, numpy, torch, CUDA) and the config. Loading uses
``weights_only=True`` (numpy RNG state is stored as tensors for that reason).
"""
from __future__ import annotations

import glob
import logging
import os
import random
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from mvit_tasks.checkpoint.io import CheckpointFormatError, load_checkpoint_file, save_checkpoint
from mvit_tasks.utils import comm

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def capture_rng() -> Dict[str, Any]:
    """This process's RNG states in a ``weights_only``-loadable form."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Checkpointer:
    """Writes and reads the engine's checkpoints in ``<output_dir>/checkpoints``."""

    def __init__(self, output_dir: str) -> None:
        self.dir = os.path.join(output_dir, "checkpoints")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.pth")

    def has_last(self) -> bool:
        return os.path.isfile(self.path("last"))

    def save(self, names: List[str], state: Dict[str, Any]) -> None:
        """Write ``state`` as each of ``names`` (main process only; call on every rank)."""
        rng = comm.all_gather(capture_rng())  # every rank's RNG, collected on all ranks
        if not comm.is_main_process():
            return
        os.makedirs(self.dir, exist_ok=True)
        obj = {**state, "rng": rng, "format_version": FORMAT_VERSION}
        for name in names:
            save_checkpoint(obj, self.path(name))

    def load_latest(self) -> Tuple[Dict[str, Any], str]:
        """``(state, path)`` of ``last.pth``, or, when it cannot be read, of the newest other
        checkpoint of this folder that can (``epoch_NNNN.pth`` / ``best.pth``, newest file
        first), with a WARNING naming both; raises ``last.pth``'s error when none can."""
        last = self.path("last")
        try:
            return self.load(last), last
        except (CheckpointFormatError, ValueError, EOFError, OSError) as error:
            first_error = error
        others = [p for p in glob.glob(os.path.join(self.dir, "*.pth")) if p != last]
        for path in sorted(others, key=lambda p: (os.path.getmtime(p), p), reverse=True):
            try:
                state = self.load(path)
            except (CheckpointFormatError, ValueError, EOFError, OSError):
                continue
            if comm.is_main_process():
                logger.warning("cannot resume from %s (%s); resuming from %s, the newest "
                               "checkpoint that can be read (epoch %s, iteration %s)", last,
                               first_error, path, state["epoch"], state["iteration"])
            return state, path
        raise first_error

    def load(self, path: Optional[str] = None) -> Dict[str, Any]:
        """Read a training checkpoint (default ``last.pth``) and restore this rank's RNG."""
        path = path or self.path("last")
        obj = load_checkpoint_file(path)
        if not isinstance(obj, dict) or "model" not in obj or "iteration" not in obj:
            raise ValueError(f"'{path}' is not an mvit-tasks training checkpoint (no training "
                             "state); use MODEL.WEIGHTS to start from it instead of --resume")
        rng = obj.get("rng") or []
        rank = comm.get_rank()
        if len(rng) == comm.get_world_size():
            restore_rng(rng[rank])
        elif rng:  # a different number of processes: the run continues, not bit-exactly
            restore_rng(rng[rank % len(rng)])
        return obj


def load_model_weights(model: torch.nn.Module, path: str, source: str = "auto",
                       allow_unsafe: bool = False, use_ema: bool = False) -> None:
    """Weights for evaluation: an mvit-tasks training checkpoint is loaded strictly as is (its
    EMA weights with ``use_ema`` when it has them, as ``TRAIN.EMA.EVAL`` evaluates during
    training); anything else goes through the converters
    (:func:`mvit_tasks.checkpoint.loader.load_weights`)."""
    obj = load_checkpoint_file(path, allow_unsafe)
    if isinstance(obj, dict) and "format_version" in obj and isinstance(obj.get("model"), dict):
        ema = obj.get("ema")
        if use_ema and isinstance(ema, dict) and ema.get("shadow"):
            state = dict(obj["model"])
            state.update({k: v.to(state[k].dtype) for k, v in ema["shadow"].items()})
            model.load_state_dict(state)
        else:
            model.load_state_dict(obj["model"])
        return
    from mvit_tasks.checkpoint.loader import load_weights

    load_weights(model, obj, source=source, allow_unsafe=allow_unsafe)
