"""Training batch sampler (rank sharding, resume) and the unpadded inference sampler."""
from __future__ import annotations

import pytest

from mvit_tasks.engine.samplers import InferenceSampler, TrainBatchSampler, sample_seed


def _flat(batches):
    return [x for b in batches for x in b]


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_together_make_the_one_process_batches(world):
    one = list(TrainBatchSampler(50, 8, seed=3))
    parts = [list(TrainBatchSampler(50, 8, rank=r, world_size=world, seed=3)) for r in range(world)]
    assert len(one) == 50 // 8 == len(parts[0])
    for b, batch in enumerate(one):
        merged = [x for r in range(world) for x in parts[r][b]]
        assert merged == batch  # same samples, same per-sample seeds, rank-major order
        assert all(len(parts[r][b]) == 8 // world for r in range(world))


def test_epochs_differ_and_repeat_with_the_seed():
    s = TrainBatchSampler(40, 4, seed=1)
    s.set_epoch(0)
    e0 = _flat(s)
    s.set_epoch(1)
    e1 = _flat(s)
    assert sorted(i for i, _ in e0) == list(range(40)) and [i for i, _ in e0] != [i for i, _ in e1]
    t = TrainBatchSampler(40, 4, seed=1)
    t.set_epoch(1)
    assert _flat(t) == e1
    assert len({seed for _, seed in e0 + e1}) == 80  # every draw has its own seed


def test_resume_inside_an_epoch_skips_consumed_batches():
    s = TrainBatchSampler(30, 6, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start_batch=3)
    assert list(s) == full[3:] and len(s) == len(full) - 3


def test_sampler_rejects_batches_that_do_not_split():
    with pytest.raises(ValueError, match="divisible"):
        TrainBatchSampler(10, 5, world_size=2)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
def test_inference_sampler_counts_every_sample_once(world):
    seen = [i for r in range(world) for i in InferenceSampler(21, r, world)]
    assert seen == list(range(21))


def test_sample_seed_is_deterministic_and_spread():
    assert sample_seed(0, 1, 2) == sample_seed(0, 1, 2)
    assert len({sample_seed(0, e, p) for e in range(5) for p in range(200)}) == 1000
