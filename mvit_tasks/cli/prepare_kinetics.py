#!/usr/bin/env python
"""Write canonical manifests (train.csv / val.csv / test.csv + labels.txt) for Kinetics.

Two inputs (see datasets/README.md):

  official       the DeepMind/CVDF CSVs (label,youtube_id,time_start,time_end,split[,is_cc]),
                 videos found by name ({youtube_id}_{start:06d}_{end:06d}.mp4 by default)
                 anywhere under --video-root (flat or <split>/<label>/ folders)
  slowfast-list  a PySlowFast "path label" list (paths relative to DATA.PATH_PREFIX)

Examples:
  python datasets/prepare_kinetics.py official --video-root datasets/k400 --output datasets/k400 \\
      --train k400/annotations/train.csv --val k400/annotations/validate.csv --num-classes 400
  python datasets/prepare_kinetics.py slowfast-list --list slowfast/train.csv \\
      --prefix /data/k400 --output datasets/k400/train.csv --classes datasets/k400/labels.txt

Missing videos are skipped, counted and listed in missing_<split>.txt; the exit status is 0
unless the input is malformed (then the error names the file and line).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional


from mvit_tasks.projects.video_classification.converters import (
    convert_kinetics,
    convert_path_label_list,
    run_cli,
)
from mvit_tasks.projects.video_classification.converters.kinetics import (
    DEFAULT_NAME_FORMAT,
    UNTRIMMED_NAME_FORMAT,
)
from mvit_tasks.utils.cli import add_deprecated_alias


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    off = sub.add_parser("official", help="official Kinetics CSVs + a video folder")
    off.add_argument("--video-root", required=True, help="folder with the videos (searched "
                     "recursively)")
    off.add_argument("--output", required=True, metavar="DIR",
                     help="output folder for <split>.csv, labels.txt")
    off.add_argument("--train", help="official train CSV")
    off.add_argument("--val", help="official validation CSV (validate.csv)")
    off.add_argument("--test", help="official test CSV (labels optional)")
    off.add_argument("--name-format", default=None,
                     help=f"video file name without extension (default {DEFAULT_NAME_FORMAT!r}; "
                          "fields youtube_id, time_start, time_end, label, split)")
    off.add_argument("--untrimmed", action="store_true",
                     help=f"videos are full downloads named {UNTRIMMED_NAME_FORMAT!r}: write "
                          "start_sec/end_sec from the CSV")
    off.add_argument("--classes", help="labels.txt to use instead of the train CSV's labels")
    off.add_argument("--num-classes", type=int, help="expected class count (400/600/700)")
    lst = sub.add_parser("slowfast-list", help="a PySlowFast 'path label' list")
    lst.add_argument("--list", required=True, help="the list file")
    lst.add_argument("--prefix", default="", help="DATA.PATH_PREFIX: folder of the paths")
    lst.add_argument("--output", required=True, metavar="CSV",
                     help="manifest to write (e.g. k400/train.csv)")
    lst.add_argument("--separator", default=" ", help="DATA.PATH_LABEL_SEPARATOR (default ' ')")
    lst.add_argument("--classes", help="labels.txt: write class names (and copy it)")
    lst.add_argument("--num-classes", type=int, help="labels must be below this")
    lst.add_argument("--allow-unlabelled", action="store_true", help="accept label -1")
    for sub_parser in (off, lst):
        add_deprecated_alias(sub_parser, "--out", "--output")
    return parser


def _convert(args: argparse.Namespace) -> Dict[str, Any]:
    if args.mode == "official":
        splits = {s: getattr(args, s) for s in ("train", "val", "test") if getattr(args, s)}
        if not splits:
            raise ValueError("give at least one of --train, --val, --test")
        fmt = args.name_format or (UNTRIMMED_NAME_FORMAT if args.untrimmed
                                   else DEFAULT_NAME_FORMAT)
        return convert_kinetics(splits, args.video_root, args.output, name_format=fmt,
                                classes=args.classes, num_classes=args.num_classes,
                                segments=args.untrimmed)
    return convert_path_label_list(args.list, args.output, path_prefix=args.prefix,
                                   separator=args.separator, classes=args.classes,
                                   num_classes=args.num_classes,
                                   allow_unlabelled=args.allow_unlabelled)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _convert(args))


def cli() -> None:
    """Console script ``mvit-prepare-kinetics``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.prepare_kinetics
    cli()
