"""Process launching for torch.distributed (DDP): ``--num-gpus`` / ``--num-machines`` or torchrun.

Semantics follow detectron2's ``launch``: ``num_processes_per_machine x num_machines``
processes; rank ``machine_rank * per_machine + local_rank``. NCCL when CUDA is used, Gloo on
CPU (``--num-gpus 2`` without a GPU starts 2 CPU processes: useful for tests and debugging).
Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in the environment) the process
group is initialised from the environment and nothing is spawned.
"""
from __future__ import annotations

import datetime
import os
import socket
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mvit_tasks.utils import comm


def find_free_port() -> int:
    """A free TCP port on localhost (for single-machine launches)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def under_torchrun() -> bool:
    """True when launched by torchrun / torch.distributed.run (or SLURM wrappers that set it)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def select_device(use_cuda: bool) -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is wanted and available, else CPU."""
    if use_cuda and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def launch(
    main_fn: Callable[..., Any],
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = "auto",
    args: Sequence[Any] = (),
    backend: str = "auto",
    timeout_minutes: int = 30,
) -> Any:
    """Run ``main_fn(*args)`` in every process of the job; returns rank 0's result when local.

    Args:
        main_fn: the per-process entry point (picklable: a module-level function).
        num_processes_per_machine: processes on this machine (GPUs, or CPU workers).
        num_machines, machine_rank: multi-machine jobs (``dist_url`` must then be reachable,
            e.g. ``tcp://host0:29500``).
        dist_url: ``tcp://host:port``, ``env://`` or ``auto`` (a free local port, one machine).
        backend: ``nccl`` | ``gloo`` | ``auto`` (NCCL when CUDA is available).
    """
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if under_torchrun():
        _init_from_env(backend, timeout_minutes)
        try:
            return main_fn(*args)
        finally:
            _destroy()
    world = num_processes_per_machine * num_machines
    if world <= 1:
        return main_fn(*args)
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url='auto' only works on one machine; pass tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(
        _worker,
        nprocs=num_processes_per_machine,
        args=(main_fn, world, num_processes_per_machine, machine_rank, dist_url, backend,
              timeout_minutes, args, queue),
        daemon=False,
        start_method="spawn",
    )
    return queue.get() if machine_rank == 0 and not queue.empty() else None


def _worker(local_rank: int, main_fn: Callable[..., Any], world: int, per_machine: int,
            machine_rank: int, dist_url: str, backend: str, timeout_minutes: int,
            args: Sequence[Any], queue: Any) -> None:
    rank = machine_rank * per_machine + local_rank
    os.environ.update(LOCAL_RANK=str(local_rank), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(per_machine))
    dist.init_process_group(backend=backend, init_method=dist_url, world_size=world, rank=rank,
                            timeout=datetime.timedelta(minutes=timeout_minutes))
    try:
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        comm.synchronize()
        result = main_fn(*args)
        if rank == 0:
            queue.put(result)
    finally:
        _destroy()


def _init_from_env(backend: str, timeout_minutes: int) -> None:
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://",
                                timeout=datetime.timedelta(minutes=timeout_minutes))


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
