"""Video file I/O with PyAV (FFmpeg): clip decoding and H.264 writing.

:func:`read_clip` decodes ``num_frames`` frames spaced ``sampling_rate`` apart, decoding only
what the clip needs (seek to the key frame before it, stop right after it), with FFmpeg's
threaded decoding. Frame indices are derived from presentation timestamps, as in PySlowFast's
``decoder.py`` / torchvision's ``read_video``. Unreadable, empty and truncated files raise
:class:`VideoDecodeError`, which names the file.

:func:`read_frames` decodes an arbitrary sorted list of frame indices (SSv2 segment sampling,
clips at a resampled frame rate) and can pick the indices from the container header in the same
open (``indices`` as a function of :class:`VideoInfo`). :func:`probe_video` reads the header
only: frame count, frame rate, duration and size.

:func:`read_frames_at_times` decodes by presentation time instead of index: for each requested
time it keeps the decoded frame whose ``pts * time_base`` (relative to the stream start) is
nearest, ties to the earlier frame, so a clip sampled on a fixed time grid (AVA's 30 fps) is
right whatever rate the file has (25, 29.97, 60 fps, variable). :func:`iter_frames` streams
``(time, frame)`` pairs; :class:`NearestPicker` is the selection rule on any such stream.

:func:`write_video` writes ``T x H x W x 3`` uint8 frames as an H.264 (libx264, yuv420p) file;
:class:`VideoWriter` does the same one frame at a time, optionally at given frame times.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
from fractions import Fraction
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import av
import numpy as np
from av.video.reformatter import VideoReformatter
import torch

PathLike = Union[str, "os.PathLike[str]"]


class VideoDecodeError(RuntimeError):
    """A video file cannot be decoded (unreadable, no video stream, empty or truncated)."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot decode video '{self.path}': {reason}")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a container header says about a video stream (or a frame folder).

    Attributes:
        num_frames: frame count; from the header when ``frames_exact``, else estimated from the
            duration and frame rate; ``None`` when neither is known.
        fps: average frame rate (``None`` when unknown).
        width, height: frame size in pixels (0 when unknown).
        frames_exact: ``num_frames`` is the header's frame count (mp4), not an estimate (webm).
    """

    num_frames: Optional[int]
    fps: Optional[float]
    width: int = 0
    height: int = 0
    frames_exact: bool = False

    @property
    def duration_sec(self) -> Optional[float]:
        """``num_frames / fps`` (``None`` when either is unknown)."""
        if self.num_frames is None or not self.fps:
            return None
        return self.num_frames / self.fps


IndexSpec = Union[Sequence[int], Callable[[VideoInfo], Sequence[int]]]


def read_clip(
    path: PathLike,
    num_frames: int,
    sampling_rate: int = 1,
    start: Optional[int] = None,
    pad_short: bool = False,
    thread_type: Optional[str] = "AUTO",
) -> torch.Tensor:
    """Decode one clip of ``num_frames`` frames, taking every ``sampling_rate``-th frame.

    Args:
        path: video file (any container / codec FFmpeg reads).
        num_frames: frames in the clip (T).
        sampling_rate: step between two clip frames, in source frames.
        start: index (0-based, in source frames) of the clip's first frame. ``None``: the clip
            centred in the video when the container knows its frame count, else 0.
        pad_short: if the video ends before the clip does, repeat its last frame (SlowFast's
            index clamping) instead of raising :class:`VideoDecodeError`.
        thread_type: FFmpeg decoder threading, ``"AUTO"`` (frame + slice threads) or
            ``"FRAME"`` / ``"SLICE"``; ``None`` decodes on the calling thread, which is faster
            for tiny clips, where starting the decoder threads costs more than it saves.

    Returns:
        ``T x H x W x 3`` uint8 RGB tensor.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file cannot be opened or decoded, has no video stream or no
            frames, is truncated, or (without ``pad_short``) is shorter than the clip.
    """
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(
            f"num_frames and sampling_rate must be >= 1, got {num_frames}, {sampling_rate}"
        )
    span = (num_frames - 1) * sampling_rate + 1

    def wanted(info: VideoInfo) -> Sequence[int]:
        first = start
        if first is None:
            total = info.num_frames if info.frames_exact else None
            first = max(0, (total - span) // 2) if total else 0
        return range(first, first + span, sampling_rate)

    clip, _ = read_frames(path, wanted, pad_short=pad_short, thread_type=thread_type)
    return clip


def probe_video(path: PathLike) -> VideoInfo:
    """Frame count, frame rate and size from the container header (nothing is decoded).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file cannot be opened or has no video stream.
    """
    container = _open(path)
    try:
        return _stream_info(container, _video_stream(container, path))
    finally:
        container.close()


def read_frames(
    path: PathLike,
    indices: IndexSpec,
    pad_short: bool = False,
    thread_type: Optional[str] = "AUTO",
) -> Tuple[torch.Tensor, VideoInfo]:
    """Decode the frames at ``indices`` (0-based, non-decreasing, repeats allowed).

    Decoding seeks to the key frame before the first index and stops after the last one.

    Args:
        path: video file.
        indices: the frame indices, or a function ``VideoInfo -> indices`` called once the
            header is read (so a sampler can use the frame count without opening the file twice).
        pad_short: indices past the end of the video repeat the last decoded frame (the last
            one of ``indices`` that exists) instead of raising. Samplers that know the frame
            count clamp their indices to it (SlowFast's clamping); this covers headers that
            overstate it.
        thread_type: FFmpeg decoder threading (see :func:`read_clip`).

    Returns:
        ``(frames, info)``: ``len(indices) x H x W x 3`` uint8 RGB tensor and the header info.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``indices`` is empty, negative or decreasing.
        VideoDecodeError: as :func:`read_clip`.
    """
    container, stream, info = _open_video(path, thread_type)
    try:
        wanted = list(indices(info) if callable(indices) else indices)
        if not wanted:
            raise ValueError("no frame indices to decode")
        if wanted[0] < 0 or any(b < a for a, b in zip(wanted, wanted[1:])):
            raise ValueError(f"frame indices must be >= 0 and non-decreasing, got {wanted}")
        frames = _decode_indices(container, stream, path, wanted)
    finally:
        container.close()

    total = info.num_frames if info.frames_exact else None
    if not frames:
        raise VideoDecodeError(path, f"no frame decoded at or after frame {wanted[0]}"
                               + (f" (the header announces {total} frames)" if total else ""))
    if len(frames) < len(wanted):
        end = _last_index(frames)
        if total and wanted[len(frames)] < total:
            raise VideoDecodeError(
                path, f"truncated: decoding stopped after frame {end} "
                f"but the header announces {total} frames"
            )
        if not pad_short:
            raise VideoDecodeError(
                path, f"too short: the clip needs frames {wanted[0]}..{wanted[-1]} but the "
                f"video ends after frame {end} (use pad_short=True to repeat it)"
            )
        frames += [frames[-1]] * (len(wanted) - len(frames))
    return _stack(path, [f for _, f in frames]), info


def _stack(path: PathLike, images: List[np.ndarray]) -> torch.Tensor:
    if any(f.shape != images[0].shape for f in images):
        raise VideoDecodeError(path, "the frame size changes inside the clip")
    return torch.from_numpy(np.stack(images))


def _open(path: PathLike) -> "av.container.InputContainer":
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: '{os.fspath(path)}'")
    try:
        return av.open(os.fspath(path))
    except av.error.FFmpegError as e:
        raise VideoDecodeError(path, f"cannot open ({e})") from None


def _open_video(path: PathLike, thread_type: Optional[str]):
    """``(container, first video stream, VideoInfo)`` with the decoder threading set."""
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        if thread_type:
            stream.thread_type = thread_type
        else:
            stream.codec_context.thread_count = 1
        return container, stream, _stream_info(container, stream)
    except BaseException:
        container.close()
        raise


def _header_duration(container, stream) -> Optional[float]:
    """Stream duration in seconds from the header (the container's when the stream has none)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _video_stream(container, path: PathLike) -> "av.video.stream.VideoStream":
    if not container.streams.video:
        raise VideoDecodeError(path, "no video stream")
    return container.streams.video[0]


def _stream_info(container, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    if stream.frames:
        num, exact = int(stream.frames), True
    else:  # no frame count in the header (webm, mkv): estimate it from the duration
        duration = _header_duration(container, stream)
        num = int(round(duration * fps)) if duration and fps else None
        exact = False
    ctx = stream.codec_context
    return VideoInfo(num, fps, int(ctx.width or 0), int(ctx.height or 0), exact)


def _last_index(frames: List[Tuple[int, np.ndarray]]) -> int:
    return frames[-1][0]


def _decode_indices(
    container: "av.container.InputContainer",
    stream: "av.video.stream.VideoStream",
    path: PathLike,
    wanted: Sequence[int],
) -> List[Tuple[int, np.ndarray]]:
    """Decode the frames whose indices are in ``wanted`` (sorted), stopping after the last one.

    Returns ``(index, H x W x 3 uint8)`` pairs; frames missing at the end of the file are left
    out. Later wanted indices that the file skips (variable frame rate) take the next frame.
    """
    rate = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base
    t0 = stream.start_time if stream.start_time is not None else 0
    seekable = rate is not None and time_base is not None
    if wanted[0] > 0 and seekable:
        # Seek to the key frame at or before the first wanted frame; indices come from pts.
        target = t0 + int(math.floor(Fraction(wanted[0]) / Fraction(rate) / time_base))
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            container.seek(0, stream=stream)  # unseekable: decode from the beginning

    out: List[Tuple[int, np.ndarray]] = []
    k = 0
    count = -1  # frame counter, used when a frame carries no timestamp
    for frame in _frames(container, stream, path):
        count += 1
        if frame.pts is not None and seekable:
            index = int(round(float((frame.pts - t0) * time_base * rate)))
        else:
            index = count
        if index < wanted[k]:
            continue
        image = _to_rgb(frame)
        while k < len(wanted) and wanted[k] <= index:
            out.append((index, image))
            k += 1
        if k == len(wanted):
            break
    return out


_LOCAL = threading.local()


def _to_rgb(frame: "av.VideoFrame") -> np.ndarray:
    """``H x W x 3`` uint8 RGB. One reformatter per thread keeps its swscale context between
    frames; ``frame.to_ndarray(format="rgb24")`` builds a new one per frame, 3-5x slower.

    swscale runs single-threaded (``threads=1``): a context with slice threads that a
    DataLoader worker inherits through ``fork`` waits forever on threads that do not exist in
    the child (both when used and when freed). Parallelism comes from the workers instead. The
    cache is also per process, so a child builds its own context.
    """
    cached = getattr(_LOCAL, "reformatter", None)
    if cached is None or cached[0] != os.getpid():
        cached = _LOCAL.reformatter = (os.getpid(), VideoReformatter())
    return cached[1].reformat(frame, format="rgb24", threads=1).to_ndarray()


def _frames(container, stream, path: PathLike) -> Iterator["av.VideoFrame"]:
    """``container.decode(stream)`` with FFmpeg errors turned into :class:`VideoDecodeError`."""
    it = container.decode(stream)
    while True:
        try:
            frame = next(it)
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"decoding failed ({e})") from None
        yield frame


# ------------------------------------------------------------------ decoding by time
TIE_TOL_SEC = 1e-9  # two frames this close in distance to a requested time are a tie
Timed = Tuple[float, Any]  # (presentation time in seconds, frame)


class NearestPicker:
    """Pick, for each of the sorted ``times``, the item of a time-ordered stream nearest to it.

    Items are pushed in increasing time; an item wins a requested time once the next item is
    known to be farther (one item of look-ahead), so only one item is held. Ties (distances
    within :data:`TIE_TOL_SEC`) go to the earlier item. Times before the first item take the
    first one, times after the last item the last one (:meth:`finish`).
    """

    def __init__(self, times: Sequence[float]) -> None:
        self.times = [float(t) for t in times]
        if any(b < a for a, b in zip(self.times, self.times[1:])):
            raise ValueError(f"times must be non-decreasing, got {self.times}")
        self._next = 0
        self._prev: Optional[Timed] = None

    @property
    def done(self) -> bool:
        """Every requested time has its item."""
        return self._next == len(self.times)

    @property
    def last(self) -> Optional[Timed]:
        """The latest item pushed (``None`` before the first)."""
        return self._prev

    def push(self, time: float, item: Any) -> List[Tuple[int, Timed]]:
        """Add the next item; returns ``(k, (time, item))`` for the times the previous item won."""
        won: List[Tuple[int, Timed]] = []
        if self._prev is not None:
            before = self._prev[0]
            while not self.done:
                t = self.times[self._next]
                if abs(t - time) < abs(t - before) - TIE_TOL_SEC:
                    break  # the new item is nearer: it (or a later one) wins t
                won.append((self._next, self._prev))
                self._next += 1
        self._prev = (time, item)
        return won

    def finish(self) -> List[Tuple[int, Timed]]:
        """End of the stream: the remaining times take the last item (none if nothing came)."""
        if self._prev is None:
            return []
        won = [(k, self._prev) for k in range(self._next, len(self.times))]
        self._next = len(self.times)
        return won


def read_frames_at_times(
    path: PathLike,
    times_sec: Sequence[float],
    thread_type: Optional[str] = None,
) -> Tuple[torch.Tensor, VideoInfo]:
    """Decode, for each time, the frame whose presentation time is nearest (ties: earlier).

    Times are seconds from the stream start (``(pts - start_time) * time_base`` of the frame),
    non-decreasing, repeats allowed. Decoding seeks to the key frame at or before the first
    time and stops one frame after the last (memory: the clip plus one frame). Times before
    the first frame take the first frame, times after the last frame the last one (the clamp
    of SlowFast's frame indices). Works for any constant or variable frame rate.

    Args:
        path: video file.
        times_sec: requested presentation times in seconds.
        thread_type: FFmpeg decoder threading (see :func:`read_clip`); ``None``: one thread.

    Returns:
        ``(frames, info)``: ``len(times_sec) x H x W x 3`` uint8 RGB tensor and the header info.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``times_sec`` is empty or decreasing.
        VideoDecodeError: the file cannot be opened or decoded, has no frames, or is truncated
            (it ends before the times asked for and before its header says it does).
    """
    picker = NearestPicker(times_sec)
    if not picker.times:
        raise ValueError("no times to decode")
    container, stream, info = _open_video(path, thread_type)
    images: List[Optional[np.ndarray]] = [None] * len(picker.times)
    converted: Tuple[Any, Optional[np.ndarray]] = (None, None)

    def keep(won: List[Tuple[int, Timed]]) -> None:
        nonlocal converted
        for k, (_, frame) in won:
            if converted[0] is not frame:  # a frame that wins several times is converted once
                converted = (frame, _to_rgb(frame))
            images[k] = converted[1]

    try:
        for t, frame in _timed_frames(container, stream, path, picker.times[0]):
            keep(picker.push(t, frame))
            if picker.done:
                break
        last = picker.last
        past_end = picker.finish()
        keep(past_end)
        end = _header_duration(container, stream)
    finally:
        container.close()
    if last is None:
        raise VideoDecodeError(path, f"no frame decoded at or after {picker.times[0]:.3f} s")
    if past_end and info.fps and end is not None:
        period = 1.0 / info.fps
        if picker.times[-1] > last[0] + period / 2 and last[0] < end - 2.5 * period:
            raise VideoDecodeError(path, f"truncated: decoding stopped at {last[0]:.3f} s but "
                                   f"the header announces {end:.3f} s")
    return _stack(path, images), info


def iter_frames(
    path: PathLike, from_sec: float = 0.0, thread_type: Optional[str] = None
) -> Iterator[Tuple[float, np.ndarray]]:
    """Stream ``(time, H x W x 3 uint8 RGB)`` from the key frame at or before ``from_sec`` to
    the end; ``time`` as in :func:`read_frames_at_times`. One frame is held at a time; the
    file closes when the iterator is exhausted or closed."""
    container, stream, _ = _open_video(path, thread_type)
    try:
        for t, frame in _timed_frames(container, stream, path, from_sec):
            yield t, _to_rgb(frame)
    finally:
        container.close()


def _timed_frames(container, stream, path: PathLike, from_sec: float) -> Iterator[Timed]:
    """``(time, av.VideoFrame)`` in presentation order from the key frame at or before
    ``from_sec``. A seek that lands after ``from_sec`` (e.g. key frames indexed by decode
    time) is retried from further back. Frames without pts are placed one period on."""
    t0 = stream.start_time if stream.start_time is not None else 0
    tb = stream.time_base
    rate = stream.average_rate or stream.guessed_rate
    period = 1.0 / float(rate) if rate else 0.0
    back, opened = 0.0, True
    while True:
        target = max(0.0, from_sec - back) if tb is not None else 0.0
        if target > 0 or not opened:  # a fresh container already starts at the beginning
            _seek(container, stream, path, t0 + int(math.floor(Fraction(target) / tb)))
        opened = False
        frames = _frames(container, stream, path)
        first = next(frames, None)
        if first is None:
            return
        t = _frame_time(first, t0, tb, None, period)
        if t > from_sec + TIE_TOL_SEC and target > 0:
            back = max(1.0, 4 * back)
            continue
        yield t, first
        for frame in frames:
            t = _frame_time(frame, t0, tb, t, period)
            yield t, frame
        return


def _frame_time(frame, t0: int, tb, prev: Optional[float], period: float) -> float:
    if frame.pts is not None and tb is not None:
        return float((frame.pts - t0) * tb)
    return 0.0 if prev is None else prev + period


def _seek(container, stream, path: PathLike, pts: int) -> None:
    """Seek to the key frame at or before ``pts``; the beginning when that fails."""
    try:
        container.seek(pts, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        try:
            container.seek(0, stream=stream)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"cannot seek ({e})") from None


# the writer lives in its own module; re-exported here for existing callers
from .video_writer import VideoWriter, write_video  # noqa: E402,F401
