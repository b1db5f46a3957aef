"""Inference over a test loader: every sample once, outputs fed to the task's evaluator."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.utils import comm


class TooManyFailuresError(RuntimeError):
    """More than ``TRAIN.MAX_FAILED_FRACTION`` of the samples could not be read."""


def to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move tensors inside (nested) dicts / lists / tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device, non_blocking) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_device(v, device, non_blocking) for v in obj)
    return obj


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` (``none`` | ``bf16`` | ``fp16``) on ``device``."""
    if precision == "none":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ValueError(f"TRAIN.MIXED_PRECISION must be none, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs a GPU; use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def run_inference(
    model: nn.Module,
    loader: Any,
    evaluator: DatasetEvaluator,
    device: torch.device,
    precision: str = "none",
    on_batch: Callable[[int, int], None] = lambda i, n: None,
    stats: Optional[Dict[str, int]] = None,
) -> Tuple[Dict[str, Dict[str, float]], List[Tuple[str, str]]]:
    """Evaluate ``model`` on ``loader``; returns ``(results, skipped)``.

    ``results`` is ``evaluator.evaluate()`` (gathered over ranks); ``skipped`` lists every
    ``(path, reason)`` the loaders of all ranks skipped. ``stats``, if given, receives
    ``{"samples": read + skipped, "skipped": ...}`` summed over ranks.
    """
    was_training = model.training
    model.eval()
    evaluator.reset()
    skipped: List[Tuple[str, str]] = []
    n = len(loader)
    seen = 0
    try:
        for i, batch in enumerate(loader):
            skipped += list(batch.get("skipped", []))
            seen += int(batch.get("num_samples", 1)) + len(batch.get("skipped", []))
            if batch.get("num_samples", 1) == 0:
                continue
            batch = to_device(batch, device)
            with autocast(device, precision):
                outputs = model(batch)
            evaluator.process(batch, outputs)
            on_batch(i + 1, n)
        results = evaluator.evaluate()
    finally:
        model.train(was_training)
    all_skipped = comm.gather_list(skipped)
    if stats is not None:
        stats.update(samples=sum(comm.all_gather(seen)), skipped=len(all_skipped))
    return results, all_skipped
