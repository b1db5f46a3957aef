#!/usr/bin/env python
"""COCO box / mask AP of a COCO results json against a COCO instances json.

Prints AP, AP50, AP75, APs, APm, APl and per-category AP (percent; pycocotools' COCOeval, or
faster-coco-eval with ``--backend faster_coco_eval``). NaN (e.g. APs without small objects) is
written as null in ``--json``.

Examples::

    python tools/eval_coco.py --groundtruth instances_val2017.json \\
        --detections coco_instances_results.json
    # a training run's evaluation (OUTPUT_DIR/eval/<tag>/), re-scored: the same numbers
    python tools/eval_coco.py --groundtruth instances_val2017.json \\
        --detections OUT/eval/epoch_0012/coco_instances_results.json \\
        --image-ids OUT/eval/epoch_0012/coco_evaluated_image_ids.json
    python tools/eval_coco.py -g instances.json -d results.json --iou-type bbox \\
        --json metrics.json

Exit status: 0 on success, 2 for bad input (unreadable or invalid files).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Optional, Sequence


from mvit_tasks.projects.coco_detection.converters import CocoFormatError
from mvit_tasks.projects.coco_detection.evaluator import (
    BACKENDS,
    IOU_TYPES,
    evaluate_files,
    format_results_table,
)
from mvit_tasks.utils.cli import add_aliases


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groundtruth", "-g", required=True, metavar="JSON",
                   help="COCO instances json (ground truth)")
    p.add_argument("--detections", "-d", required=True, metavar="JSON",
                   help="COCO results json (detections)")
    p.add_argument("--iou-type", nargs="+", choices=IOU_TYPES, default=list(IOU_TYPES),
                   help="what to evaluate (default: bbox segm)")
    p.add_argument("--backend", choices=BACKENDS, default="pycocotools")
    p.add_argument("--image-ids", metavar="JSON",
                   help="evaluate these images only (a json list; an evaluation's "
                        "coco_evaluated_image_ids.json: then the numbers are that run's)")
    p.add_argument("--json", metavar="FILE", help="also write {iou_type: {metric: value}} here")
    add_aliases(p, [("--gt", "--groundtruth"), ("--dt", "--detections"),
                    ("--json-out", "--json")])
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        results = evaluate_files(args.groundtruth, args.detections, args.iou_type, backend=args.backend,
                                 image_ids_json=args.image_ids)
    except (CocoFormatError, ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_results_table(results))
    if args.json:
        clean = {t: {k: (None if math.isnan(v) else v) for k, v in m.items()}
                 for t, m in results.items()}
        with open(args.json, "w") as f:
            json.dump(clean, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def cli() -> None:
    """Console script ``mvit-eval-coco``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.eval_coco
    cli()
