#!/usr/bin/env python
"""Export a classification model as a ``torch.export`` program (``.pt2``) and as ONNX, and check
the files against the eager model.

Examples::

    python tools/export.py --variant mvitv2_t --output export/mvitv2_t        # .pt2 (+ .onnx)
    python tools/export.py --variant mvitv2_s_16x4 --weights k400.pyth --format pt2
    python tools/export.py --config-file CFG --weights out/checkpoints/best.pth --output m \\
        MODEL.NUM_CLASSES 174

The example input is ``B x 3 x T x H x W`` (``B x 3 x H x W`` for image models) of the model's
geometry (the variant's, or the config's ``DATA.NUM_FRAMES`` / ``DATA.TRAIN_CROP_SIZE``;
``--input-size`` overrides it); the batch dimension stays dynamic unless ``--static-batch``.
Weights: ``--weights`` (any supported checkpoint, our training checkpoints with their EMA
weights when the config evaluates EMA), else the config's ``TEST.CHECKPOINT_FILE_PATH`` or
``MODEL.WEIGHTS``; without any, the random initialisation is exported (said so).

Parity: the saved ``.pt2`` is loaded back and run, and the ``.onnx`` file through onnxruntime
when installed, on fresh random inputs (the example batch and, with a dynamic batch, batch 1);
the max absolute difference to the eager model is printed with its ratio to the largest eager
logit. Any ratio above ``--tolerance`` (default 1e-4) ends with exit status 2.

ONNX needs the optional packages ``onnx`` and ``onnxscript`` (``onnxruntime`` for its check);
without them the default ``--format all`` writes the ``.pt2`` only and says so.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple


import torch
from torch import nn

from mvit_tasks import export as X
from mvit_tasks.utils.cli import UserError, add_deprecated_alias, parse_flags_and_overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--variant", help="registered variant name (mvit_tasks.list_models())")
    src.add_argument("--config-file", metavar="FILE", help="a training config (YAML)")
    p.add_argument("--task", default="classification",
                   help="task whose config keys the --config-file uses (default: %(default)s)")
    p.add_argument("--weights", default="", metavar="FILE", help="checkpoint to export")
    p.add_argument("--output", default="", metavar="PATH",
                   help="output path without suffix (.pt2 / .onnx are added; default: "
                        "output/export/<variant or config name>)")
    p.add_argument("--format", choices=("all", "pt2", "onnx"), default="all",
                   help="what to write (all: .pt2, and .onnx when onnx is installed)")
    p.add_argument("--device", default="cpu", help="device to export and compare on")
    p.add_argument("--batch-size", type=int, default=2,
                   help="batch of the example input (>= 2 unless --static-batch)")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="T H W (video) or H W; default: the model's geometry")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max |exported - eager| / max |eager| allowed (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.add_argument("--debug", action="store_true", help="show the traceback of user errors")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_deprecated_alias(p, "--json-out", "--json")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return parse_flags_and_overrides(build_parser(), argv)


def build_model(args: argparse.Namespace) -> Tuple[nn.Module, str, str]:
    """The classifier to export (eval mode), its display name and where its weights came from."""
    from mvit_tasks.modeling.meta_arch.classifier import Classifier

    if args.variant:
        from mvit_tasks.modeling.backbone.variants import get_variant, list_variants
        from mvit_tasks.modeling.build import create_model

        if args.variant not in list_variants():
            raise UserError(f"unknown variant {args.variant!r}; registered: "
                            f"{', '.join(list_variants())}")
        if args.opts:
            raise UserError("KEY VALUE overrides need --config-file")
        if get_variant(args.variant).num_classes == 0:
            raise UserError(f"{args.variant} is a head-less detection backbone; export takes "
                            "classification models")
        model = create_model(args.variant, weights=args.weights or None)
        return model.eval(), args.variant, args.weights or "random initialisation"
    from mvit_tasks.config import arch_from_cfg, load_config
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.tasks import resolve_task

    task_cls = resolve_task(args.task)
    cfg = load_config(args.config_file, list(args.opts),
                      extra_config_fns=[add_engine_config, task_cls.add_config])
    arch = arch_from_cfg(cfg, input_from_data=True)  # as the classification tasks build it
    pool = cfg.MODEL.HEAD.POOL
    if pool == "auto":
        pool = "cls" if arch.cls_embed else "mean"
    model = Classifier.from_arch(arch, cfg.MODEL.NUM_CLASSES, dropout=cfg.MODEL.HEAD.DROPOUT_RATE,
                                 pool=pool)
    weights = args.weights or cfg.TEST.CHECKPOINT_FILE_PATH
    if weights:
        from mvit_tasks.engine.checkpointer import load_model_weights

        load_model_weights(model, weights, cfg.MODEL.WEIGHTS_SOURCE,
                           cfg.MODEL.WEIGHTS_UNSAFE_PICKLE,
                           use_ema=cfg.TRAIN.EMA.ENABLE and cfg.TRAIN.EMA.EVAL)
    elif cfg.MODEL.WEIGHTS:
        from mvit_tasks.checkpoint.loader import load_weights

        weights = cfg.MODEL.WEIGHTS
        load_weights(model, weights, source=cfg.MODEL.WEIGHTS_SOURCE,
                     allow_missing=list(cfg.MODEL.WEIGHTS_ALLOW_MISSING),
                     allow_unexpected=list(cfg.MODEL.WEIGHTS_ALLOW_UNEXPECTED),
                     allow_unsafe=cfg.MODEL.WEIGHTS_UNSAFE_PICKLE).log(weights)
    name = os.path.splitext(os.path.basename(args.config_file))[0]
    return model.eval(), name, weights or "random initialisation"


def _stem(args: argparse.Namespace, name: str) -> str:
    out = args.output or os.path.join("output", "export", name)
    root, ext = os.path.splitext(out)
    return root if ext in (".pt2", ".onnx") else out


def _check(label: str, run: Any, model: nn.Module, inputs: List[torch.Tensor],
           tolerance: float) -> List[Dict[str, Any]]:
    rows = []
    for x in inputs:
        with torch.no_grad():
            d = X.difference(run(x), model(x))
        ok = d["max_rel"] <= tolerance
        rows.append({"format": label, "batch": int(x.shape[0]), **d, "ok": ok})
        print(f"  parity {label} (batch {x.shape[0]}): max abs {d['max_abs']:.2e}, "
              f"{d['max_rel']:.2e} relative to max |logit| {d['max_ref']:.3g}"
              f"{'' if ok else f'  ABOVE {tolerance:g}'}", flush=True)
    return rows


def export_model(args: argparse.Namespace) -> Dict[str, Any]:
    """Build, export, save and check; returns the summary (``ok``: every check passed)."""
    want_onnx = args.format in ("all", "onnx")
    if args.format == "onnx" and not X.onnx_available():
        raise UserError("--format onnx needs the optional packages onnx and onnxscript "
                        "(pip install onnx onnxscript onnxruntime)")
    device = torch.device(args.device)
    torch.manual_seed(0)  # a reproducible random initialisation when no weights are given
    model, name, weights = build_model(args)
    model.to(device)
    arch = model.backbone.arch
    example = X.example_input(arch, args.batch_size, args.input_size, device, seed=0)
    dynamic = not args.static_batch
    checks = [X.example_input(arch, args.batch_size, args.input_size, device, seed=1)]
    if dynamic and args.batch_size != 1:
        checks.append(X.example_input(arch, 1, args.input_size, device, seed=2))
    params = sum(p.numel() for p in model.parameters())
    shape = " x ".join(str(s) for s in example.shape)
    print(f"model: {name} ({'video' if arch.video else 'image'}, {params / 1e6:.2f} M params, "
          f"weights: {weights}); example input {shape}, batch "
          f"{'dynamic' if dynamic else 'static'}", flush=True)
    stem = _stem(args, name)
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    summary: Dict[str, Any] = {"model": name, "weights": weights, "params": params,
                               "input_shape": list(example.shape), "dynamic_batch": dynamic,
                               "device": str(device), "tolerance": args.tolerance,
                               "files": {}, "export_seconds": {}, "parity": []}
    t = time.perf_counter()
    program = X.export_program(model, example, dynamic)
    if args.format in ("all", "pt2"):
        path = stem + ".pt2"
        torch.export.save(program, path)
        seconds = time.perf_counter() - t
        summary["files"]["pt2"], summary["export_seconds"]["pt2"] = path, seconds
        print(f"torch.export: {path} ({os.path.getsize(path) / 2**20:.1f} MiB) in {seconds:.1f} s",
              flush=True)
        loaded = X.load_program(path).module()
        summary["parity"] += _check("pt2", loaded, model, checks, args.tolerance)
    if want_onnx and not X.onnx_available():
        print("ONNX: skipped (pip install onnx onnxscript onnxruntime to write it)", flush=True)
    elif want_onnx:
        path = stem + ".onnx"
        t = time.perf_counter()
        X.export_onnx(program, path, "video" if arch.video else "image")
        seconds = time.perf_counter() - t
        summary["files"]["onnx"], summary["export_seconds"]["onnx"] = path, seconds
        print(f"ONNX: {path} in {seconds:.1f} s (from the exported program)", flush=True)
        if X.onnxruntime_available():
            summary["parity"] += _check("onnxruntime", lambda x: X.onnxruntime_outputs(path, x),
                                        model, checks, args.tolerance)
        else:
            print("  parity onnxruntime: skipped (pip install onnxruntime)", flush=True)
    summary["ok"] = all(r["ok"] for r in summary["parity"])
    if args.json:
        from mvit_tasks.utils.fileio import write_json

        write_json(args.json, summary, indent=2)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mvit_tasks", "projects"):  # our load reports; not the exporters' chatter
        logging.getLogger(name).setLevel(logging.INFO)
    summary = export_model(args)
    if not summary["ok"]:
        bad = [f"{r['format']} batch {r['batch']}: {r['max_rel']:.2e}" for r in summary["parity"]
               if not r["ok"]]
        print(f"error: exported outputs differ from eager above {args.tolerance:g} relative "
              f"({'; '.join(bad)})", file=sys.stderr)
        return 2
    print(f"ok: every exported output within {args.tolerance:g} of eager", flush=True)
    return 0


def cli() -> None:
    """Console script ``mvit-export``: user errors are one line and exit 2 (``--debug``: traceback)."""
    from mvit_tasks.utils.cli import run_cli

    sys.exit(run_cli(main, sys.argv[1:]))


if __name__ == "__main__":  # python -m mvit_tasks.cli.export
    cli()
