#!/usr/bin/env python
"""Write canonical manifests for Something-Something v2.

Reads labels.json + train.json / validation.json / test.json (or their
something-something-v2-*.json names) from --annotations and finds each video as {id}.webm
(any video extension) or a frame folder {id}/ under --media-root, or through PySlowFast frame
lists (--train-frames / --val-frames with --frame-prefix = DATA.PATH_PREFIX).

Writes to --output: train.csv, val.csv (and test.csv with --test), labels.txt (174 templates
without brackets, ordered by id), flip_pairs.json ({label: mirrored label} for the
"left" <-> "right" templates) and missing_<split>.txt for videos without media.

Example:
  python datasets/prepare_ssv2.py --annotations ssv2/labels --media-root ssv2/videos \\
      --output datasets/ssv2
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional


from mvit_tasks.projects.video_classification.converters import (
    convert_ssv2,
    find_ssv2_annotations,
    run_cli,
)
from mvit_tasks.utils.cli import add_deprecated_alias


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True,
                        help="folder with labels.json, train.json, validation.json[, test.json]")
    parser.add_argument("--media-root", help="folder with {id}.webm videos or {id}/ frames")
    parser.add_argument("--media", choices=("auto", "video", "frames"), default="auto",
                        help="what to look for under --media-root (auto: video, else frames)")
    parser.add_argument("--train-frames", help="PySlowFast frame list for train (train.csv)")
    parser.add_argument("--val-frames", help="PySlowFast frame list for val (val.csv)")
    parser.add_argument("--frame-prefix", default="",
                        help="DATA.PATH_PREFIX: folder the frame-list paths start from")
    parser.add_argument("--test", action="store_true", help="also convert test.json (label -1)")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    add_deprecated_alias(parser, "--out", "--output")
    return parser


def _convert(args: argparse.Namespace) -> Dict[str, Any]:
    found = find_ssv2_annotations(args.annotations)
    wanted = ("train", "val", "test") if args.test else ("train", "val")
    splits = {s: found[s] for s in wanted if s in found}
    if not splits:
        raise ValueError(f"no train/validation JSON in '{args.annotations}'")
    frame_lists = {s: p for s, p in (("train", args.train_frames),
                                     ("val", args.val_frames)) if p}
    return convert_ssv2(found["labels"], splits, args.output, media_root=args.media_root,
                        frame_lists=frame_lists, frame_prefix=args.frame_prefix, media=args.media)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _convert(args))


def cli() -> None:
    """Console script ``mvit-prepare-ssv2``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.prepare_ssv2
    cli()
