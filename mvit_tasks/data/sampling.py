"""Temporal sampling: which frame indices of a video make a clip.

Semantics follow PySlowFast (facebookresearch/SlowFast):

* Kinetics-style clips (``slowfast/datasets/decoder.py``): ``T`` frames spaced ``tau`` source
  frames apart. Training takes a random start (:func:`random_clip_start`); testing takes
  ``num_clips`` uniformly spaced starts (:func:`uniform_clip_start`, ``get_start_end_idx``),
  either ``delta * i / num_clips`` or, with ``use_offset`` (``DATA.USE_OFFSET_SAMPLING``, set in
  the MViTv2 Kinetics configs), ``i * floor(delta / (num_clips - 1))`` / the centre clip.
* Something-Something v2 (``slowfast/datasets/ssv2.py``, ``get_seq_frames``): the video is cut
  into ``T`` segments; training takes a random frame of each segment, testing its middle
  (:func:`segment_indices`).

All functions are pure: randomness comes from the ``rng`` argument, a ``numpy.random.Generator``
or a ``torch.Generator``, so a clip is reproducible from the generator's seed.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

Rng = Union[np.random.Generator, torch.Generator]


def randint(rng: Rng, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` (both inclusive) from a numpy or torch generator."""
    if high < low:
        raise ValueError(f"empty range [{low}, {high}]")
    if isinstance(rng, torch.Generator):
        return int(torch.randint(low, high + 1, (1,), generator=rng).item())
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(low, high + 1))
    raise TypeError(f"rng must be a numpy.random.Generator or torch.Generator, got {type(rng)}")


def uniform(rng: Rng, low: float, high: float) -> float:
    """A uniform float in ``[low, high)`` from a numpy or torch generator."""
    if isinstance(rng, torch.Generator):
        return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))
    if isinstance(rng, np.random.Generator):
        return float(rng.uniform(low, high))
    raise TypeError(f"rng must be a numpy.random.Generator or torch.Generator, got {type(rng)}")


def clip_span(num_frames: int, step: float) -> int:
    """Source frames a clip of ``num_frames`` frames ``step`` apart covers, first to last."""
    if num_frames < 1 or step <= 0:
        raise ValueError(f"num_frames must be >= 1 and step > 0, got {num_frames}, {step}")
    return int(math.floor((num_frames - 1) * step)) + 1


def random_clip_start(num_video_frames: Optional[int], span: int, rng: Rng) -> int:
    """Training clip start: uniform over every start whose clip fits in the video.

    Args:
        num_video_frames: frames in the video (``None`` when unknown: the clip starts at 0).
        span: frames the clip covers (:func:`clip_span`).
        rng: the random generator.

    Returns:
        An integer in ``[0, max(num_video_frames - span, 0)]``.
    """
    if not num_video_frames or num_video_frames <= span:
        return 0
    return randint(rng, 0, num_video_frames - span)


def uniform_clip_start(
    num_video_frames: Optional[int],
    clip_size: float,
    clip_idx: int,
    num_clips: int,
    use_offset: bool = False,
) -> int:
    """Test clip start of view ``clip_idx`` of ``num_clips`` (SlowFast ``get_start_end_idx``).

    With ``delta = max(num_video_frames - clip_size, 0)``: ``floor(delta * clip_idx /
    num_clips)``; with ``use_offset``: ``floor(delta / 2)`` for a single clip, else
    ``clip_idx * floor(delta / (num_clips - 1))`` (first clip at 0, last one at the end).

    Args:
        num_video_frames: frames in the video (``None`` when unknown: start 0).
        clip_size: SlowFast's clip size ``num_frames * step`` in source frames.
        clip_idx: the temporal view, ``0 <= clip_idx < num_clips``.
        num_clips: number of temporal views.
        use_offset: SlowFast's ``DATA.USE_OFFSET_SAMPLING``.
    """
    if not 0 <= clip_idx < num_clips:
        raise ValueError(f"clip_idx must be in [0, {num_clips}), got {clip_idx}")
    if not num_video_frames:
        return 0
    delta = max(num_video_frames - clip_size, 0.0)
    if use_offset:
        if num_clips == 1:
            return int(math.floor(delta / 2))
        return clip_idx * int(math.floor(delta / (num_clips - 1)))
    return int(math.floor(delta * clip_idx / num_clips))


def clip_indices(
    start: int, num_frames: int, step: float, num_video_frames: Optional[int] = None
) -> List[int]:
    """Frame indices ``start + floor(i * step)``, ``i < num_frames``; clamped to the last frame
    of the video when ``num_video_frames`` is given (SlowFast's ``temporal_sampling`` clamp)."""
    if num_frames < 1 or step <= 0:
        raise ValueError(f"num_frames must be >= 1 and step > 0, got {num_frames}, {step}")
    out = [start + int(math.floor(i * step + 1e-9)) for i in range(num_frames)]
    if num_video_frames:
        out = [min(i, num_video_frames - 1) for i in out]
    return out


def segment_indices(
    num_video_frames: int,
    num_segments: int,
    rng: Optional[Rng] = None,
    view: int = 0,
    num_views: int = 1,
) -> List[int]:
    """SSv2 segment sampling (SlowFast ``get_seq_frames``): one frame per segment.

    ``seg = (num_video_frames - 1) / num_segments``; segment ``i`` spans frames
    ``round(seg * i)`` .. ``round(seg * (i + 1))`` (both inclusive, as SlowFast).

    Args:
        num_video_frames: frames in the video (>= 1).
        num_segments: frames in the clip (T).
        rng: training: a random frame of each segment. ``None``: testing.
        view, num_views: testing: frame ``start + (end - start) * (view + 1) // (num_views + 1)``
            of each segment; with one view that is SlowFast's middle ``(start + end) // 2``.

    Returns:
        ``num_segments`` non-decreasing indices in ``[0, num_video_frames - 1]``.
    """
    if num_video_frames < 1 or num_segments < 1:
        raise ValueError(
            f"num_video_frames and num_segments must be >= 1, got {num_video_frames}, "
            f"{num_segments}"
        )
    if not 0 <= view < num_views:
        raise ValueError(f"view must be in [0, {num_views}), got {view}")
    seg = (num_video_frames - 1) / num_segments
    out = []
    for i in range(num_segments):
        # np.round: round half to even, as SlowFast
        start, end = int(np.round(seg * i)), int(np.round(seg * (i + 1)))
        if rng is not None:
            out.append(randint(rng, start, end))
        else:
            out.append(start + (end - start) * (view + 1) // (num_views + 1))
    return out


def segment_frame_range(
    num_video_frames: Optional[int], fps: float, start_sec: Optional[float],
    end_sec: Optional[float],
) -> Tuple[int, Optional[int]]:
    """Frames ``[first, end)`` whose timestamps ``i / fps`` lie in ``[start_sec, end_sec)``.

    ``None`` bounds mean the start / end of the video; ``end`` is clamped to the frame count
    and is ``None`` when the count is unknown and no ``end_sec`` is given.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    first = 0 if start_sec is None else max(0, int(math.ceil(start_sec * fps - 1e-6)))
    end = num_video_frames
    if end_sec is not None:
        end = int(math.ceil(end_sec * fps - 1e-6))
        if num_video_frames is not None:
            end = min(end, num_video_frames)
    return first, end
