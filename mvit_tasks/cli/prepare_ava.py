#!/usr/bin/env python
"""Prepare AVA v2.2 for ``--task ava`` (layout: projects/ava/README; SlowFast DATASET.md).

Sub-commands::

    # every official file under the tree (annotations, person boxes, frame lists + a sample of
    # frames): counts, warnings, exit 2 with file:line on the first bad row
    python datasets/prepare_ava.py validate --root datasets/ava
    # 30-fps JPEG frames of the 15-min segments + frame_lists/{train,val}.csv (SlowFast layout)
    python datasets/prepare_ava.py frames --videos datasets/ava/videos --output datasets/ava \
        --split-videos train=ava_train_v2.2.csv val=ava_val_v2.2.csv
    # the synthetic demo set
    python datasets/prepare_ava.py demo --output datasets/demo_ava

Without frames, ``AVA.FRAME_LIST_DIR ""`` decodes ``videos/<id>.mp4`` segments on the fly (PyAV).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

from mvit_tasks.utils.cli import add_deprecated_alias


def validate(root: str, num_classes: int = 80, frame_dir: Optional[str] = None,
             sample: int = 20, strict: bool = False) -> int:
    """Print what :func:`mvit_tasks.projects.ava.converters.validate.validate_tree` finds; returns the exit
    status (0 ok, 2 a bad row or, with ``strict``, a warning), with no traceback."""
    from mvit_tasks.projects.ava.converters.validate import AvaFormatError, validate_tree

    if not os.path.isdir(root):
        print(f"error: {root} is not a folder", file=sys.stderr)
        return 2
    try:
        report = validate_tree(root, num_classes, frame_dir, sample)
    except AvaFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.text())
    if strict and report.warnings:
        print(f"error: {len(report.warnings)} warnings (--strict)", file=sys.stderr)
        return 2
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check every official AVA file under a folder")
    where = v.add_mutually_exclusive_group(required=True)
    where.add_argument("--root", help="AVA folder (annotations/, frame_lists/, frames/ ...)")
    where.add_argument("--annotations", help="an annotation folder alone (same as --root)")
    v.add_argument("--frames", default=None,
                   help="folder of the frame-list paths (default: ROOT/frames)")
    v.add_argument("--num-classes", type=int, default=80)
    v.add_argument("--sample-videos", type=int, default=20,
                   help="videos per frame list whose frames are looked up on disk")
    v.add_argument("--strict", action="store_true", help="warnings are errors (exit 2)")
    f = sub.add_parser("frames", help="JPEG frames of the videos + frame_lists/ (SlowFast layout)")
    f.add_argument("--videos", required=True, help="folder of <video_id>.<ext> videos")
    f.add_argument("--output", required=True, metavar="DIR",
                   help="AVA folder to write frames/ and frame_lists/ into")
    f.add_argument("--fps", type=float, default=30.0)
    f.add_argument("--split-videos", nargs="+", default=[],
                   help="SPLIT=GT_CSV: list a split's videos in frame_lists/SPLIT.csv")
    d = sub.add_parser("demo", help="write the synthetic demo set")
    d.add_argument("--output", required=True, metavar="DIR", help="folder of the demo set")
    for sub_parser in (f, d):
        add_deprecated_alias(sub_parser, "--out", "--output")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "validate":
        return validate(args.root or args.annotations, args.num_classes, args.frames,
                        args.sample_videos, args.strict)
    if args.cmd == "demo":
        from mvit_tasks.projects.ava.synthetic import generate_demo_ava

        print(generate_demo_ava(args.output))
    else:
        from mvit_tasks.projects.ava.converters import read_ava_boxes

        frames_dir = os.path.join(args.output, "frames")
        lists = os.path.join(args.output, "frame_lists")
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


def cli() -> None:
    """Console script ``mvit-prepare-ava``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.prepare_ava
    cli()
