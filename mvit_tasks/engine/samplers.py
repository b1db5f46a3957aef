"""Samplers: a resumable, rank-sharded training batch sampler and an exact inference sharder.

Training (:class:`TrainBatchSampler`): every epoch draws one permutation from
``(seed, epoch)``; global batch ``g`` is ``perm[g*B:(g+1)*B]`` and rank ``r`` of ``W`` takes
the ``r``-th of its ``W`` equal slices. The samples that make up a global batch therefore do
not depend on the number of processes (a 2-process run sees the same batches as a 1-process
run), and the sampler can restart in the middle of an epoch (``start_batch``) for exact
resume. Each index is yielded with a per-sample seed derived from ``(seed, epoch, position)``,
so augmentation is reproducible whatever the number of DataLoader workers.

Inference (:class:`InferenceSampler`): contiguous, unpadded shards (as detectron2's
``InferenceSampler``), so every sample is evaluated exactly once.
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

import torch
from torch.utils.data import Sampler

_SEED_MOD = 2**31 - 1


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A deterministic 31-bit seed for the sample at ``position`` of ``epoch``'s order."""
    x = (seed * 1_000_003 + epoch) * 2_654_435_761 + position * 40_503
    x ^= x >> 13
    return (x * 0x5BD1E995 + 0x9E3779B9) % _SEED_MOD


class TrainBatchSampler(Sampler[List[Tuple[int, int]]]):
    """Yields this rank's micro-batches of ``(index, sample_seed)`` pairs.

    Args:
        size: dataset length N.
        global_batch: samples per global micro-batch (all ranks together), divisible by
            ``world_size``.
        rank, world_size: this process and the number of processes.
        seed: base seed; the order of epoch ``e`` depends only on ``(seed, e)``.
        shuffle: random order (True) or 0..N-1.
        drop_last: drop the final incomplete global batch (default; keeps batches equal).
    """

    def __init__(self, size: int, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True, drop_last: bool = True) -> None:
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by the "
                             f"{world_size} processes")
        if size < 1:
            raise ValueError("the training set is empty")
        self.size, self.global_batch = size, global_batch
        self.rank, self.world_size = rank, world_size
        self.local_batch = global_batch // world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch, self.start_batch = 0, 0

    def batches_per_epoch(self) -> int:
        """Global micro-batches in one epoch."""
        full = self.size // self.global_batch
        return full if self.drop_last or self.size % self.global_batch == 0 else full + 1

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first ``start_batch`` batches (resume)."""
        self.epoch, self.start_batch = epoch, start_batch

    def order(self) -> torch.Tensor:
        """The epoch's permutation of ``0..N-1``."""
        if not self.shuffle:
            return torch.arange(self.size)
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
        return torch.randperm(self.size, generator=g)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        perm = self.order().tolist()
        n = self.batches_per_epoch()
        for b in range(self.start_batch, n):
            lo = b * self.global_batch
            chunk = list(range(lo, min(lo + self.global_batch, self.size)))
            per = -(-len(chunk) // self.world_size)
            mine = chunk[self.rank * per:(self.rank + 1) * per]
            yield [(perm[p], sample_seed(self.seed, self.epoch, p)) for p in mine]

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start_batch)


class InferenceSampler(Sampler[int]):
    """Rank ``r`` of ``W`` gets the contiguous slice ``[r*N//W, (r+1)*N//W)``; no padding."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size
        self.begin = size * rank // world_size
        self.end = size * (rank + 1) // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.begin, self.end))

    def __len__(self) -> int:
        return self.end - self.begin
