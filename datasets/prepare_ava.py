#!/usr/bin/env python
"""Prepare AVA v2.2 for ``--task ava`` (layout: projects/ava/README; SlowFast DATASET.md).

Sub-commands::

    # check annotation / box CSVs (file:line on the first bad row) and print counts
    python datasets/prepare_ava.py validate --annotations datasets/ava/annotations
    # 30-fps JPEG frames of the 15-min segments + frame_lists/{train,val}.csv (SlowFast layout)
    python datasets/prepare_ava.py frames --videos datasets/ava/videos --out datasets/ava \
        --split-videos train=ava_train_v2.2.csv val=ava_val_v2.2.csv
    # the synthetic demo set
    python datasets/prepare_ava.py demo --out datasets/demo_ava

Without frames, ``AVA.FRAME_LIST_DIR ""`` decodes ``videos/<id>.mp4`` segments on the fly (PyAV).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_GT = ("ava_train_v2.2.csv", "ava_val_v2.2.csv")
_BOXES = ("ava_val_predicted_boxes.csv",)


def validate(folder: str, num_classes: int) -> List[str]:
    """Read every known AVA file in ``folder``; returns summary lines (raises on a bad row)."""
    from projects.ava.converters import read_ava_boxes
    from projects.ava.evaluation.io import read_exclusions, read_labelmap

    lines = []
    valid = set(range(1, num_classes + 1))
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        base = name[:-3] if name.endswith(".gz") else name
        if base in _GT:
            recs = read_ava_boxes(path, valid)
        elif base in _BOXES or base.startswith("ava_detection_"):
            recs = read_ava_boxes(path, valid, allow_unlabelled=True)
        elif base.endswith(".pbtxt"):
            lines.append(f"{name}: {len(read_labelmap(path))} classes")
            continue
        elif "excluded_timestamps" in base:
            lines.append(f"{name}: {len(read_exclusions(path))} excluded keyframes")
            continue
        else:
            continue
        boxes = sum(len(r.boxes) for r in recs.values())
        lines.append(f"{name}: {len(recs)} keyframes, {boxes} boxes, "
                     f"{len({r.video_id for r in recs.values()})} videos")
    return lines


def extract_frames(video: str, out_dir: str, fps: float = 30.0, start: float = 900.0,
                   end: float = 1800.0) -> List[str]:
    """JPEG frames ``<out_dir>/<id>/<id>_%06d.jpg`` at ``fps`` of ``[start, end)`` s (the file
    may be the full video or a cut segment starting at ``start``); returns the paths."""
    import av
    from PIL import Image

    vid = os.path.splitext(os.path.basename(video))[0]
    folder = os.path.join(out_dir, vid)
    os.makedirs(folder, exist_ok=True)
    paths: List[str] = []
    with av.open(video) as container:
        stream = container.streams.video[0]
        offset = start if (container.duration or 0) / 1e6 > end - start + 1 else 0.0
        if offset:
            container.seek(int(offset / stream.time_base), stream=stream)
        next_t = offset
        step = 1.0 / float(stream.average_rate or fps)  # one source frame shows this long
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else next_t
            if t >= offset + (end - start):
                break
            while next_t < t + step - 1e-6:  # each output time takes the frame showing then
                p = os.path.join(folder, f"{vid}_{len(paths) + 1:06d}.jpg")
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(p, quality=90)
                paths.append(p)
                next_t = offset + len(paths) / fps
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--annotations", required=True)
    v.add_argument("--num-classes", type=int, default=80)
    f = sub.add_parser("frames")
    f.add_argument("--videos", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--fps", type=float, default=30.0)
    f.add_argument("--split-videos", nargs="+", default=[],
                   help="SPLIT=GT_CSV: list a split's videos in frame_lists/SPLIT.csv")
    d = sub.add_parser("demo")
    d.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "validate":
        print("\n".join(validate(args.annotations, args.num_classes)))
    elif args.cmd == "demo":
        from projects.ava.synthetic import generate_demo_ava

        print(generate_demo_ava(args.out))
    else:
        from projects.ava.converters import read_ava_boxes

        frames_dir = os.path.join(args.out, "frames")
        lists = os.path.join(args.out, "frame_lists")
        os.makedirs(lists, exist_ok=True)
        videos = {os.path.splitext(n)[0]: os.path.join(args.videos, n)
                  for n in sorted(os.listdir(args.videos))}
        for spec in args.split_videos:
            split, gt = spec.split("=", 1)
            ids = sorted({r.video_id for r in read_ava_boxes(gt).values()})
            with open(os.path.join(lists, f"{split}.csv"), "w") as out:
                out.write("original_vido_id video_id frame_id path labels\n")
                for i, vid in enumerate(ids):
                    if vid not in videos:
                        print(f"missing video {vid} (listed in {gt})", file=sys.stderr)
                        continue
                    for k, path in enumerate(extract_frames(videos[vid], frames_dir, args.fps)):
                        out.write(f"{vid} {i} {k} {os.path.relpath(path, frames_dir)} \"\"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
