"""Frame folders and still images: reading clips from extracted frames, and cheap media probes.

A frame folder holds one image per frame (``*.jpg`` / ``*.jpeg`` / ``*.png``), in name order
(natural order: ``img_2.jpg`` before ``img_10.jpg``), as the SSv2 frame extraction of PySlowFast
(``slowfast/datasets/ssv2.py``, ``DATASET.md``) and the AVA 30-fps frame dumps produce.
:func:`read_frame_folder_clip` mirrors :func:`mvit_tasks.data.video_io.read_clip`; only the
needed frames are read.

Images are decoded with PIL, which rejects truncated files (``cv2.imread`` returns a half-grey
image for a truncated JPEG without an error; ``torchvision.io.decode_image`` is deprecated since
torchvision 0.29). Every failure raises :class:`~mvit_tasks.data.video_io.VideoDecodeError`
naming the file or folder.
"""
from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .video_io import PathLike, VideoDecodeError, VideoInfo, probe_video

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_DIGITS = re.compile(r"(\d+)")


def _natural_key(name: str) -> List[Union[int, str]]:
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


def list_frames(folder: PathLike) -> List[str]:
    """The frame files of ``folder`` (full paths), in natural name order.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        VideoDecodeError: it holds no image file.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"frame folder not found: '{folder}'")
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    if not names:
        raise VideoDecodeError(folder, f"empty frame folder (no {'/'.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def read_image(path: PathLike) -> torch.Tensor:
    """Decode one image as ``H x W x 3`` uint8 RGB (grey and RGBA are converted).

    Raises:
        FileNotFoundError: no such file.
        VideoDecodeError: empty, truncated or undecodable file (the message names it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: '{path}'")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty image file (0 bytes)")
    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            return torch.from_numpy(np.array(im))
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises all three on bad data
        raise VideoDecodeError(path, f"cannot decode image ({e})") from None


def read_frame_files(
    files: Sequence[str], indices: Sequence[int], pad_short: bool = False,
    folder: Optional[PathLike] = None,
) -> torch.Tensor:
    """Read ``files[i]`` for each ``i`` in ``indices`` (repeats are read once).

    Args:
        files: frame files in temporal order (:func:`list_frames`).
        indices: frame indices (>= 0).
        pad_short: indices past the last frame take the last frame instead of raising.
        folder: named in errors (default: the first file's folder).

    Returns:
        ``len(indices) x H x W x 3`` uint8 RGB tensor.
    """
    where = os.fspath(folder) if folder is not None else os.path.dirname(files[0]) if files \
        else "?"
    if not files:
        raise VideoDecodeError(where, "empty frame folder")
    if not indices or min(indices) < 0:
        raise ValueError(f"frame indices must be a non-empty list of indices >= 0: {indices}")
    last = max(indices)
    if last >= len(files) and not pad_short:
        raise VideoDecodeError(
            where, f"too short: the clip needs frame {last} but the folder has {len(files)} "
            "frames (use pad_short=True to repeat the last one)"
        )
    cache = {}
    out = []
    for i in indices:
        i = min(i, len(files) - 1)
        if i not in cache:
            cache[i] = read_image(files[i])
        out.append(cache[i])
    if any(f.shape != out[0].shape for f in out):
        raise VideoDecodeError(where, "frames of different sizes in the folder")
    return torch.stack(out)


def read_frame_folder(
    folder: PathLike,
    indices: Union[Sequence[int], Callable[[VideoInfo], Sequence[int]]],
    pad_short: bool = False,
    fps: Optional[float] = None,
) -> Tuple[torch.Tensor, VideoInfo]:
    """:func:`mvit_tasks.data.video_io.read_frames` for a frame folder.

    Args:
        folder: the frame folder.
        indices: frame indices, or a function ``VideoInfo -> indices`` (the info's
            ``num_frames`` is the file count, ``fps`` the given ``fps``).
        pad_short: indices past the end repeat the last frame.
        fps: the extraction frame rate (frame folders do not store it).

    Returns:
        ``(T x H x W x 3 uint8, info)``.
    """
    files = list_frames(folder)
    info = VideoInfo(len(files), fps, 0, 0, True)
    wanted = list(indices(info) if callable(indices) else indices)
    if wanted and any(b < a for a, b in zip(wanted, wanted[1:])):
        raise ValueError(f"frame indices must be non-decreasing, got {wanted}")
    clip = read_frame_files(files, wanted, pad_short=pad_short, folder=folder)
    return clip, VideoInfo(len(files), fps, int(clip.shape[2]), int(clip.shape[1]), True)


def read_frame_folder_clip(
    folder: PathLike,
    num_frames: int,
    sampling_rate: int = 1,
    start: Optional[int] = None,
    pad_short: bool = False,
) -> torch.Tensor:
    """:func:`mvit_tasks.data.video_io.read_clip` for a frame folder.

    Args:
        folder: folder of ``*.jpg`` / ``*.png`` frames (natural name order).
        num_frames: frames in the clip (T).
        sampling_rate: step between two clip frames.
        start: first frame index; ``None`` centres the clip in the folder.
        pad_short: repeat the last frame when the folder ends before the clip.

    Returns:
        ``T x H x W x 3`` uint8 RGB tensor.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        VideoDecodeError: empty folder, unreadable / truncated frame, clip past the end.
    """
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(
            f"num_frames and sampling_rate must be >= 1, got {num_frames}, {sampling_rate}"
        )
    span = (num_frames - 1) * sampling_rate + 1

    def wanted(info: VideoInfo) -> Sequence[int]:
        first = max(0, (info.num_frames - span) // 2) if start is None else start
        if first < 0:
            raise ValueError(f"start must be >= 0, got {first}")
        return range(first, first + span, sampling_rate)

    return read_frame_folder(folder, wanted, pad_short=pad_short)[0]


def media_info(path: PathLike, folder_fps: Optional[float] = None) -> VideoInfo:
    """Frame count, fps and size of a video file (container header, nothing decoded) or of a
    frame folder (file count; ``fps = folder_fps``; size 0 = not read).

    Raises:
        FileNotFoundError: no such file or folder.
        VideoDecodeError: unreadable video header, empty frame folder.
    """
    if os.path.isdir(path):
        return VideoInfo(len(list_frames(path)), folder_fps, 0, 0, True)
    return probe_video(path)
