#!/usr/bin/env python
"""Demos of mvit-tasks; one mode per flag.

``--quickstart`` (``make demo``): the video classification demo through the real engine,
i.e. exactly::

    python tools/train_net.py --task classification \\
        --config-file projects/video_classification/configs/demo_moving_shapes.yaml

It generates the Moving Shapes dataset (``mvit_tasks.data.synthetic``: a shape moving left /
right / up / down, growing or shrinking; real H.264 files decoded with PyAV) under
``datasets/demo_clips`` if missing, trains a tiny MViTv2 on the CPU for 20 epochs and
evaluates the held-out split. Then it prints held-out top-1 next to chance. Outputs (metrics,
plots, TensorBoard, checkpoints, per-class accuracy, confusion matrix) go to ``--output``.
Extra arguments are ``KEY VALUE`` config overrides, e.g. ``SOLVER.MAX_EPOCH 5``.

``--task NAME [ARGS...]`` (``--task`` anywhere in the arguments): a project's own demo on your
data: ``kinetics`` / ``ssv2`` / ``imagenet`` / ``classification`` (top-5 classes of a video or
image), ``ava`` (person boxes and their top actions drawn on a video), ``coco`` (detections
drawn on images or a video). Projects provide it as ``projects/<project>/demo.py`` with
``DEMO_NAME`` (or several ``DEMO_NAMES``, which then receive ``--task NAME`` first) and
``main(argv) -> int``; ``--task NAME --help`` shows its arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mvit_tasks.utils.cli import add_deprecated_alias, parse_flags_and_overrides

DEMO_CONFIG = "projects/video_classification/configs/demo_moving_shapes.yaml"  # checkout or shipped


def run_quickstart(args: argparse.Namespace) -> Dict[str, Any]:
    """Train + evaluate the demo through ``mvit-train`` (tools/train_net.py); returns its final
    report."""
    from mvit_tasks.cli import train_net

    # --overwrite: `make demo` may be run again; it replaces its own earlier output
    argv = ["--task", "classification", "--config-file", DEMO_CONFIG,
            "--overwrite", "OUTPUT_DIR", args.output, "CLS.DATA_DIR", args.data, *args.opts]
    print("[demo] python tools/train_net.py " + " ".join(argv), flush=True)
    report = train_net.main(argv)
    from mvit_tasks.data.manifest import read_class_list

    metrics = report["results"]["classification"]
    num_classes = len(read_class_list(os.path.join(args.data, "labels.txt")))
    summary = {"val_top1": round(metrics["top1"], 2), "chance_top1": round(100.0 / num_classes, 2),
               "num_val": metrics["num_videos"], "iterations": report["iterations"],
               "train_seconds": round(report["train_seconds"], 1),
               "skipped_train": report["skipped_train_count"], "output_dir": args.output}
    print(json.dumps(summary, indent=2), flush=True)
    return report


def project_demos() -> Dict[str, Any]:
    """``{name: module}`` of every project's ``demo.py`` (``mvit_tasks.projects.<p>.demo``, its
    ``DEMO_NAMES`` or ``DEMO_NAME``)."""
    from mvit_tasks.tasks import project_submodules

    found: Dict[str, Any] = {}
    for package, module in project_submodules("demo").items():
        names = getattr(module, "DEMO_NAMES", None) or [
            getattr(module, "DEMO_NAME", package.split(".")[-1])]
        found.update({name: module for name in names})
    return found


def split_task(argv: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """``(NAME, the other arguments)`` of ``--task NAME`` / ``--task=NAME`` anywhere in
    ``argv`` (its first occurrence); ``(None, argv)`` without one."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--task="):
            return arg[len("--task="):], argv[:i] + argv[i + 1:]
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2:]
    return None, argv


def run_project_demo(name: str, rest: List[str]) -> int:
    """Run the demo registered as ``name`` on ``rest``; 2 (and the list) if there is none."""
    demos = project_demos()
    if name not in demos:
        print(f"demo --task {name}: no such demo (available: {sorted(demos)})", file=sys.stderr)
        return 2
    module = demos[name]
    if getattr(module, "DEMO_NAMES", None):  # one module, several tasks: it is told which
        rest = ["--task", name, *rest]
    return int(module.main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quickstart", action="store_true",
                      help="train a tiny MViTv2 on generated Moving Shapes clips (CPU, minutes)")
    mode.add_argument("--task", help="a project's demo: kinetics | ssv2 | imagenet | "
                                     "classification | ava | coco (its arguments follow)")
    parser.add_argument("--data", default=os.path.join("datasets", "demo_clips"),
                        help="demo dataset folder (generated if missing)")
    parser.add_argument("--output", default=os.path.join("output", "demo_moving_shapes"),
                        metavar="DIR", help="output folder (OUTPUT_DIR of the run)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_deprecated_alias(parser, "--out", "--output")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return parse_flags_and_overrides(build_parser(), argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--debug"]  # run_cli's
    name, rest = split_task(argv)
    if name is not None and "--quickstart" not in rest:  # the rest belongs to that demo
        return run_project_demo(name, rest)
    args = parse_args(argv)
    if args.quickstart:
        run_quickstart(args)
        return 0
    print(f"demo --task {args.task}: no such demo", file=sys.stderr)
    return 2


def cli() -> None:
    """Console script ``mvit-demo``: user errors are one line and exit 2 (``--debug``: traceback)."""
    from mvit_tasks.utils.cli import run_cli

    sys.exit(run_cli(main, sys.argv[1:]))


if __name__ == "__main__":  # python -m mvit_tasks.cli.demo
    cli()
