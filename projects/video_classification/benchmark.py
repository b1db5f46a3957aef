"""Mode ``data``: decoded + augmented training clips per second, OUR data pipeline against
pytorchvideo's, on the same folder of videos.

* ours: ``mvit_tasks.projects.video_classification.dataset.ClipClassificationDataset`` (mode ``train``,
  ``random`` sampling): seek to the key frame before the clip, decode up to its last frame,
  convert only the T sampled frames to RGB, short-side jitter + crop + flip on uint8, then
  float normalisation of the crop.
* pytorchvideo: ``pytorchvideo.data.Kinetics`` with ``RandomClipSampler(T * tau / fps)``
  (decodes and converts every frame of the clip's time window to float), followed by the
  transform of pytorchvideo's Kinetics recipe (``UniformTemporalSubsample(T)``, ``/255``,
  ``Normalize``, ``RandomShortSideScale``, ``RandomCrop``, ``RandomHorizontalFlip``), written
  here with torch ops that follow ``pytorchvideo.transforms.functional`` because
  ``pytorchvideo.transforms`` does not import with this torchvision.

Both produce float ``3 x T x crop x crop`` clips with the same sampling (a random clip of T
frames over ``T x tau`` source frames per video; pytorchvideo spreads them evenly over that
window, spacing ``(T tau - 1) / (T - 1)``), jitter range, crop and flip. ``--data-workers 0``
times a loop in this process (what one DataLoader worker does); ``N > 0`` goes through a
``DataLoader`` with N workers (timed from ``iter(loader)``, worker start included) and reports
clips/s per worker. Implementations alternate in ``--data-rounds`` rounds so that load changes
on a shared machine hit both. Without ``--data-root`` the videos are generated (H.264,
panning texture with a moving box) into a temporary folder.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mvit_tasks.benchmark.common import load1, ratio, stats

MODE_NAME = "data"  # tools/benchmark.py --mode data (discovered from the project)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
IMPLS = ("ours", "pytorchvideo")
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mode data (all options start with --data-)")
    g.add_argument("--data-root", help="folder of videos (searched recursively; the parent "
                   "folder name is the label); default: generate --data-num-videos videos")
    g.add_argument("--data-num-videos", type=int, default=16)
    g.add_argument("--data-video-seconds", type=float, default=10.0)
    g.add_argument("--data-video-fps", type=int, default=30)
    g.add_argument("--data-video-size", type=int, nargs=2, default=[340, 256],
                   metavar=("W", "H"), help="generated frame size (default: %(default)s)")
    g.add_argument("--data-keyint", type=int, default=0,
                   help="key frame interval of the generated videos (0: x264's default, 250)")
    g.add_argument("--data-num-frames", type=int, default=16, help="T")
    g.add_argument("--data-sampling-rate", type=int, default=4, help="tau")
    g.add_argument("--data-crop", type=int, default=224)
    g.add_argument("--data-jitter", type=int, nargs=2, default=[256, 320], metavar=("MIN", "MAX"))
    g.add_argument("--data-clips", type=int, default=32,
                   help="timed clips per implementation and round (default: %(default)s)")
    g.add_argument("--data-warmup", type=int, default=2, help="untimed clips first")
    g.add_argument("--data-rounds", type=int, default=2,
                   help="alternating rounds of ours / theirs (default: %(default)s)")
    g.add_argument("--data-workers", type=int, nargs="+", default=[0],
                   help="0: in-process loop; N: DataLoader with N workers (default: 0)")
    g.add_argument("--data-batch", type=int, default=8, help="DataLoader batch size")
    g.add_argument("--data-decode-threads", default="NONE", choices=["NONE", "AUTO", "FRAME",
                   "SLICE"], help="our FFmpeg threading (pytorchvideo keeps PyAV's default, "
                   "slice threads, which one-slice H.264 streams do not use)")
    g.add_argument("--data-torch-threads", type=int, default=1,
                   help="torch threads of the in-process loop (DataLoader workers use 1)")
    g.add_argument("--data-impls", nargs="+", choices=IMPLS, default=list(IMPLS))


# ================================================================================= videos
def generate_videos(folder: str, num: int, seconds: float, fps: int, width: int, height: int,
                    keyint: int = 0, seed: int = 0) -> List[Tuple[str, int]]:
    """Write ``num`` H.264 videos (a panning smooth texture, a moving box, light noise) into
    ``folder/<class>/``; returns ``(path, label)`` pairs (2 classes)."""
    from mvit_tasks.data.video_io import write_video

    rng = np.random.default_rng(seed)
    frames_n = max(1, int(round(seconds * fps)))
    out = []
    for i in range(num):
        label = i % 2
        os.makedirs(os.path.join(folder, f"class{label}"), exist_ok=True)
        path = os.path.join(folder, f"class{label}", f"video{i:04d}.mp4")
        small = rng.integers(0, 256, (height // 16 + 2, (width + 4 * frames_n) // 16 + 2, 3))
        tex = torch.nn.functional.interpolate(
            torch.from_numpy(small).permute(2, 0, 1)[None].float(), scale_factor=16,
            mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        video = np.empty((frames_n, height, width, 3), np.uint8)
        box = max(8, height // 5)
        for t in range(frames_n):
            img = tex[:height, 2 * t:2 * t + width]
            img = img + rng.normal(0, 4, img.shape)
            y = int((height - box) * (0.5 + 0.5 * math.sin(t / 9 + i)))
            x = int((width - box) * (0.5 + 0.5 * math.cos(t / 13 + i)))
            img[y:y + box, x:x + box] = (255, 64 * label, 32)
            video[t] = np.clip(img, 0, 255)
        opts = {"preset": "veryfast"}
        if keyint:
            opts["g"] = str(keyint)
        write_video(path, video, fps=fps, crf=23, options=opts)
        out.append((path, label))
    return out


def find_videos(root: str) -> List[Tuple[str, int]]:
    """Video files under ``root`` (sorted) with the index of their parent folder's name."""
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                   if f.lower().endswith(VIDEO_EXTENSIONS))
    if not paths:
        raise SystemExit(f"--data-root {root}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    classes = sorted({os.path.basename(os.path.dirname(p)) for p in paths})
    return [(p, classes.index(os.path.basename(os.path.dirname(p)))) for p in paths]


# ============================================================================ the two sides
def build_ours(videos: Sequence[Tuple[str, int]], a: argparse.Namespace) -> Any:
    from mvit_tasks.data.manifest import ClipRecord
    from .dataset import ClipClassificationDataset

    records = [ClipRecord(p, label, os.path.basename(p)) for p, label in videos]
    threads = None if a.data_decode_threads == "NONE" else a.data_decode_threads
    return ClipClassificationDataset(
        records, "train", a.data_num_frames, a.data_sampling_rate, "random",
        train_crop_size=a.data_crop, train_jitter_scales=tuple(a.data_jitter), flip=True,
        mean=MEAN, std=STD, seed=0, decode_threads=threads)


class PtvKineticsTransform:
    """pytorchvideo's Kinetics training transform on the sample dict (``video``: float
    ``C x T' x H x W`` in [0, 255]), after ``pytorchvideo.transforms.functional``."""

    def __init__(self, num_frames: int, jitter: Sequence[int], crop: int) -> None:
        self.num_frames, self.jitter, self.crop = num_frames, tuple(jitter), crop
        self.mean = torch.tensor(MEAN).view(3, 1, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1, 1)

    def __call__(self, sample: Dict[str, Any]) -> Dict[str, Any]:
        x = sample["video"]
        t = x.shape[1]
        idx = torch.clamp(torch.linspace(0, t - 1, self.num_frames), 0, t - 1).long()
        x = torch.index_select(x, 1, idx)  # UniformTemporalSubsample
        x = x / 255.0  # Div255
        x = (x - self.mean) / self.std  # Normalize
        size = int(torch.randint(self.jitter[0], self.jitter[1] + 1, (1,)))  # RandomShortSide
        _, _, h, w = x.shape
        new = (int(math.floor(h / w * size)), size) if w < h else \
            (size, int(math.floor(w / h * size)))
        x = torch.nn.functional.interpolate(x, size=new, mode="bilinear", align_corners=False)
        top = int(torch.randint(0, x.shape[2] - self.crop + 1, (1,)))  # RandomCrop
        left = int(torch.randint(0, x.shape[3] - self.crop + 1, (1,)))
        x = x[:, :, top:top + self.crop, left:left + self.crop]
        if float(torch.rand(())) < 0.5:  # RandomHorizontalFlip
            x = x.flip(-1)
        return {"video": x, "label": sample["label"]}


def build_theirs(videos: Sequence[Tuple[str, int]], a: argparse.Namespace,
                 workdir: str, fps: float, repeat: int = 1) -> Any:
    """``Kinetics`` over the videos listed ``repeat`` times (it yields one random clip per
    listed video and epoch, so a DataLoader epoch gives ``repeat * len(videos)`` clips)."""
    from pytorchvideo.data import Kinetics, RandomClipSampler

    listing = os.path.join(workdir, "ptv_videos.txt")
    with open(listing, "w") as f:
        f.writelines(f"{p} {label}\n" for p, label in list(videos) * repeat)
    duration = Fraction(a.data_num_frames * a.data_sampling_rate) / Fraction(fps)
    return Kinetics(listing, RandomClipSampler(duration), decode_audio=False,
                    transform=PtvKineticsTransform(a.data_num_frames, a.data_jitter, a.data_crop))


# ================================================================================= timing
def _loop_ours(ds: Any) -> Callable[[int], Any]:
    def step(i: int) -> Any:
        s = ds[(i % len(ds), i)]
        if "skipped" in s:
            raise RuntimeError(f"our dataset skipped {s['skipped']}")
        return s
    return step


def _loop_theirs(ds: Any) -> Callable[[int], Any]:
    it = [iter(ds)]

    def step(i: int) -> Any:
        try:
            return next(it[0])
        except StopIteration:
            it[0] = iter(ds)
            return next(it[0])
    return step


def _time_in_process(step: Callable[[int], Any], offset: int, n: int,
                     times: List[float]) -> Tuple[int, ...]:
    shape: Tuple[int, ...] = ()
    for i in range(n):
        t0 = time.perf_counter()
        s = step(offset + i)
        times.append(time.perf_counter() - t0)
        shape = tuple(s["video"].shape)
    return shape


def _time_loader(impl: str, ds: Any, workers: int, batch: int, n: int,
                 offset: int) -> Tuple[float, int, Tuple[int, ...]]:
    """``(seconds, clips, clip shape)`` of a DataLoader with ``workers`` workers delivering
    ``n`` clips, timed from ``iter(loader)`` (worker start included) to the last batch."""
    from torch.utils.data import DataLoader

    if impl == "ours":
        from mvit_tasks.data.collate import collate_samples

        order = [((offset + i) % len(ds), offset + i) for i in range(n)]
        loader = DataLoader(ds, batch_size=batch, sampler=order, num_workers=workers,
                            collate_fn=collate_samples)
    else:  # an iterable dataset: one clip per (repeated) video, see build_theirs
        loader = DataLoader(ds, batch_size=batch, num_workers=workers)
    t0, clips, shape = time.perf_counter(), 0, ()
    for b in loader:
        clips += b["video"].shape[0]
        shape = tuple(b["video"].shape[1:])
        if clips >= n:
            break
    return time.perf_counter() - t0, clips, shape


def run(args: argparse.Namespace) -> Dict[str, Any]:
    a = args
    workdir = tempfile.mkdtemp(prefix="bench_data_")
    try:
        t0 = time.perf_counter()
        if a.data_root:
            videos, source = find_videos(a.data_root), a.data_root
        else:
            videos = generate_videos(workdir, a.data_num_videos, a.data_video_seconds,
                                     a.data_video_fps, *a.data_video_size, a.data_keyint)
            source = (f"generated: {len(videos)} x {a.data_video_seconds:g} s, "
                      f"{a.data_video_fps} fps, {a.data_video_size[0]}x{a.data_video_size[1]}, "
                      f"H.264 crf 23, keyint {a.data_keyint or 250}")
        gen_s = time.perf_counter() - t0
        from mvit_tasks.data.video_io import probe_video

        fps = probe_video(videos[0][0]).fps or a.data_video_fps
        results = [_measure(a, videos, workers, workdir, fps) for workers in a.data_workers]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"results": results, "videos": source, "num_videos": len(videos),
            "prepare_s": gen_s}


def _measure(a: argparse.Namespace, videos: Sequence[Tuple[str, int]], workers: int,
             workdir: str, fps: float) -> Dict[str, Any]:
    torch.manual_seed(0)
    prev = torch.get_num_threads()
    if workers == 0 and a.data_torch_threads:
        torch.set_num_threads(a.data_torch_threads)
    try:
        built = {}
        for impl in a.data_impls:
            repeat = 1 if workers == 0 else -(-a.data_clips // len(videos))
            ds = build_ours(videos, a) if impl == "ours" else \
                build_theirs(videos, a, workdir, fps, repeat)
            step = _loop_ours(ds) if impl == "ours" else _loop_theirs(ds)
            built[impl] = (ds, step)
        row: Dict[str, Any] = {"workers": workers, "loadavg_1min_start": load1()}
        acc: Dict[str, Dict[str, Any]] = {i: {"times": [], "seconds": 0.0, "clips": 0}
                                          for i in a.data_impls}
        for impl in a.data_impls:  # warm up (lazy imports, FFmpeg init)
            if workers == 0 and a.data_warmup:
                _time_in_process(built[impl][1], 10**6, a.data_warmup, [])
        for r in range(a.data_rounds):
            for impl in a.data_impls:
                ds, step = built[impl]
                rec = acc[impl]
                if workers == 0:
                    t = time.perf_counter()
                    rec["shape"] = _time_in_process(step, r * a.data_clips, a.data_clips,
                                                    rec["times"])
                    rec["seconds"] += time.perf_counter() - t
                    rec["clips"] += a.data_clips
                else:
                    sec, clips, shape = _time_loader(impl, ds, workers, a.data_batch,
                                                     a.data_clips, r * a.data_clips)
                    rec["seconds"] += sec
                    rec["clips"] += clips
                    rec["shape"] = shape
        for impl in a.data_impls:
            rec = acc[impl]
            rate = rec["clips"] / rec["seconds"] if rec["seconds"] else None
            out = {"clips": rec["clips"], "seconds": rec["seconds"], "clips_per_s": rate,
                   "clips_per_s_per_worker": rate / max(1, workers) if rate else None,
                   "output_shape": list(rec["shape"])}
            if rec["times"]:
                out["per_clip"] = stats(rec["times"])
            row[impl] = out
        if "ours" in row and "pytorchvideo" in row:
            row["ratio_ours_over_theirs"] = ratio(row["ours"]["clips_per_s"],
                                                  row["pytorchvideo"]["clips_per_s"])
        row["loadavg_1min_end"] = load1()
        return row
    finally:
        torch.set_num_threads(prev)


# ================================================================================== table
def table(results: List[Dict[str, Any]]) -> List[str]:
    lines = [f"{'workers':>7}  {'impl':<13} {'clips':>6} {'clips/s':>9} {'/worker':>9} "
             f"{'median ms':>10}  output"]
    for row in results:
        for impl in IMPLS:
            r = row.get(impl)
            if not r:
                continue
            med = (r.get("per_clip") or {}).get("median_s")
            lines.append(
                f"{row['workers']:>7}  {impl:<13} {r['clips']:>6} {_f(r['clips_per_s'])} "
                f"{_f(r['clips_per_s_per_worker'])} "
                f"{(f'{med * 1e3:10.1f}' if med else '         -')}  {r['output_shape']}")
        if row.get("ratio_ours_over_theirs") is not None:
            lines.append(f"{row['workers']:>7}  ratio ours/pytorchvideo clips/s: "
                         f"{row['ratio_ours_over_theirs']:.2f}x (load "
                         f"{row.get('loadavg_1min_start')} -> {row.get('loadavg_1min_end')})")
    return lines


def _f(x: Optional[float]) -> str:
    return f"{x:9.2f}" if x is not None else f"{'-':>9}"
