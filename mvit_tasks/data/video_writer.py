"""H.264 writing with PyAV: :func:`write_video` (a whole ``T x H x W x 3`` uint8 array) and
:class:`VideoWriter` (one frame at a time, optionally at given frame times, so a stream can be
re-encoded with its own timestamps and bounded memory). Re-exported by
:mod:`mvit_tasks.data.video_io`.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, Dict, Optional, Tuple, Union

import av
import numpy as np
import torch

PathLike = Union[str, "os.PathLike[str]"]


def write_video(
    path: PathLike,
    frames: Union[np.ndarray, torch.Tensor],
    fps: float = 16,
    crf: int = 18,
    codec: str = "libx264",
    options: Optional[Dict[str, str]] = None,
) -> None:
    """Write ``T x H x W x 3`` uint8 RGB frames as an H.264 (yuv420p) video.

    H and W must be even (4:2:0 chroma). ``crf`` is x264's quality (0 lossless, 23 default).
    The container follows the extension (``.mp4``, ``.mkv``, ...). Encoding is single-threaded
    for reproducibility, though decoded pixels may still differ slightly between runs.
    ``options`` are extra encoder options, e.g.
    ``{"g": "8"}`` for a key frame every 8 frames (faster seeking).
    """
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be T x H x W x 3 uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need at least one frame and even H, W for yuv420p, got {frames.shape}")
    with VideoWriter(path, fps, crf, codec, options) as writer:
        for image in frames:
            writer.write(image)


class VideoWriter:
    """:func:`write_video` one frame at a time (memory: one frame plus the encoder's buffers).

    ``with VideoWriter(path, fps) as w: w.write(frame)`` for each ``H x W x 3`` uint8 RGB frame
    (H, W even; the first frame fixes the size). Frames are ``1 / fps`` apart unless
    ``write`` gets their time in seconds; ``time_base`` is then the encoder's clock (e.g.
    ``Fraction(1, 90000)``, fine enough for any rate; default ``1 / fps``), and times are
    rounded to it (kept strictly increasing). Nothing is written without a frame.
    """

    def __init__(self, path: PathLike, fps: float = 16, crf: int = 18, codec: str = "libx264",
                 options: Optional[Dict[str, str]] = None,
                 time_base: Optional[Fraction] = None) -> None:
        self.path = os.fspath(path)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.time_base = Fraction(time_base) if time_base else 1 / self.rate
        self._settings = {"crf": str(crf), "threads": "1", **(options or {})}
        self._codec = codec
        self._container = self._stream = None
        self._shape: Optional[Tuple[int, ...]] = None
        self._count, self._last_pts = 0, -1

    def write(self, image: Union[np.ndarray, torch.Tensor],
              time_sec: Optional[float] = None) -> None:
        """Encode one ``H x W x 3`` uint8 RGB frame (at ``time_sec`` seconds when given)."""
        image = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if self._shape is None:
            if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] % 2 or image.shape[1] % 2:
                raise ValueError(f"need H x W x 3 frames with even H, W, got {image.shape}")
            self._open(*image.shape[:2])
        if image.shape != self._shape or image.dtype != np.uint8:
            raise ValueError(f"frame {self._count}: expected {self._shape} uint8, "
                             f"got {image.shape} {image.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        sec = Fraction(self._count) / self.rate if time_sec is None else Fraction(time_sec)
        self._last_pts = frame.pts = max(self._last_pts + 1, round(sec / self.time_base))
        frame.time_base = self.time_base
        self._mux(self._stream.encode(frame))
        self._count += 1

    def _open(self, h: int, w: int) -> None:
        self._shape = (h, w, 3)
        self._container = av.open(self.path, "w")
        stream = self._container.add_stream(self._codec, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = dict(self._settings)
        if self.time_base != 1 / self.rate:
            stream.codec_context.time_base = stream.time_base = self.time_base
        self._stream = stream

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder's delayed frames and close the file."""
        if self._container is not None:
            try:
                self._mux(self._stream.encode())
            finally:
                self._container.close()
                self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
