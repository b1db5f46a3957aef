"""Clip index sampling against hand-computed PySlowFast values (decoder.py, ssv2.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mvit_tasks.data.sampling import (
    clip_indices, clip_span, randint, random_clip_start, segment_frame_range, segment_indices,
    uniform_clip_start,
)


@pytest.mark.parametrize("make", [lambda s: np.random.default_rng(s),
                                  lambda s: torch.Generator().manual_seed(s)],
                         ids=["numpy", "torch"])
def test_random_clip_start_range_and_reproducibility(make):
    # 10 frames, span 7: starts 0..3 all reachable, nothing else
    rng = make(0)
    starts = {random_clip_start(10, 7, rng) for _ in range(200)}
    assert starts == {0, 1, 2, 3}
    a = [random_clip_start(300, 61, make(5)) for _ in range(3)]
    b = [random_clip_start(300, 61, make(5)) for _ in range(3)]
    assert a == b
    rng = make(5)
    seq = [random_clip_start(300, 61, rng) for _ in range(20)]
    assert len(set(seq)) > 1 and all(0 <= s <= 239 for s in seq)


def test_random_clip_start_short_or_unknown_video():
    rng = np.random.default_rng(0)
    assert random_clip_start(5, 7, rng) == 0
    assert random_clip_start(7, 7, rng) == 0
    assert random_clip_start(None, 7, rng) == 0


def test_uniform_clip_start_matches_slowfast():
    # get_start_end_idx(300, 64, i, 10): delta = 236, start = delta * i / 10 (floored here)
    assert [uniform_clip_start(300, 64, i, 10) for i in range(10)] == \
        [0, 23, 47, 70, 94, 118, 141, 165, 188, 212]
    # use_offset (MViTv2 configs): i * floor(236 / 4)
    assert [uniform_clip_start(300, 64, i, 5, use_offset=True) for i in range(5)] == \
        [0, 59, 118, 177, 236]
    assert uniform_clip_start(300, 64, 0, 1, use_offset=True) == 118  # centre clip
    assert uniform_clip_start(300, 64, 0, 1) == 0  # SlowFast without offset: the start
    assert uniform_clip_start(50, 64, 2, 3, use_offset=True) == 0  # shorter than the clip
    assert uniform_clip_start(None, 64, 2, 3) == 0
    with pytest.raises(ValueError, match="clip_idx"):
        uniform_clip_start(300, 64, 3, 3)


def test_clip_indices_and_span():
    assert clip_span(16, 4) == 61 and clip_span(4, 2.5) == 8
    assert clip_indices(10, 4, 4) == [10, 14, 18, 22]
    assert clip_indices(10, 4, 2.5) == [10, 12, 15, 17]  # target_fps resampling: floor
    assert clip_indices(10, 4, 4, num_video_frames=20) == [10, 14, 18, 19]  # clamp
    with pytest.raises(ValueError):
        clip_indices(0, 0, 1)


def test_segment_indices_test_mode_matches_slowfast():
    # 33 frames, 4 segments: seg = 8 -> (0,8) (8,16) (16,24) (24,32), middles
    assert segment_indices(33, 4) == [4, 12, 20, 28]
    # 10 frames: seg = 2.25 -> bounds 0, 2, 4 (np.round(4.5) = 4), 7, 9
    assert segment_indices(10, 4) == [1, 3, 5, 8]
    # more segments than frames: repeats, still in range
    assert segment_indices(3, 6) == [0, 0, 1, 1, 1, 2]
    # several views spread inside each segment: start + 8 * (v + 1) // 4
    assert segment_indices(33, 4, view=0, num_views=3) == [2, 10, 18, 26]
    assert segment_indices(33, 4, view=2, num_views=3) == [6, 14, 22, 30]


def test_segment_indices_train_mode_random_within_segments():
    rng = torch.Generator().manual_seed(0)
    draws = np.array([segment_indices(10, 4, rng) for _ in range(400)])
    bounds = [(0, 2), (2, 4), (4, 7), (7, 9)]  # inclusive, as random.randint in SlowFast
    for i, (lo, hi) in enumerate(bounds):
        assert set(draws[:, i].tolist()) == set(range(lo, hi + 1))
    assert segment_indices(10, 4, torch.Generator().manual_seed(3)) == \
        segment_indices(10, 4, torch.Generator().manual_seed(3))


def test_segment_frame_range():
    assert segment_frame_range(300, 30.0, 1.0, 2.0) == (30, 60)
    assert segment_frame_range(300, 30.0, None, None) == (0, 300)
    assert segment_frame_range(300, 30.0, 9.5, 20.0) == (285, 300)  # clamped to the video
    assert segment_frame_range(None, 30.0, 1.0, None) == (30, None)
    assert segment_frame_range(100, 29.97, 0.5, 1.5) == (15, 45)


def test_randint_rejects_other_rngs():
    with pytest.raises(TypeError, match="Generator"):
        randint(np.random.RandomState(0), 0, 3)
    with pytest.raises(ValueError, match="empty range"):
        randint(np.random.default_rng(0), 3, 2)
