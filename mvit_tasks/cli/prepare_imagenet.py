#!/usr/bin/env python
"""Write canonical manifests (train.csv, val.csv, labels.txt) for ImageNet-1k.

--root holds train/<wnid>/*.JPEG and val/ (class folders, or flat images labelled by
--val-annotations: Kaggle LOC_val_solution.csv, a wnid-per-line txt, or the devkit's
ILSVRC2012_validation_ground_truth.txt together with --val-synsets = wnids in devkit id order).
labels.txt holds the sorted wnids (index = torchvision ImageFolder class index).

Example:
  python datasets/prepare_imagenet.py --root /data/imagenet --output /data/imagenet \\
      --val-annotations /data/imagenet/LOC_val_solution.csv
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional


from mvit_tasks.projects.video_classification.converters import (
    convert_imagenet,
    run_cli,
)
from mvit_tasks.utils.cli import add_deprecated_alias


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder with train/ and val/")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="output folder (use --root for relative paths)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"],
                        choices=("train", "val"), help="splits to convert")
    parser.add_argument("--val-annotations", help="labels of a flat val/ folder")
    parser.add_argument("--val-synsets", help="wnids in devkit ILSVRC2012_ID order (for the "
                                              "devkit ground-truth txt)")
    parser.add_argument("--classes", help="labels.txt of wnids (needed without 'train')")
    add_deprecated_alias(parser, "--out", "--output")
    return parser


def _convert(args: argparse.Namespace) -> Dict[str, Any]:
    return convert_imagenet(args.root, args.output, splits=args.splits,
                            val_annotations=args.val_annotations,
                            val_synsets=args.val_synsets, classes=args.classes)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _convert(args))


def cli() -> None:
    """Console script ``mvit-prepare-imagenet``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.prepare_imagenet
    cli()
