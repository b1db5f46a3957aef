#!/usr/bin/env python
"""AVA frame-mAP@0.5 of a detection CSV, as the official ActivityNet evaluator computes it.

Inputs are AVA's own files (CSV may be gzipped): ground truth and detections as
``video_id,timestamp,x1,y1,x2,y2,action_id[,score|person_id]`` (normalised boxes), a label map
``.pbtxt`` and the excluded timestamps ``video_id,timestamp``. Prints the mAP, the AP of every
label-map class, the row counts (rows with ids outside the label map are ignored, as the
official code does, and counted) and warnings: inputs that the official code scores as they are
but that look wrong (boxes outside [0, 1], inverted or zero-area boxes, nan/inf, repeated rows,
ids outside the label map's range) are scored the same way here, counted and listed;
``--strict`` refuses them instead. ``--protocol mmaction2`` evaluates mmaction2's variant
(frames without ground truth ignored); ``--breakdown`` adds the person-movement /
object-manipulation / person-interaction means.

Examples::

    python tools/eval_ava.py --groundtruth ava_val_v2.2.csv --detections detections.csv \\
        --labelmap ava_action_list_v2.2_for_activitynet_2019.pbtxt \\
        --exclusions ava_val_excluded_timestamps_v2.2.csv --json result.json
    python tools/eval_ava.py ... --protocol mmaction2 --breakdown

``--json`` writes ``{"mAP": float, "per_class": {class_name: AP or null}, "protocol": ...,
"counts": {...}, "warnings": [...]}`` (null: no ground truth for the class; ``groups`` with
``--breakdown``). Exit status: 0 ok, 2 malformed input or, with ``--strict``, a warning (the
message names file and line).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence


from mvit_tasks.projects.ava.evaluation import PROTOCOLS, AvaFormatError, evaluate_files
from mvit_tasks.utils.cli import add_aliases


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groundtruth", "-g", required=True, help="ground-truth CSV (.csv[.gz])")
    p.add_argument("--detections", "-d", required=True, help="detection CSV (.csv[.gz])")
    p.add_argument("--labelmap", "-l", required=True, help="label map .pbtxt of the classes")
    p.add_argument("--exclusions", "-e", help="excluded timestamps CSV (video_id,timestamp)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    p.add_argument("--protocol", choices=PROTOCOLS, default="activitynet",
                   help="activitynet (official, default) or mmaction2 (ignores frames "
                        "without ground truth)")
    p.add_argument("--breakdown", action="store_true",
                   help="also print the PM / OM / PI (movement / object / interaction) means")
    p.add_argument("--iou-threshold", type=float, default=0.5,
                   help="matching IoU (default 0.5)")
    p.add_argument("--strict", action="store_true",
                   help="refuse inputs the official evaluator accepts but that look wrong "
                        "(boxes outside [0, 1], inverted or zero-area boxes, nan/inf, repeated "
                        "rows, ids outside the label map's range) instead of counting them")
    add_aliases(p, [("--json-out", "--json"), ("--iou", "--iou-threshold")])
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        result = evaluate_files(args.groundtruth, args.detections, args.labelmap,
                                args.exclusions, protocol=args.protocol,
                                breakdown=args.breakdown, iou_threshold=args.iou_threshold,
                                strict=args.strict)
    except AvaFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(result.summary_lines()))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_json_dict(), f, indent=1)
        print(f"wrote {args.json}")
    return 0


def cli() -> None:
    """Console script ``mvit-eval-ava``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.eval_ava
    cli()
