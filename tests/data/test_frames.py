"""Frame folders and images (frames.py), and the header probe / index reader of video_io."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from mvit_tasks.data.frames import (
    list_frames, media_info, read_frame_folder, read_frame_folder_clip, read_image,
)
from mvit_tasks.data.video_io import (
    VideoDecodeError, probe_video, read_clip, read_frames, write_video,
)

T, H, W = 24, 32, 48


def _levels(num: int = T) -> np.ndarray:
    """Frame t is a flat grey of level 10 * t + 5."""
    lv = 10 * np.arange(num) + 5
    return np.broadcast_to(lv[:, None, None, None], (num, H, W, 3)).astype(np.uint8).copy()


def _index(clip: torch.Tensor) -> list:
    return [int(round((float(f.float().mean()) - 5) / 10)) for f in clip]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("vid") / "clip.mp4")
    write_video(path, _levels(), fps=12, options={"g": "6"})
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory, video) -> str:
    """The decoded video saved losslessly as frame_1.png .. frame_24.png (unpadded names)."""
    root = str(tmp_path_factory.mktemp("frames") / "clip")
    os.makedirs(root)
    for t, img in enumerate(read_clip(video, T, start=0).numpy(), start=1):
        Image.fromarray(img).save(os.path.join(root, f"frame_{t}.png"))
    return root


def test_probe_video(video):
    info = probe_video(video)
    assert (info.num_frames, info.fps, info.width, info.height) == (T, 12.0, W, H)
    assert info.frames_exact and info.duration_sec == pytest.approx(2.0)
    assert media_info(video) == info


def test_read_frames_arbitrary_indices(video):
    clip, info = read_frames(video, [0, 1, 1, 7, 20])
    assert _index(clip) == [0, 1, 1, 7, 20] and info.num_frames == T
    # indices chosen from the header in the same open
    clip, _ = read_frames(video, lambda i: [i.num_frames - 3, i.num_frames - 1])
    assert _index(clip) == [21, 23]
    clip, _ = read_frames(video, [22, 30, 31], pad_short=True)  # repeats the last decoded one
    assert _index(clip) == [22, 22, 22]
    with pytest.raises(VideoDecodeError, match="too short"):
        read_frames(video, [22, 30])
    with pytest.raises(ValueError, match="non-decreasing"):
        read_frames(video, [5, 3])


def test_natural_order(folder):
    names = [os.path.basename(p) for p in list_frames(folder)]
    assert names[:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    assert names[9] == "frame_10.png" and len(names) == T


def test_frame_folder_clip_equals_video_clip(video, folder):
    for start, rate, num in [(0, 1, T), (5, 3, 4), (13, 2, 5)]:
        from_folder = read_frame_folder_clip(folder, num, rate, start=start)
        assert torch.equal(from_folder, read_clip(video, num, rate, start=start))
        assert from_folder.shape == (num, H, W, 3) and from_folder.dtype == torch.uint8
    # centred like read_clip: span 7 of 24 -> start 8
    assert torch.equal(read_frame_folder_clip(folder, 4, 2), read_clip(video, 4, 2))
    assert _index(read_frame_folder_clip(folder, 4, 2)) == [8, 10, 12, 14]


def test_frame_folder_short_and_info(folder):
    with pytest.raises(VideoDecodeError, match="too short") as info:
        read_frame_folder_clip(folder, 4, 8, start=0)
    assert info.value.path == folder
    clip = read_frame_folder_clip(folder, 4, 8, start=0, pad_short=True)
    assert _index(clip) == [0, 8, 16, 23]
    clip, vi = read_frame_folder(folder, lambda i: [i.num_frames - 1], fps=30.0)
    assert _index(clip) == [23] and (vi.num_frames, vi.fps, vi.width, vi.height) == (T, 30.0, W, H)
    assert media_info(folder, folder_fps=25.0).num_frames == T


def test_bad_folders_and_frames(tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    with pytest.raises(VideoDecodeError, match="empty frame folder") as info:
        read_frame_folder_clip(str(empty), 2)
    assert info.value.path == str(empty)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_frame_folder_clip(str(tmp_path / "nope"), 2)

    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(4):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(broken / f"{i:03d}.jpg")
    data = (broken / "002.jpg").read_bytes()
    (broken / "002.jpg").write_bytes(data[: len(data) // 2])
    assert read_frame_folder_clip(str(broken), 2, 1, start=0).shape == (2, H, W, 3)
    with pytest.raises(VideoDecodeError, match="002.jpg") as info:
        read_frame_folder_clip(str(broken), 3, 1, start=0)
    assert "truncated" in info.value.reason.lower()


def test_read_image(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(rgb).save(tmp_path / "a.bmp")  # PIL fallback
    assert torch.equal(read_image(tmp_path / "a.png"), torch.from_numpy(rgb))
    assert torch.equal(read_image(tmp_path / "a.bmp"), torch.from_numpy(rgb))
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (10, 12, 3) and torch.equal(grey[..., 1], torch.from_numpy(rgb[..., 0]))
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="zero.jpg"):
        read_image(tmp_path / "zero.jpg")
    (tmp_path / "junk.png").write_bytes(b"not a png at all" * 10)
    with pytest.raises(VideoDecodeError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_image(tmp_path / "missing.jpg")
