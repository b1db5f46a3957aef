"""Real frame rates: AVA clips and the demo sample the 30-fps time grid by presentation time.

Every test file is a real mp4 (25, 29.97, 30, 60 fps, or variable rate written with explicit
pts) whose frames show their own number as 12 black/white blocks, robust to H.264 loss. The
expected frame of each grid time is computed here, independently: the frame whose exact
``(pts - start_time) * time_base`` (a Fraction, read back with plain PyAV) is nearest to
``idx / 30`` seconds, the earlier one on a tie.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Dict, List, Sequence

import av
import numpy as np
import pytest
from PIL import Image

from mvit_tasks.data.video_io import (
    NearestPicker, VideoDecodeError, read_frames_at_times, write_video,
)
from mvit_tasks.projects.ava.converters import KeyframeRecord
from mvit_tasks.projects.ava.dataset import AvaKeyframeDataset

H, W, BITS, BLOCK_W, BLOCK_H = 64, 192, 12, 32, 16  # bits in rows 0-31; rows 32-63 stay black
GRID = 30  # AVA's frame grid (AVA.FPS)
START = 900  # AVA.SEGMENT_START_SEC
RATES = {"25": 25, "29.97": Fraction(30000, 1001), "30": 30, "60": 60}
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "demo_synthetic.yaml")


def coded_frame(n: int) -> np.ndarray:
    """``H x W x 3``: bit ``b`` of ``n`` is block ``b`` (6 per row, two rows) white."""
    img = np.zeros((H, W, 3), np.uint8)
    for b in range(BITS):
        if n >> b & 1:
            r, c = divmod(b, W // BLOCK_W)
            img[r * BLOCK_H:(r + 1) * BLOCK_H, c * BLOCK_W:(c + 1) * BLOCK_W] = 255
    return img


def frame_code(img: np.ndarray) -> int:
    """The number :func:`coded_frame` wrote (block centres thresholded at 128)."""
    img = np.asarray(img)
    n = 0
    for b in range(BITS):
        r, c = divmod(b, W // BLOCK_W)
        y, x = r * BLOCK_H + BLOCK_H // 2, c * BLOCK_W + BLOCK_W // 2
        n |= int(img[y - 4:y + 4, x - 8:x + 8].mean() > 128) << b
    return n


def write_cfr(path: str, fps, seconds: float) -> None:
    n = int(round(seconds * fps))
    write_video(path, np.stack([coded_frame(i) for i in range(n)]), fps=fps,
                options={"g": "12"})


def write_vfr(path: str, times_ms: Sequence[int]) -> None:
    """Plain PyAV, frame ``i`` at ``times_ms[i]`` ms (explicit pts, millisecond clock)."""
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        stream.options = {"crf": "18", "threads": "1", "g": "12"}
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(coded_frame(i), format="rgb24")
            frame.pts, frame.time_base = int(ms), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def vfr_times_ms(seconds: float) -> List[int]:
    """Irregular gaps of 10-90 ms (11-100 fps), repeating one pattern."""
    gaps = [33, 10, 90, 41, 17, 62, 25, 50, 12, 75]
    out, t = [], 0
    while t < seconds * 1000:
        out.append(t)
        t += gaps[len(out) % len(gaps)]
    return out


def frames_by_time(path: str) -> List[tuple]:
    """``[(exact time Fraction, code)]`` of every frame, decoded with plain PyAV."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        t0 = stream.start_time or 0
        return [(Fraction(f.pts - t0) * stream.time_base, frame_code(f.to_ndarray(format="rgb24")))
                for f in container.decode(stream)]


def expected_codes(frames: List[tuple], times: Sequence[Fraction]) -> List[int]:
    """Nearest frame per time by exact arithmetic; the earlier frame on a tie."""
    return [frames[min(range(len(frames)), key=lambda j: (abs(frames[j][0] - t), j))][1]
            for t in times]


def make_video(tmp_path, rate: str, seconds: float = 4.0) -> str:
    path = str(tmp_path / f"v{rate.replace('.', '_')}.mp4")
    if rate == "vfr":
        write_vfr(path, vfr_times_ms(seconds))
    else:
        write_cfr(path, RATES[rate], seconds)
    return path


@pytest.fixture(scope="module", params=[*RATES, "vfr"])
def video(request, tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("rates"), request.param)


def test_files_keep_their_rate_and_times(video):
    frames = frames_by_time(video)
    assert [c for _, c in frames] == list(range(len(frames)))  # every frame readable, in order
    times = [t for t, _ in frames]
    name = os.path.basename(video)
    if "vfr" in name:
        assert times == [Fraction(ms, 1000) for ms in vfr_times_ms(4.0)]  # the container kept them
    else:
        fps = RATES[name[1:-4].replace("_", ".")]
        assert times == [Fraction(i) / Fraction(fps) for i in range(len(frames))]


def test_read_frames_at_times_takes_the_nearest_frame(video):
    frames = frames_by_time(video)
    grid = [Fraction(i, GRID) for i in range(0, 4 * GRID + 15)]  # past the end: last frame
    clip, _ = read_frames_at_times(video, [float(t) for t in grid])
    assert [frame_code(f) for f in clip.numpy()] == expected_codes(frames, grid)
    for first in (17, 45, 88):  # windows that seek into the file
        window = grid[first:first + 16:3]
        clip, _ = read_frames_at_times(video, [float(t) for t in window])
        assert [frame_code(f) for f in clip.numpy()] == expected_codes(frames, window)


def test_nearest_picker_ties_go_to_the_earlier_frame():
    picker = NearestPicker([0.1, 0.1, 0.3, 0.5])
    won = picker.push(0.08, "a") + picker.push(0.12, "b") + picker.push(0.5, "c")
    assert [(k, item) for k, (_, item) in won] == [(0, "a"), (1, "a"), (2, "b")]
    assert [(k, item) for k, (_, item) in picker.finish()] == [(3, "c")] and picker.done


def _rec(ts: int) -> KeyframeRecord:
    return KeyframeRecord("v", ts, np.asarray([[0.1, 0.6, 0.9, 0.95]], np.float32), [[1]],
                          np.ones(1, np.float32), "mem")


def slowfast_grid(ts: int, num_frames: int, rate: int) -> List[Fraction]:
    """SlowFast ``get_sequence`` on the 30-fps frame list, clamped below at 0, as times."""
    centre = (ts - START) * GRID
    first = centre - num_frames * rate // 2
    return [Fraction(max(0, first + i * rate), GRID) for i in range(num_frames)]


@pytest.mark.parametrize("num_frames,rate", [(8, 2), (5, 3)])
def test_dataset_clip_is_the_nearest_frame_of_each_grid_time(video, num_frames, rate):
    frames = frames_by_time(video)
    stamps = [900, 901, 902, 903, 905]  # 900: clamped at 0; 905 lies past the end (4-s file)
    ds = AvaKeyframeDataset([_rec(s) for s in stamps], {"v": video}, "test", num_frames, rate,
                            num_classes=2, fps=GRID, start_sec=START)
    for s in stamps:
        got = [frame_code(f) for f in ds.read_clip(_rec(s)).numpy()]
        assert got == expected_codes(frames, slowfast_grid(s, num_frames, rate)), s
    last = frames[-1][1]
    assert [frame_code(f) for f in ds.read_clip(_rec(905)).numpy()] == [last] * num_frames


def test_keyframes_902_and_903_at_25_fps_read_their_own_second(tmp_path):
    """Index-based sampling read frame 60 (2.4 s) for 902 and frame 90 (3.6 s) for 903."""
    path = make_video(tmp_path, "25", seconds=5.0)
    ds = AvaKeyframeDataset([_rec(902)], {"v": path}, "test", 1, 1, 2, fps=GRID,
                            start_sec=START)
    assert frame_code(ds.read_clip(_rec(902))[0].numpy()) == 50  # 2.0 s x 25 fps
    assert frame_code(ds.read_clip(_rec(903))[0].numpy()) == 75  # 3.0 s
    ds8 = AvaKeyframeDataset([_rec(902)], {"v": path}, "test", 8, 2, 2, fps=GRID,
                             start_sec=START)
    # grid 52..66 step 2 -> 1.733..2.2 s -> frames 43, 45, 47, 48, 50, 52, 53, 55 (ties earlier)
    assert [frame_code(f) for f in ds8.read_clip(_rec(902)).numpy()] == \
        [43, 45, 47, 48, 50, 52, 53, 55]


def test_29_97_fps_drift_is_not_carried_into_late_keyframes(tmp_path):
    """At 30000/1001 fps frame index 570 is 19.019 s; keyframe 919 (19.0 s) is frame 569."""
    path = make_video(tmp_path, "29.97", seconds=20.0)
    ds = AvaKeyframeDataset([_rec(919)], {"v": path}, "test", 1, 1, 2, fps=GRID,
                            start_sec=START)
    assert frame_code(ds.read_clip(_rec(919))[0].numpy()) == 569


def test_unreadable_and_truncated_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoDecodeError, match="bad.mp4"):
        read_frames_at_times(str(bad), [0.0])
    full = str(tmp_path / "full.mkv")  # mkv: the header's duration survives a cut
    rng = np.random.default_rng(0)
    write_video(full, rng.integers(0, 256, (50, H, W, 3), dtype=np.uint8), fps=25)  # 2 s
    assert read_frames_at_times(full, [1.9])[0].shape == (1, H, W, 3)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(open(full, "rb").read()[:int(os.path.getsize(full) * 0.5)])
    with pytest.raises(VideoDecodeError, match=r"cut.mkv.*truncated: decoding stopped at"):
        read_frames_at_times(str(cut), [1.5, 1.9])
    assert read_frames_at_times(str(cut), [0.2])[0].shape == (1, H, W, 3)  # before the cut
    with pytest.raises(ValueError, match="non-decreasing"):
        read_frames_at_times(full, [1.0, 0.5])


def _demo(tmp_path, video: str, stamps: Sequence[int]) -> str:
    from mvit_tasks.projects.ava.demo import main

    boxes = tmp_path / "boxes.csv"
    boxes.write_text("".join(f"v,{s},0.100,0.600,0.900,0.950,,0.950\n" for s in stamps))
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text("".join(f'item {{\n  name: "a{i}"\n  id: {i}\n}}\n'
                                for i in range(1, 5)))
    out = str(tmp_path / "vis")
    tiny = ["MODEL.MVIT.NUM_FRAMES", "4", "MODEL.MVIT.SPATIAL_SIZE", "[32, 32]",
            "MODEL.MVIT.DEPTH", "2", "MODEL.MVIT.EMBED_DIM", "16", "MODEL.MVIT.DIM_MUL",
            "[[1, 2.0]]", "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]", "MODEL.MVIT.POOL_Q_STRIDE",
            "[[1, 1, 2, 2]]", "DATA.NUM_FRAMES", "4", "DATA.TRAIN_CROP_SIZE", "32",
            "AVA.TEST_SHORT_SIDE", "32"]
    assert main(["--config-file", CONFIG, "--random-weights", "--video", video, "--boxes",
                 str(boxes),
                 "--video-id", "v", "--labelmap", str(labelmap), "--output", out,
                 "--thresh", "2", "AVA.DEMO_DATA", "False", "AVA.FPS", str(GRID),
                 "AVA.DATA_DIR", str(tmp_path), "OUTPUT_DIR", out, *tiny]) == 0
    return out


def _has_box(img: np.ndarray) -> bool:
    """The demo's green rectangle in the strip below the code blocks."""
    strip = np.asarray(img)[2 * BLOCK_H:].astype(int)
    return bool(((strip[..., 1] > 150) & (strip[..., 0] < 100)).any())


@pytest.mark.parametrize("rate", ["25", "vfr"])
def test_demo_writes_the_files_own_frames_and_nearest_keyframes(tmp_path, rate):
    video = make_video(tmp_path, rate, seconds=4.0)
    stamps = [901, 903]
    out = _demo(tmp_path, video, stamps)
    source = frames_by_time(video)
    with av.open(os.path.join(out, "demo.mp4")) as container:
        stream = container.streams.video[0]
        t0 = stream.start_time or 0
        written = [(float((f.pts - t0) * stream.time_base), f.to_ndarray(format="rgb24"))
                   for f in container.decode(stream)]
    # the file's own frames at their own times (its rate, variable included)
    assert [frame_code(img) for _, img in written] == [c for _, c in source]
    np.testing.assert_allclose([t for t, _ in written], [float(t) for t, _ in source],
                               atol=2e-5)
    # boxes on the frames within +-0.5 s of a keyframe, by presentation time
    for (t, img), (exact, _) in zip(written, source):
        near = min(abs(START + exact - s) for s in stamps)
        assert _has_box(img) == (near <= Fraction(1, 2)), float(exact)
    # each keyframe's PNG is the frame nearest to it
    pngs: Dict[int, int] = {s: frame_code(Image.open(os.path.join(out, f"v_{s:04d}.png")))
                            for s in stamps}
    assert pngs == dict(zip(stamps, expected_codes(source, [Fraction(s - START)
                                                            for s in stamps])))


@pytest.mark.slow
def test_demo_memory_does_not_grow_with_the_video(tmp_path):
    """Peak RSS of the demo on an 8-s and a 40-s 320x180 segment: a demo that held the
    decoded video would need ~2 x 150 MB more for the long one (frames + drawn copy)."""
    import argparse

    from mvit_tasks.projects.ava import benchmark

    parser = argparse.ArgumentParser()
    benchmark.add_demo_args(parser)
    args = parser.parse_args(["--ava-demo-seconds", "8", "40", "--ava-demo-size", "320", "180",
                              "--ava-demo-keyframe-step", "4",
                              "--ava-demo-workdir", str(tmp_path)])
    out = benchmark.run_demo_memory(args)
    short, long = out["results"]
    assert long["frames"] == 1000 and long["output_frames"] == 1000
    raw_growth = long["video_raw_mb"] - short["video_raw_mb"]  # ~132 MB
    assert out["rss_growth_mb"] < 0.25 * raw_growth, out
