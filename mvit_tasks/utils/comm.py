"""torch.distributed helpers that also work without a process group (one process).

Semantics follow detectron2's ``comm`` module: rank 0 is the main process; object gathering
uses ``all_gather_object`` so it works with Gloo (CPU) and NCCL (GPU) alike.
"""
from __future__ import annotations

from typing import Any, List

import torch
import torch.distributed as dist


def is_dist() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (no-op for one process)."""
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def all_gather(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if get_world_size() == 1:
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_list(items: List[Any]) -> List[Any]:
    """Concatenate each rank's list, in rank order, on every rank."""
    return [x for part in all_gather(items) for x in part]


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over ranks (a new tensor; ``t`` unchanged)."""
    if get_world_size() == 1:
        return t.clone()
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / get_world_size()
