"""``tools/demo.py --task kinetics|ssv2|imagenet|classification``: top-5 classes of your video.

The classification task's test protocol on any video file, frame folder or image
(:class:`~mvit_tasks.projects.video_classification.predictor.ClassificationPredictor`: clips x crops
spread over the whole video, averaged; one clip in memory at a time)::

    python tools/demo.py --task kinetics --input my_video.mp4 --weights K400_MVITv2_S.pyth
    python tools/demo.py --task kinetics --input my_video.mp4 --pretrained
    python tools/demo.py --task ssv2 --input clip.webm --weights ssv2.pyth --json out.json
    python tools/demo.py --task imagenet --input cat.jpg --weights MViTv2_S_in1k.pyth
    python tools/demo.py --task classification --config-file CFG --weights W --input V.mp4

Without ``--config-file`` a preset uses its recipe config (``kinetics``:
``mvitv2_s_16x4_k400.yaml``, ``ssv2``: ``mvitv2_s_16x4_ssv2.yaml``, ``imagenet``:
``mvitv2_s_in1k.yaml``). ``--pretrained [TAG]`` loads the official weights of the config's
``MODEL.VARIANT`` (``MODEL.WEIGHTS zoo:<variant>.<tag>``, tag ``k400`` / ``ssv2`` / ``in1k``
by preset). Class names come from ``--classes FILE`` (one per line), else the config's
``CLS.CLASS_LIST`` when that file exists, else the shipped list of the preset's dataset
(Kinetics-400/600/700, SSv2, ImageNet-1K, by class count); otherwise classes print as ``class
i``. Trailing ``KEY VALUE`` pairs override the config (e.g. ``CLS.NUM_ENSEMBLE_VIEWS 10``).
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List, Optional, Sequence

from mvit_tasks.utils.cli import (
    add_deprecated_alias,
    add_device_argument,
    parse_with_overrides,
    resolve_device,
)

DEMO_NAMES = ("classification", "kinetics", "ssv2", "imagenet")
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIGS = {"kinetics": "mvitv2_s_16x4_k400.yaml", "ssv2": "mvitv2_s_16x4_ssv2.yaml",
                   "imagenet": "mvitv2_s_in1k.yaml"}
PRESET_TAGS = {"kinetics": "k400", "ssv2": "ssv2", "imagenet": "in1k"}  # official weights tags
OFFICIAL_LISTS = {("kinetics", 400): "kinetics400", ("kinetics", 600): "kinetics600",
                  ("kinetics", 700): "kinetics700", ("ssv2", 174): "ssv2",
                  ("imagenet", 1000): "imagenet1k"}  # (preset, classes) -> shipped name list


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/demo.py --task kinetics|ssv2|imagenet|classification",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=DEMO_NAMES)
    p.add_argument("--input", nargs="+", required=True,
                   help="video file(s), frame folder(s) or image(s)")
    p.add_argument("--config-file", default="", help="task config (default: the preset's recipe)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--weights", default="", help="checkpoint (any supported format; default: "
                                                 "MODEL.WEIGHTS), loaded strictly")
    w.add_argument("--pretrained", nargs="?", const="", default=None, metavar="TAG",
                   help="the official weights of the config's MODEL.VARIANT (tag default: "
                        "k400 / ssv2 / in1k by preset), fetched once and converted")
    w.add_argument("--random-weights", action="store_true",
                   help="run without weights on purpose (random classes; otherwise an error)")
    p.add_argument("--classes", dest="class_names", default="", metavar="FILE",
                   help="class list, one name per line")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", default="", metavar="FILE", help="also write the results as JSON")
    add_device_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_deprecated_alias(p, "--class-names", "--classes")
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return parse_with_overrides(build_parser(), argv)  # --input a.mp4 KEY VALUE: the overrides are opts


def config_file(task: str, given: str) -> str:
    """``given``, else the preset's recipe config (``--task classification`` needs one)."""
    if given:
        return given
    if task not in DEFAULT_CONFIGS:
        raise ValueError(f"--task {task} needs --config-file (presets with a default config: "
                         f"{sorted(DEFAULT_CONFIGS)})")
    return os.path.join(CONFIGS, DEFAULT_CONFIGS[task])


def pretrained_weights(task: str, variant: str, tag: str) -> str:
    """The ``zoo:<variant>.<tag>`` spec of the official weights (``tag`` default: the preset's
    dataset, ``k400`` / ``ssv2`` / ``in1k``), which ``MODEL.WEIGHTS`` fetches and converts.

    TODO(issue 12 part 1): zoo specs come with ``mvit_tasks.hub``; without it this says so
    and points at ``--weights``."""
    try:
        from mvit_tasks.hub.zoo import ZOO_PREFIX
    except ImportError:
        raise ValueError("--pretrained: official weights cannot be fetched by this version "
                         "(no mvit_tasks.hub); download the checkpoint and pass --weights "
                         "FILE") from None
    if not variant:
        raise ValueError("--pretrained needs a config with MODEL.VARIANT (a registered model)")
    tag = tag or PRESET_TAGS.get(task, "")
    return f"{ZOO_PREFIX}{variant}" + (f".{tag}" if tag else "")


def class_names(args: argparse.Namespace, cfg: Any) -> Optional[List[str]]:
    """``--classes``, else the config's ``CLS.CLASS_LIST`` if the file exists, else the
    official list of the preset's dataset (:mod:`mvit_tasks.data.classnames`, by class count:
    Kinetics-400/600/700, SSv2, ImageNet-1K), else ``None`` (printed as ``class i``)."""
    from mvit_tasks.data.manifest import read_class_list

    if args.class_names:
        return read_class_list(args.class_names)
    c = cfg.CLS
    if c.CLASS_LIST:
        path = c.CLASS_LIST if os.path.isabs(c.CLASS_LIST) else os.path.join(c.DATA_DIR,
                                                                           c.CLASS_LIST)
        if os.path.isfile(path):
            return read_class_list(path)
    official = OFFICIAL_LISTS.get((args.task, cfg.MODEL.NUM_CLASSES))
    try:
        from mvit_tasks.data.classnames import load_class_names
    except ImportError:  # an install without the shipped lists
        return None
    return load_class_names(official) if official else None


def format_result(result: Any, k: int) -> List[str]:
    """The printed table: rank, score, name (or ``class i``)."""
    lines = [f"{result.path}: {result.num_views} views"]
    for rank, (i, name, score) in enumerate(result.topk(k), start=1):
        lines.append(f"  {rank}. {score:6.3f}  {name if name is not None else f'class {i}'}")
    return lines


def main(argv: Sequence[str]) -> int:
    """Print the top-k of every ``--input`` (and write ``--json``); returns 0."""
    from mvit_tasks.data.video_io import VideoDecodeError
    from mvit_tasks.utils.cli import UserError
    from mvit_tasks.utils.fileio import write_json

    from .predictor import ClassificationPredictor, ViewProtocol, build_model, load_task_config

    args = parse_args(argv)
    device = resolve_device(args.device)
    missing = [p for p in args.input if not os.path.exists(p)]
    if missing:  # before building the model
        raise FileNotFoundError(f"input not found: {missing[0]}")
    cfg_file = config_file(args.task, args.config_file)
    weights = args.weights or None
    if args.pretrained is not None:
        variant = load_task_config(cfg_file, args.opts, args.task).MODEL.VARIANT
        weights = pretrained_weights(args.task, variant, args.pretrained)
    cfg = load_task_config(cfg_file, args.opts, args.task, weights)
    if not cfg.MODEL.WEIGHTS and not args.random_weights:
        raise UserError(f"demo --task {args.task}: no weights (--weights, --pretrained or "
                        "MODEL.WEIGHTS): the classes shown would be random; pass "
                        "--random-weights to run so")
    model = build_model(cfg)
    views = ViewProtocol.from_cfg(cfg)
    predictor = ClassificationPredictor(model, views, class_names(args, cfg), device)
    print(f"[demo] {args.task}: {os.path.relpath(cfg_file)}, {views.num_clips} clips x "
          f"{views.num_crops} crops ({views.sampling} sampling, {views.num_frames}x"
          f"{views.sampling_rate}, {views.crop_size} px), {device}", flush=True)
    results: List[Dict[str, Any]] = []
    for path in args.input:
        start = time.perf_counter()
        try:
            result = predictor(path)
        except VideoDecodeError as e:  # a user's file: one line, not a traceback
            raise UserError(str(e)) from None
        print("\n".join(format_result(result, args.top_k)), flush=True)
        results.append({**result.to_dict(args.top_k),
                        "seconds": round(time.perf_counter() - start, 3)})
    if args.json:
        write_json(args.json, {"task": args.task, "config_file": cfg_file,
                               "weights": cfg.MODEL.WEIGHTS,
                               "views": {"clips": views.num_clips, "crops": views.num_crops,
                                         "sampling": views.sampling,
                                         "ensemble": views.ensemble},
                               "results": results})
        print(f"[demo] wrote {args.json}")
    return 0
