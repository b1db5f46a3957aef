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
pickle of numpy arrays like its model zoo).

Exit status: 0 on success, 2 for bad input (unreadable or unsafe file, unknown layout,
checkpoint that does not fit the config).
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SOURCES = ("slowfast", "mvit", "torchvision", "timm", "pytorchvideo", "detectron2")
# How each layout's own tools expect the state dict to be wrapped in a file.
_WRAP = {"slowfast": "model_state", "mvit": "model_state", "pytorchvideo": "model_state",
         "detectron2": "model"}


class InputError(Exception):
    """Bad user input: reported without a traceback, exit status 2."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
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
    return p.parse_args(argv)


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


def run(args: argparse.Namespace) -> int:
    from mvit_tasks.checkpoint.converters import get_converter
    from mvit_tasks.checkpoint.io import save_checkpoint
    from mvit_tasks.checkpoint.loader import convert_state_dict

    if args.to and args.source_config:
        raise InputError("--source-config describes an import; it cannot be combined with --to")
    obj = _read(args.input, args.unsafe_pickle)
    native, src = convert_state_dict(obj, args.source)
    origin = os.path.basename(args.input)

    if args.to:
        out = get_converter(args.to).from_native(native)
        _export(out, args.to, args.output, origin)
        print(f"{args.input} ({src}) -> {args.output} ({args.to} layout): {len(out)} tensors")
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


if __name__ == "__main__":
    sys.exit(main())
