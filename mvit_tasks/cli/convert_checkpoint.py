#!/usr/bin/env python3
"""Convert MViT checkpoints between PySlowFast / mvit / torchvision / timm / pytorchvideo /
detectron2 layouts and ours.

Import (default): read IN safely, convert to our layout and write
``{"model": state_dict, "source": ..., "converted_from": ...}`` to OUT (atomically)::

    tools/convert_checkpoint.py MViTv2_S_16x4_k400_f302660347.pyth mvitv2_s_16x4_k400.pth

With ``--source-config`` (an official SlowFast / mvit YAML) also write our config for the same
model next to OUT (``OUT`` with a ``.yaml`` suffix) and check that the weights load strictly
into the model it describes::

    tools/convert_checkpoint.py --source slowfast \\
        --source-config SlowFast/configs/Kinetics/MVITv2_S_16x4.yaml IN.pyth OUT.pth

A SlowFast config with ``DETECTION.ENABLE: True`` gives a config of the ``ava`` task
(``AVA.ROI_*`` from ``DETECTION.*``, see ``projects/ava/official_config.py``), and
the weights are checked against the model ``tools/train_net.py --task ava`` builds from it.

Export: ``--to SOURCE`` writes IN (any supported layout) in SOURCE's layout, e.g. for round
trips or to hand weights back to the original codebase (``.pkl`` OUT for detectron2 writes a
pickle of numpy arrays like its model zoo; 0-d tensors stay 0-d).

Whole detectors (detectron2 ``GeneralizedRCNN`` checkpoints: Mask / Cascade Mask R-CNN) convert
through the detector layout their project registers (``projects/coco_detection``: keys
``detector.*``), both ways: a detectron2 ``model_final.pkl`` becomes a checkpoint that
``--task coco`` loads with ``MODEL.WEIGHTS`` (the line printed names the ``COCO.*`` settings of
its architecture), and ``--to detectron2`` of a COCO checkpoint names every tensor as
detectron2 does, refusing (exit 2) any key it cannot map::

    tools/convert_checkpoint.py model_final.pkl mask_rcnn_mvitv2_t.pth
    tools/convert_checkpoint.py --to detectron2 output/checkpoints/best.pth model_final.pkl

Exit status: 0 on success, 2 for bad input (unreadable or unsafe file, unknown layout,
checkpoint that does not fit the config).
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from typing import Any, Dict, List, Optional


SOURCES = ("slowfast", "mvit", "torchvision", "timm", "pytorchvideo", "detectron2")
# How each layout's own tools expect the state dict to be wrapped in a file.
_WRAP = {"slowfast": "model_state", "mvit": "model_state", "pytorchvideo": "model_state",
         "detectron2": "model"}


class InputError(Exception):
    """Bad user input: reported without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", metavar="IN", help="checkpoint to read")
    p.add_argument("output", metavar="OUT", help="checkpoint to write")
    p.add_argument("--source", default="auto", choices=("auto", "native") + SOURCES,
                   help="layout of IN (default: detected from its keys)")
    p.add_argument("--source-config", metavar="OFFICIAL.yaml", default="",
                   help="official SlowFast / mvit config of IN: also write our config "
                        "(OUT with .yaml) and verify that the weights load strictly")
    p.add_argument("--to", choices=SOURCES, default=None,
                   help="export to this layout instead of ours")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow files that need arbitrary pickled objects "
                        "(runs code from the file!)")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _save_pickle(obj: Any, path: str) -> None:
    """detectron2 model-zoo style ``.pkl`` (numpy arrays), written atomically."""
    from mvit_tasks.utils.fileio import atomic_write

    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=4))


def _export(sd: Dict[str, Any], layout: str, path: str, origin: str) -> None:
    from mvit_tasks.checkpoint.io import save_checkpoint

    key = _WRAP.get(layout)
    if layout == "detectron2" and path.endswith(".pkl"):
        arrays = {k: v.detach().cpu().numpy() for k, v in sd.items()}
        _save_pickle({"model": arrays, "__author__": f"mvit-tasks (from {origin})"}, path)
    elif key is None:
        save_checkpoint(dict(sd), path)
    else:
        save_checkpoint({key: dict(sd)}, path)


def _classifier(arch: Any, info: Dict[str, Any], cfg_path: str) -> Any:
    """The :class:`Classifier` of a classification config (on the meta device)."""
    import torch

    from mvit_tasks.modeling.meta_arch import Classifier

    with torch.device("meta"):
        return Classifier.from_arch(arch, info["num_classes"], pool=info["head_pool"])


def _task_model(arch: Any, info: Dict[str, Any], cfg_path: str) -> Any:
    """The model ``tools/train_net.py --task info["task"] --config-file cfg_path`` builds (on the
    meta device, without loading ``MODEL.WEIGHTS``)."""
    import torch

    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.tasks import resolve_task

    task_cls = resolve_task(info["task"])
    cfg = load_config(cfg_path, ["MODEL.WEIGHTS", ""],
                      extra_config_fns=[add_engine_config, task_cls.add_config])
    task = task_cls(cfg)
    with torch.device("meta"):
        return task.build_model()


def _verify(native: Dict[str, Any], config: str, cfg_path: str, weights: str) -> tuple:
    """Write our config of an official config to ``cfg_path``, build its model (the task's
    model for a detection config, else a classifier) and load ``native`` strictly into it."""
    from mvit_tasks.checkpoint.loader import load_weights
    from mvit_tasks.checkpoint.official_config import load_official_config, write_native_config

    arch, info = load_official_config(config)
    for w in info.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    write_native_config(arch, info, cfg_path, weights=weights)
    build = _task_model if info.get("task") else _classifier
    # every tensor is overwritten by the strict load below
    model = build(arch, info, cfg_path).to_empty(device="cpu")
    report = load_weights(model, {"model": native}, source="native")
    if report.notes:
        raise InputError(
            f"the checkpoint does not have the geometry of {config}: " + "; ".join(report.notes)
        )
    n_params = sum(p.numel() for p in model.parameters())
    return arch, info, report, n_params


def _read(path: str, allow_unsafe: bool) -> Any:
    from mvit_tasks.checkpoint.io import (CheckpointFormatError, UnsafeCheckpointError,
                                          load_checkpoint_file)

    try:
        return load_checkpoint_file(path, allow_unsafe=allow_unsafe)
    except (OSError, UnsafeCheckpointError, CheckpointFormatError):
        raise
    except Exception as e:  # a corrupt file can fail anywhere inside the unpickler
        raise InputError(f"cannot read checkpoint '{path}': {type(e).__name__}: {e}") from None


def _notes(notes: List[str]) -> str:
    return "".join(f"\n  note: {n}" for n in notes)


def _export_detector(sd: Dict[str, Any], args: argparse.Namespace) -> Optional[tuple]:
    """``(state dict, notes, layout name)`` of a project detector checkpoint exported to
    detectron2 by its layout, or None when IN is not one."""
    from mvit_tasks.checkpoint.converters.detectron2 import detector_layout_of

    if args.to != "detectron2" or args.source not in ("auto", "native"):
        return None
    layout = detector_layout_of(sd)
    if layout is None:
        return None
    out, notes = layout.from_native(sd)
    return out, notes, layout.name


def run(args: argparse.Namespace) -> int:
    from mvit_tasks.checkpoint.converters import get_converter
    from mvit_tasks.checkpoint.converters.base import strip_prefix
    from mvit_tasks.checkpoint.converters.detectron2 import (is_detectron2_detector,
                                                             only_detector_layout)
    from mvit_tasks.checkpoint.io import extract_state_dict, save_checkpoint
    from mvit_tasks.checkpoint.loader import convert_state_dict

    if args.to and args.source_config:
        raise InputError("--source-config describes an import; it cannot be combined with --to")
    obj = _read(args.input, args.unsafe_pickle)
    sd = strip_prefix(extract_state_dict(obj), "module.")
    origin = os.path.basename(args.input)

    if args.to:
        detector = _export_detector(sd, args)
        if detector is not None:
            out, notes, src = detector[0], detector[1], f"{detector[2]} detector"
        else:
            native, src = convert_state_dict(obj, args.source)
            out, notes = get_converter(args.to).from_native(native), []
        _export(out, args.to, args.output, origin)
        print(f"{args.input} ({src}) -> {args.output} ({args.to} layout): {len(out)} tensors"
              + _notes(notes))
        return 0

    native, src = convert_state_dict(obj, args.source)
    if src == "detectron2" and is_detectron2_detector(sd):
        if args.source_config:
            raise InputError("--source-config takes SlowFast / mvit configs; a detectron2 "
                             "detector is described by the COCO settings printed without it")
        layout = only_detector_layout()
        native, notes = layout.to_native(sd)
        save_checkpoint({"model": native, "source": src, "converted_from": origin},
                        args.output)
        print(f"{args.input} (detectron2 detector) -> {args.output}: {len(native)} tensors as "
              f"the {layout.name} detector ({layout.prefix}*)" + _notes(notes))
        return 0

    cfg_path = os.path.splitext(args.output)[0] + ".yaml"
    tmp_cfg = cfg_path + ".tmp"
    try:
        verified = (_verify(native, args.source_config, tmp_cfg, args.output)
                    if args.source_config else None)
        save_checkpoint({"model": native, "source": src, "converted_from": origin}, args.output)
        if verified:
            os.replace(tmp_cfg, cfg_path)
    finally:
        if os.path.exists(tmp_cfg):
            os.remove(tmp_cfg)
    line = f"{args.input} ({src}) -> {args.output}: {len(native)} tensors"
    if verified:
        arch, info, report, n_params = verified
        kind = "video" if arch.video else "image"
        line += (f"; config {cfg_path}: {kind} MViT depth {arch.depth}, {info['num_classes']} "
                 f"classes, {n_params:,} parameters, {report.loaded} tensors loaded strictly")
        if info.get("task"):
            line += f" into the model of tools/train_net.py --task {info['task']}"
    print(line)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mvit_tasks.checkpoint.adapt import ShapeMismatchError
    from mvit_tasks.checkpoint.io import CheckpointFormatError, UnsafeCheckpointError
    from mvit_tasks.checkpoint.loader import CheckpointMismatchError

    try:
        return run(args)
    except (InputError, OSError, UnsafeCheckpointError, CheckpointFormatError,
            CheckpointMismatchError, ShapeMismatchError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"convert_checkpoint: error: {msg}", file=sys.stderr)
        return 2


def cli() -> None:
    """Console script ``mvit-convert``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.convert_checkpoint
    cli()
