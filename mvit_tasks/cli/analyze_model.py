#!/usr/bin/env python
"""Parameters, GFLOPs and a per-stage breakdown of an MViT model.

GFLOPs count ONE multiply-add as ONE FLOP (fvcore / SlowFast / the MViT papers); see
``mvit_tasks/utils/flops.py`` for what each ``--convention`` counts.

Examples::

    python tools/analyze_model.py --variant mvitv2_s_16x4
    python tools/analyze_model.py --variant mvitv2_t --input-size 256 256 --json t.json
    python tools/analyze_model.py --config-file my.yaml MODEL.NUM_CLASSES 174

Input size defaults: the variant's ``num_frames x crop_size x crop_size`` (``crop_size^2`` for
image models); with ``--config-file``, ``DATA.NUM_FRAMES x DATA.TEST_CROP_SIZE^2`` (SlowFast's
test-view convention; image models ignore the frames).
"""
from __future__ import annotations

import argparse
import warnings
from typing import Optional, Sequence, Tuple


import torch

from mvit_tasks.utils.cli import add_deprecated_alias, parse_flags_and_overrides
from mvit_tasks.utils.fileio import write_json
from mvit_tasks.modeling.flops_breakdown import analyze_model, format_analysis
from mvit_tasks.utils.flops import CONVENTIONS, DEFAULT_CONVENTION


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--variant", help="registered variant name (see --list)")
    src.add_argument("--config-file", metavar="FILE",
                     help="YAML config (MODEL.VARIANT / MODEL.MVIT.*)")
    src.add_argument("--list", action="store_true", help="list the registered variants and exit")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="T H W (video) or H W (images); default from the variant / config")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the head (default: the variant's / MODEL.NUM_CLASSES); "
                        "0 = backbone only")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default=DEFAULT_CONVENTION,
                   help="what besides multiply-adds is counted (default: %(default)s)")
    p.add_argument("--strict", action="store_true",
                   help="fail if an op that is not known to be cheap has no FLOP handler")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    add_deprecated_alias(p, "--json-out", "--json")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return parse_flags_and_overrides(build_parser(), argv)


def build(args: argparse.Namespace) -> Tuple[torch.nn.Module, Tuple[int, ...], str, dict]:
    """Model, input shape (with batch 1), a display name and metadata."""
    from mvit_tasks.modeling.backbone.mvit import MViT
    from mvit_tasks.modeling.meta_arch.classifier import Classifier

    meta: dict = {}
    if args.variant:
        from mvit_tasks.modeling.backbone.variants import get_variant

        v = get_variant(args.variant)
        arch, num_classes, name = v.arch, v.num_classes, v.name
        frames, crop = v.num_frames, v.crop_size
        dropout = v.head_dropout
        meta = {"published_gflops": v.gflops, "published_params_m": v.params_m}
        if args.opts:
            raise SystemExit("KEY VALUE overrides need --config-file")
    else:
        from mvit_tasks.config import arch_from_cfg, load_config

        cfg = load_config(args.config_file, args.opts)
        meta["cfg"] = cfg
        arch, num_classes, name = arch_from_cfg(cfg), cfg.MODEL.NUM_CLASSES, args.config_file
        frames, crop = cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE
        dropout = cfg.MODEL.HEAD.DROPOUT_RATE
    if args.num_classes is not None:
        num_classes = args.num_classes
    if arch.video:
        shape: Tuple[int, ...] = (1, arch.in_chans, frames, crop, crop)
    else:
        shape = (1, arch.in_chans, crop, crop)
    if args.input_size:
        size = list(args.input_size)
        if arch.video and len(size) == 2:
            size = [frames] + size
        if len(size) != (3 if arch.video else 2):
            want = "T H W" if arch.video else "H W"
            raise SystemExit(f"--input-size takes {want} for this model")
        shape = (1, arch.in_chans, *size)
    cfg = meta.pop("cfg", None)
    if num_classes <= 0:
        model: torch.nn.Module = MViT(arch)
    elif cfg is not None:
        try:  # the config's head settings (MODEL.HEAD.*)
            from mvit_tasks.modeling.build import build_classifier
        except ImportError:
            model = Classifier.from_arch(arch, num_classes, dropout=dropout)
        else:
            model = build_classifier(cfg, num_classes)
    else:
        model = Classifier.from_arch(arch, num_classes, dropout=dropout)
    meta["num_classes"] = num_classes
    return model, shape, name, meta


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.list:
        from mvit_tasks.modeling.backbone.variants import get_variant, list_variants

        for n in list_variants():
            v = get_variant(n)
            print(f"{n:<16} {v.task:<20} {v.gflops or '':>8} GFLOPs  "
                  f"{v.params_m or '':>6} M params")
        return {}
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    model, shape, name, meta = build(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        result = analyze_model(model, torch.zeros(shape), convention=args.convention,
                               strict=args.strict)
    result = {"model": name, **meta, **result}
    print(f"model       : {name}")
    print(format_analysis(result))
    if meta.get("published_gflops") is not None:
        print(f"published   : {meta['published_gflops']} GFLOPs, "
              f"{meta['published_params_m']} M params")
    if args.json:
        write_json(args.json, result, indent=2)
        print(f"wrote {args.json}")
    return result


def cli() -> None:
    """Console script ``mvit-analyze``."""
    main()  # the result (a dict) is printed by main; exit status 0


if __name__ == "__main__":  # python -m mvit_tasks.cli.analyze_model
    cli()
