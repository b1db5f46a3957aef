"""AVA keyframe dataset: a clip centred on each annotated keyframe, its person boxes and labels.

Semantics follow PySlowFast's ``slowfast/datasets/ava_dataset.py``: the clip has ``T`` frames
``tau`` apart, frame ``i`` at ``centre - T * tau // 2 + i * tau`` clamped to the video (where
``centre = (s - start_sec) * fps`` for keyframe second ``s``); training applies short-side
jitter, a random square crop and a horizontal flip to clip and boxes together; testing resizes
the short side and keeps the full frame (SlowFast's ``test`` split, no crop). Frames come
from SlowFast's extracted-frame layout (``frame_lists/*.csv``: 30-fps frames, indexed as above)
or from a video file per ``video_id`` (the 15-min segment, decoded with PyAV, seeking to the
clip). A video is sampled on the same ``fps`` time grid as the extracted frames, whatever its
own rate: grid index ``i`` (clamped at 0) is the decoded frame whose presentation time is
nearest to ``i / fps`` seconds from the stream start (ties: the earlier frame; past the end:
the last frame), the frame ``ffmpeg -r 30`` (SlowFast's extraction) keeps for that slot up to
its rounding.

Randomness of a training sample comes from a ``torch.Generator`` seeded from ``(seed,
sample_seed, index)``. Unreadable media give a skip marker that
:func:`mvit_tasks.projects.ava.collate.ava_collate` counts.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from mvit_tasks.data.collate import skip_marker
from mvit_tasks.data.frames import read_frame_files
from mvit_tasks.data.transforms import short_side_size, to_normalized_float
from mvit_tasks.data.video_io import VideoDecodeError, read_frames_at_times

from .converters.ava import KeyframeRecord, keyframe_frame_index

Media = Union[str, List[str]]  # a video file, or the frame files of one video in order


def clip_indices(centre: int, num_frames: int, sampling_rate: int,
                 total: Optional[int]) -> List[int]:
    """SlowFast's ``get_sequence``: ``num_frames`` indices ``sampling_rate`` apart with the
    centre frame at position ``num_frames // 2``, clamped to ``[0, total - 1]``."""
    start = centre - (num_frames * sampling_rate) // 2
    idx = [start + i * sampling_rate for i in range(num_frames)]
    hi = (total - 1) if total else None
    return [max(0, i if hi is None else min(i, hi)) for i in idx]


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip pixel ``x1, y1, x2, y2`` boxes (N, 4) to ``[0, width - 1] x [0, height - 1]``, as
    SlowFast's ``clip_boxes_to_image`` does right after scaling the normalised boxes."""
    out = boxes.clone()
    out[:, 0::2] = out[:, 0::2].clamp(0.0, width - 1.0)
    out[:, 1::2] = out[:, 1::2].clamp(0.0, height - 1.0)
    return out


def resize_clip_and_boxes(video: torch.Tensor, boxes: torch.Tensor,
                          short_side: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resize ``T x C x H x W`` to short side ``short_side``; ``boxes`` (N, 4) pixel
    ``x1, y1, x2, y2`` are scaled by the same factors."""
    h, w = video.shape[-2:]
    nh, nw = short_side_size(h, w, short_side)
    if (nh, nw) != (h, w):
        video = F.interpolate(video.float(), size=(nh, nw), mode="bilinear",
                              align_corners=False, antialias=True).round_().clamp_(0, 255)
        video = video.to(torch.uint8)
    scale = torch.tensor([nw / w, nh / h, nw / w, nh / h], dtype=boxes.dtype)
    return video, boxes * scale


def crop_clip_and_boxes(video: torch.Tensor, boxes: torch.Tensor, top: int, left: int,
                        size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Crop ``size x size`` at ``(top, left)``; boxes are shifted and clipped to the crop."""
    video = video[..., top:top + size, left:left + size]
    shift = torch.tensor([left, top, left, top], dtype=boxes.dtype)
    return video, (boxes - shift).clamp_(0, size)


def hflip_clip_and_boxes(video: torch.Tensor,
                         boxes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mirror ``... x W`` horizontally; box ``x1, x2`` become ``W - x2, W - x1``."""
    w = video.shape[-1]
    out = boxes.clone()
    out[:, 0], out[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return video.flip(-1), out


class AvaKeyframeDataset(torch.utils.data.Dataset):
    """Clips around AVA keyframes with person boxes and multi-hot labels.

    Args:
        records: one per keyframe (boxes normalised ``x1, y1, x2, y2``; keyframes without
            boxes must be removed beforehand).
        media: ``{video_id: video file path or list of frame files}``.
        mode: ``"train"`` (jitter, crop, flip) or ``"test"`` (short-side resize, full frame).
        num_frames, sampling_rate: ``T`` and ``tau`` of the clip (in frames of the ``fps`` grid).
        num_classes: width of the label vector; action id ``a`` is column ``a - 1``.
        fps, start_sec: keyframe second ``s`` is frame ``(s - start_sec) * fps`` of the frame
            list, or of the time grid at ``fps`` on a video (not the video's own rate).
        train_jitter_scales, train_crop_size: training short side range and square crop.
        test_short_side: test short side.
        flip: random horizontal flip in training.
        mean, std: normalisation of ``[0, 1]`` pixels.
        seed: base seed of the augmentation.
        decode_threads: FFmpeg threading for video files.

    A sample is ``{"video": 3 x T x H x W float, "boxes": (N, 4) float32 pixel x1, y1, x2, y2
    in the clip, "labels": (N, num_classes) float32 multi-hot, "norm_boxes": (N, 4) the record's
    normalised boxes, "video_id": str, "timestamp": int}``.
    """

    def __init__(self, records: Sequence[KeyframeRecord], media: Mapping[str, Media], mode: str,
                 num_frames: int, sampling_rate: int, num_classes: int, fps: float = 30.0,
                 start_sec: float = 900.0, train_jitter_scales: Tuple[int, int] = (256, 320),
                 train_crop_size: int = 224, test_short_side: int = 256, flip: bool = True,
                 mean: Sequence[float] = (0.45, 0.45, 0.45),
                 std: Sequence[float] = (0.225, 0.225, 0.225), seed: int = 0,
                 decode_threads: Optional[str] = None) -> None:
        if mode not in ("train", "test"):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        empty = [r.source for r in records if len(r.boxes) == 0]
        if empty:
            raise ValueError(f"{len(empty)} keyframes without boxes, first at {empty[0]}")
        self.records = list(records)
        self.media = dict(media)
        self.mode, self.num_frames, self.sampling_rate = mode, num_frames, sampling_rate
        self.num_classes, self.fps, self.start_sec = num_classes, fps, start_sec
        self.jitter, self.crop_size = tuple(train_jitter_scales), train_crop_size
        self.test_short_side, self.flip = test_short_side, flip
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed, self.epoch, self.decode_threads = seed, 0, decode_threads

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def read_clip(self, rec: KeyframeRecord) -> torch.Tensor:
        """``T x H x W x 3`` uint8 clip of ``rec``; raises FileNotFoundError / VideoDecodeError."""
        media = self.media.get(rec.video_id)
        if media is None:
            raise FileNotFoundError(f"no video or frames for video_id {rec.video_id!r}")
        centre = keyframe_frame_index(rec.timestamp, self.fps, self.start_sec)
        if isinstance(media, str):  # the grid frames; the end clamps to the last frame
            idx = clip_indices(centre, self.num_frames, self.sampling_rate, None)
            times = [i / self.fps for i in idx]
            return read_frames_at_times(media, times, thread_type=self.decode_threads)[0]
        idx = clip_indices(centre, self.num_frames, self.sampling_rate, len(media))
        return read_frame_files(media, idx, pad_short=True)

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Dict[str, Any]:
        index, sample_seed = item if isinstance(item, tuple) else (item, self.epoch)
        rec = self.records[index]
        try:
            clip = self.read_clip(rec)
        except (FileNotFoundError, VideoDecodeError, OSError) as e:
            where = self.media.get(rec.video_id, rec.video_id)
            where = where if isinstance(where, str) else os.path.dirname(where[0]) if where \
                else rec.video_id
            return skip_marker(where, f"{rec.video_id},{rec.timestamp}: {e}")
        video = clip.permute(0, 3, 1, 2)  # T x C x H x W
        h, w = video.shape[-2:]
        boxes = torch.from_numpy(rec.boxes.astype(np.float32)) * torch.tensor([w, h, w, h])
        boxes = clip_boxes(boxes, h, w)  # SlowFast: boxes outside the frame are clipped to it
        if self.mode == "train":
            gen = torch.Generator().manual_seed(hash((self.seed, sample_seed, index)) % (2**63))
            lo, hi = self.jitter
            size = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            video, boxes = resize_clip_and_boxes(video, boxes, size)
            h, w = video.shape[-2:]
            c = min(self.crop_size, h, w)
            top = int(torch.randint(0, h - c + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - c + 1, (1,), generator=gen))
            video, boxes = crop_clip_and_boxes(video, boxes, top, left, c)
            if self.flip and float(torch.rand((1,), generator=gen)) < 0.5:
                video, boxes = hflip_clip_and_boxes(video, boxes)
        else:
            video, boxes = resize_clip_and_boxes(video, boxes, self.test_short_side)
        labels = torch.zeros(len(rec.labels), self.num_classes, dtype=torch.float32)
        for j, acts in enumerate(rec.labels):
            for a in acts:
                labels[j, a - 1] = 1.0
        return {"video": to_normalized_float(video, self.mean, self.std), "boxes": boxes,
                "labels": labels, "norm_boxes": torch.from_numpy(rec.boxes.astype(np.float32)),
                "video_id": rec.video_id, "timestamp": rec.timestamp}
