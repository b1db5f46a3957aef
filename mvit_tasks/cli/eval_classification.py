#!/usr/bin/env python
"""Top-1 / top-5 / mean class accuracy of saved video classification predictions.

Reads a ``predictions.npz`` written by the video classification evaluator (or any ``.npz`` with
``video_id`` (N,) str, ``label`` (N,) int (-1 = unlabelled) and ``logits`` or ``probs`` (N, K);
several rows with one ``video_id`` are views of that video and are ensembled, SlowFast-style).

Examples::

    python tools/eval_classification.py --predictions output/eval/predictions.npz
    python tools/eval_classification.py --predictions views.npz --classes labels.txt \\
        --ensemble max --json metrics.json --output reports/
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


from mvit_tasks.data.manifest import read_class_list
from mvit_tasks.utils.fileio import write_json
from mvit_tasks.projects.video_classification.evaluator import (
    load_predictions,
    write_classification_reports,
)
from mvit_tasks.projects.video_classification.metrics import (
    ENSEMBLE_METHODS,
    PredictionsFileError,
    evaluate_predictions,
)
from mvit_tasks.utils.cli import add_aliases


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", required=True, help="the .npz of predictions")
    p.add_argument("--classes", help="class list, one name per line (line i = class i)")
    p.add_argument("--ensemble", choices=ENSEMBLE_METHODS,
                   help="how views are combined (default: the file's method, else 'sum')")
    p.add_argument("--top-k", type=int, nargs="+", default=[1, 5], metavar="K",
                   help="the top-k accuracies to compute (default: 1 5)")
    p.add_argument("--expected-views", type=int,
                   help="views per video (clips x crops); counts videos with fewer / more")
    p.add_argument("--task-name", default="video_classification", help="key of the JSON")
    p.add_argument("--json", metavar="FILE", help="also write {task: {metric: value}} here")
    p.add_argument("--output", metavar="DIR",
                   help="write per_class_accuracy.json and confusion_matrix.png here")
    add_aliases(p, [("--json-out", "--json"), ("--output-dir", "--output"),
                    ("--topk", "--top-k")])
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        views, meta = load_predictions(args.predictions)
        num_classes = views.scores.shape[1]
        names = meta.get("class_names")
        if args.classes:
            names = read_class_list(args.classes)
            if len(names) != num_classes:
                raise PredictionsFileError(
                    f"{args.classes}: {len(names)} class names, but {args.predictions} has "
                    f"{num_classes} classes")
        ensemble = args.ensemble or meta.get("ensemble", "sum")
        result = evaluate_predictions(views, ensemble, args.top_k, args.expected_views)
    except (PredictionsFileError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"{args.predictions}: {m['num_videos']} labelled videos, {m['num_views']} views, "
          f"ensemble={ensemble}")
    if "mean_class_accuracy" in m:
        tops = "  ".join(f"top-{k}: {m[f'top{k}']:.2f}" for k in args.top_k)
        print(f"{tops}  mean class accuracy: {m['mean_class_accuracy']:.2f}  "
              f"single-view top-1: {m['top1_single_view']:.2f}")
    else:
        print("no labelled videos: no accuracy")
    for key, value in m.items():
        if key.startswith("num_") and key not in ("num_videos", "num_views") and value:
            print(f"{key}: {value}")
    results = {args.task_name: m}
    if args.json:
        write_json(args.json, results, indent=1)  # strict JSON: NaN -> null
    if args.output:
        paths = write_classification_reports(args.output, result.videos, num_classes, names)
        print("wrote " + ", ".join(paths))
    return 0


def cli() -> None:
    """Console script ``mvit-eval-classification``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.eval_classification
    cli()
