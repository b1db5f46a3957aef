"""read_clip / write_video on real H.264 files written on the fly, and on broken files."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest
import torch

from mvit_tasks.data.video_io import VideoDecodeError, read_clip, write_video

T, H, W = 24, 32, 48


def _frames(num: int = T) -> np.ndarray:
    """Frame t is a flat grey of level 10 * t + 5: the decoded level tells the frame index."""
    levels = 10 * np.arange(num) + 5
    return np.broadcast_to(levels[:, None, None, None], (num, H, W, 3)).astype(np.uint8).copy()


def _index(clip: torch.Tensor) -> list:
    return [int(round((float(f.float().mean()) - 5) / 10)) for f in clip]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("vid") / "clip.mp4")
    write_video(path, _frames(), fps=12, options={"g": "6"})  # key frame every 6 frames
    return path


def test_write_then_read_all_frames(video):
    clip = read_clip(video, T, start=0)
    assert clip.shape == (T, H, W, 3) and clip.dtype == torch.uint8
    assert _index(clip) == list(range(T))
    assert (clip.float() - torch.from_numpy(_frames()).float()).abs().max() <= 3


@pytest.mark.parametrize("start, rate", [(0, 2), (7, 3), (13, 1), (6, 5)])
def test_seek_and_sampling_rate(video, start, rate):
    num = min(4, (T - 1 - start) // rate + 1)
    clip = read_clip(video, num, sampling_rate=rate, start=start)
    assert _index(clip) == [start + i * rate for i in range(num)]


def test_start_none_centres_the_clip(video):
    clip = read_clip(video, 4, sampling_rate=2)  # span 7 of 24 frames -> start (24 - 7) // 2 = 8
    assert _index(clip) == [8, 10, 12, 14]


def test_single_threaded_decoding_gives_the_same_frames(video):
    single = read_clip(video, 5, 3, start=4, thread_type=None)
    assert torch.equal(single, read_clip(video, 5, 3, start=4))


def test_video_shorter_than_clip(video):
    with pytest.raises(VideoDecodeError, match="too short") as info:
        read_clip(video, 8, sampling_rate=4, start=0)
    assert info.value.path == video and "clip.mp4" in str(info.value)
    clip = read_clip(video, 8, sampling_rate=4, start=0, pad_short=True)
    assert _index(clip) == [0, 4, 8, 12, 16, 20, 20, 20]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_clip(str(tmp_path / "nope.mp4"), 4)


@pytest.mark.parametrize(
    "content", [b"", np.random.default_rng(0).bytes(20000)], ids=["empty", "random"]
)
def test_corrupt_file(tmp_path, content):
    path = str(tmp_path / "corrupt.mp4")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(VideoDecodeError, match="corrupt.mp4"):
        read_clip(path, 4)


def test_truncated_mp4(tmp_path, video):
    """Index at the end (PyAV's default): a cut file cannot be opened."""
    path = str(tmp_path / "cut.mp4")
    data = open(video, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        read_clip(path, 4)


def test_truncated_faststart_mp4(tmp_path):
    """Index first (``movflags=faststart``): the file opens, frames run out early."""
    full = str(tmp_path / "full.mp4")
    rng = np.random.default_rng(0)
    with av.open(full, "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for image in rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8):  # noise: big frames
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert read_clip(full, T, start=0).shape[0] == T
    cut = str(tmp_path / "cut_fast.mp4")
    data = open(full, "rb").read()
    with open(cut, "wb") as f:
        f.write(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoDecodeError, match="cut_fast.mp4") as info:
        read_clip(cut, T, start=0)
    assert "truncated" in str(info.value) or "decoding failed" in str(info.value)


def test_write_video_checks_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(str(tmp_path / "odd.mp4"), np.zeros((2, 31, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(str(tmp_path / "f.mp4"), np.zeros((2, 32, 32, 3), np.float32))
    assert not os.path.exists(tmp_path / "odd.mp4")
