"""Clip / image classification dataset over canonical manifest records.

Semantics follow PySlowFast's ``slowfast/datasets/kinetics.py`` (random clip in training;
``num_ensemble_views x num_spatial_crops`` test views, dataset index ``i`` -> record
``i // (views * crops)``, temporal view ``(i % (views * crops)) // crops``, spatial crop
``i % crops``), ``ssv2.py`` (segment sampling) and the MViT ImageNet recipe (``image``), with the
SSv2 left/right label swap on flipped clips of mmaction2 (``flip_label_map``).

Every sample's randomness comes from one ``torch.Generator`` seeded from ``(seed,
sample_seed, index)``, where ``sample_seed`` arrives with the index (``dataset[(index,
sample_seed)]``, as the engine's sampler yields it) or is the epoch set by :meth:`set_epoch`
for plain integer indices; a sample is therefore the same whichever DataLoader worker makes it.

Unreadable media (missing, empty, truncated, undecodable file, empty folder, segment outside
the video) give a skip marker ``{"skipped": (path, reason)}`` that
:func:`mvit_tasks.data.collate.collate_samples` removes from the batch and reports.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mvit_tasks.data.collate import skip_marker
from mvit_tasks.data.frames import media_info, read_frame_folder, read_image
from mvit_tasks.data.manifest import ClipRecord
from mvit_tasks.data.sampling import (
    clip_indices, clip_span, random_clip_start, segment_frame_range, segment_indices,
    uniform_clip_start,
)
from mvit_tasks.data.transforms import (
    SLOWFAST_MEAN, SLOWFAST_STD, ClipTestTransform, ClipTrainTransform,
)
from mvit_tasks.data.video_io import VideoDecodeError, VideoInfo, read_frames

Sample = Dict[str, Any]
_MODES = ("train", "test")
_SAMPLINGS = ("random", "segment", "image")


class ClipClassificationDataset(torch.utils.data.Dataset):
    """Decoded, sampled and augmented clips (or images) with their labels.

    Args:
        records: manifest rows (video file, frame folder or image path; label; optional
            ``start_sec`` / ``end_sec`` segment, decoded only inside it).
        mode: ``"train"`` (random sampling and augmentation) or ``"test"`` (deterministic
            views).
        num_frames: frames per clip (T); ignored for images.
        sampling_rate: step between clip frames (tau) for ``random`` sampling, at
            ``target_fps``.
        sampling: ``"random"`` (Kinetics clips), ``"segment"`` (SSv2: one frame per segment)
            or ``"image"`` (image files, output ``3 x H x W``).
        num_ensemble_views: temporal views per record at test time.
        num_spatial_crops: spatial crops per view at test time (1 = centre, 3 = start /
            centre / end of the long side).
        train_crop_size, test_crop_size: output size.
        train_jitter_scales: short-side range of the training jitter.
        test_short_side: test resize of the short side (default: ``test_crop_size``).
        random_resized_crop, rrc_scale, rrc_ratio: random resized crop instead of jitter + crop.
        flip: random horizontal flip in training.
        flip_label_map: label swap applied when a clip is flipped (SSv2 left/right classes).
        rand_augment: timm RandAugment string, e.g. ``"rand-m7-n4-mstd0.5-inc1"``.
        random_erasing_prob: probability of random erasing (after normalisation).
        mean, std: normalisation of ``[0, 1]`` pixel values.
        num_repeated_samples: training: augmented copies of each decoded clip (a list of
            that many sample dicts is returned).
        seed: base seed of the augmentation.
        decode_threads: FFmpeg threading (``"AUTO"``, ``"FRAME"``, ``"SLICE"`` or ``None``).
        target_fps: frame rate ``sampling_rate`` refers to (SlowFast ``DATA.TARGET_FPS``);
            ``None`` = the video's own rate.
        use_offset_sampling: SlowFast ``DATA.USE_OFFSET_SAMPLING`` for the test clip starts.
        folder_fps: frame rate of frame folders (for ``start_sec`` / ``end_sec`` and
            ``target_fps``).
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        mode: str,
        num_frames: int,
        sampling_rate: int,
        sampling: str = "random",
        num_ensemble_views: int = 1,
        num_spatial_crops: int = 1,
        train_crop_size: int = 224,
        test_crop_size: int = 224,
        train_jitter_scales: Tuple[int, int] = (256, 320),
        test_short_side: Optional[int] = None,
        random_resized_crop: bool = False,
        rrc_scale: Tuple[float, float] = (0.08, 1.0),
        rrc_ratio: Tuple[float, float] = (0.75, 1.333),
        flip: bool = True,
        flip_label_map: Optional[Dict[int, int]] = None,
        rand_augment: Optional[str] = None,
        random_erasing_prob: float = 0.0,
        mean: Sequence[float] = SLOWFAST_MEAN,
        std: Sequence[float] = SLOWFAST_STD,
        num_repeated_samples: int = 1,
        seed: int = 0,
        decode_threads: Optional[str] = "AUTO",
        target_fps: Optional[float] = None,
        use_offset_sampling: bool = True,
        folder_fps: float = 30.0,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if sampling not in _SAMPLINGS:
            raise ValueError(f"sampling must be one of {_SAMPLINGS}, got {sampling!r}")
        if sampling != "image" and (num_frames < 1 or sampling_rate < 1):
            raise ValueError(f"num_frames and sampling_rate must be >= 1, got {num_frames}, "
                             f"{sampling_rate}")
        if num_ensemble_views < 1 or num_spatial_crops not in (1, 3):
            raise ValueError(f"need num_ensemble_views >= 1 and num_spatial_crops in (1, 3), "
                             f"got {num_ensemble_views}, {num_spatial_crops}")
        if sampling == "image" and num_ensemble_views != 1:
            raise ValueError("image sampling has no temporal views (num_ensemble_views=1)")
        if num_repeated_samples < 1 or (mode == "test" and num_repeated_samples != 1):
            raise ValueError(f"num_repeated_samples must be >= 1 (1 in test mode), got "
                             f"{num_repeated_samples}")
        if target_fps is not None and target_fps <= 0:
            raise ValueError(f"target_fps must be > 0, got {target_fps}")
        self.records = list(records)
        self.mode, self.sampling = mode, sampling
        self.num_frames, self.sampling_rate = num_frames, sampling_rate
        self.num_views = num_ensemble_views if mode == "test" else 1
        self.num_crops = num_spatial_crops if mode == "test" else 1
        self.flip_label_map = dict(flip_label_map or {})
        self.num_repeated_samples = num_repeated_samples
        self.seed = seed
        self.epoch = 0
        self.decode_threads = decode_threads
        self.target_fps, self.use_offset = target_fps, use_offset_sampling
        self.folder_fps = folder_fps
        self._cache: Optional[Dict[int, Tuple[torch.Tensor, VideoInfo]]] = None
        if mode == "train":
            self.transform: Any = ClipTrainTransform(
                train_crop_size, tuple(train_jitter_scales), random_resized_crop,
                tuple(rrc_scale), tuple(rrc_ratio), flip, rand_augment, random_erasing_prob,
                mean=mean, std=std)
        else:
            self.transform = ClipTestTransform(test_crop_size, test_short_side, mean, std)

    # --------------------------------------------------------------------------- protocol
    def __len__(self) -> int:
        return len(self.records) * self.num_views * self.num_crops

    @property
    def num_videos(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Seed of plain integer indices (tuple indices carry their own sample seed)."""
        self.epoch = int(epoch)

    def enable_cache(self) -> None:
        """Keep every decoded video (all frames) / image in memory; for small datasets read in
        one process (each DataLoader worker would hold its own copy)."""
        self._cache = {}

    def __getitem__(self, idx: Union[int, Tuple[int, int]]) -> Union[Sample, List[Sample]]:
        """One sample: ``{"video": float 3 x T x H x W (images 3 x H x W), "label": int,
        "video_id": str, "view": int, "index": int (record)}``; a list of
        ``num_repeated_samples`` such dicts in training when that is > 1; or a skip marker."""
        if isinstance(idx, (tuple, list)):
            index, sample_seed = int(idx[0]), int(idx[1])
        else:
            index, sample_seed = int(idx), self.epoch
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        per_record = self.num_views * self.num_crops
        rec_idx, view = divmod(index, per_record)
        temporal, spatial = divmod(view, self.num_crops)
        record = self.records[rec_idx]
        gen = self._generator(index, sample_seed) if self.mode == "train" else None
        try:
            frames = self._load(rec_idx, record, gen, temporal)
        except (OSError, VideoDecodeError) as e:
            reason = e.reason if isinstance(e, VideoDecodeError) else str(e)
            if record.line:
                reason += f" (manifest line {record.line})"
            return skip_marker(record.path, reason)

        base = {"video_id": record.video_id, "view": view, "index": rec_idx}
        if self.mode == "test":
            crop_idx = spatial if self.num_crops > 1 else 1
            return {"video": self.transform(frames, crop_idx), "label": record.label, **base}
        samples = []
        for _ in range(self.num_repeated_samples):
            video, params = self.transform(frames, gen)
            label = record.label
            if params["flipped"]:
                label = self.flip_label_map.get(label, label)
            samples.append({"video": video, "label": label, **base})
        return samples[0] if self.num_repeated_samples == 1 else samples

    # ---------------------------------------------------------------------------- helpers
    def _generator(self, index: int, sample_seed: int) -> torch.Generator:
        mask = (1 << 64) - 1
        key = [self.seed & mask, sample_seed & mask, index]
        state = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))

    def _load(self, rec_idx: int, record: ClipRecord, gen: Optional[torch.Generator],
              temporal: int) -> torch.Tensor:
        """Decoded frames: uint8 ``T x 3 x H x W`` (images ``3 x H x W``)."""
        if self.sampling == "image":
            if self._cache is not None and rec_idx in self._cache:
                return self._cache[rec_idx][0]
            image = read_image(record.path).permute(2, 0, 1)
            if self._cache is not None:
                self._cache[rec_idx] = (image, VideoInfo(1, None))
            return image

        def wanted(info: VideoInfo) -> List[int]:
            return self._indices(record, info, gen, temporal)

        if self._cache is not None:
            if rec_idx not in self._cache:
                info = media_info(record.path, self.folder_fps)
                if not info.num_frames:  # unknown length: not cached
                    return self._read(record.path, wanted)[0].permute(0, 3, 1, 2)
                self._cache[rec_idx] = self._read(record.path, range(info.num_frames))
            full, info = self._cache[rec_idx]
            idx = [min(i, full.shape[0] - 1) for i in wanted(info)]
            return full[idx].permute(0, 3, 1, 2)
        return self._read(record.path, wanted)[0].permute(0, 3, 1, 2)

    def _read(self, path: str, indices: Any) -> Tuple[torch.Tensor, VideoInfo]:
        if os.path.isdir(path):
            return read_frame_folder(path, indices, pad_short=True, fps=self.folder_fps)
        return read_frames(path, indices, pad_short=True, thread_type=self.decode_threads)

    def _indices(self, record: ClipRecord, info: VideoInfo, gen: Optional[torch.Generator],
                 temporal: int) -> List[int]:
        """Source frame indices of the clip (within the record's segment, if any)."""
        fps = info.fps
        first, end = 0, info.num_frames
        if record.start_sec is not None or record.end_sec is not None:
            if not fps:
                raise VideoDecodeError(record.path, "unknown frame rate: cannot locate the "
                                       f"segment {record.start_sec}..{record.end_sec} s")
            first, end = segment_frame_range(info.num_frames, fps, record.start_sec,
                                             record.end_sec)
            if end is not None and end <= first:
                raise VideoDecodeError(
                    record.path, f"segment {record.start_sec}..{record.end_sec} s holds no "
                    f"frame (the video has {info.num_frames} frames at {fps:g} fps)")
        n = None if end is None else end - first
        if n is not None and n < 1:
            raise VideoDecodeError(record.path, "no frames (the header announces 0)")
        if self.sampling == "segment":
            if n is None:
                raise VideoDecodeError(record.path, "unknown frame count (segment sampling "
                                       "needs it)")
            local = segment_indices(n, self.num_frames, gen, temporal, self.num_views)
        else:
            step = float(self.sampling_rate)
            if self.target_fps is not None and fps:
                step *= fps / self.target_fps
            if gen is not None:
                start = random_clip_start(n, clip_span(self.num_frames, step), gen)
            else:
                start = uniform_clip_start(n, self.num_frames * step, temporal,
                                           self.num_views, self.use_offset)
            local = clip_indices(start, self.num_frames, step, n)
        return [first + i for i in local]
