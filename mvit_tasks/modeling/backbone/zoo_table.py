"""The README model-zoo table, generated from the variant registry so it cannot drift.

``python tools/model_zoo.py`` prints it; ``tests/test_readme.py`` checks README holds it verbatim.
"""
from __future__ import annotations

from typing import List

import torch

from .mvit import MViT
from .variants import get_variant, list_variants
from ..meta_arch.classifier import Classifier


def count_parameters(name: str) -> int:
    """Exact parameter count of a variant (with its published head), built on the meta device."""
    v = get_variant(name)
    with torch.device("meta"):
        model = Classifier.from_arch(v.arch, v.num_classes) if v.num_classes else MViT(v.arch)
    return sum(p.numel() for p in model.parameters())


def _metrics(m: dict) -> str:
    if not m:
        return "-"
    return ", ".join(f"{k} {v:g}" for k, v in m.items())


def model_zoo_markdown() -> str:
    rows: List[str] = [
        "| name | kind | input | params (exact) | published results | GFLOPs x views | official weights | recipe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in list_variants():
        v = get_variant(name)
        if v.arch.video:
            inp = f"{v.num_frames}x{v.sampling_rate}, {v.crop_size}px"
        else:
            inp = f"{v.crop_size}px"
        flops = "-" if v.gflops is None else f"{v.gflops:g}" + (f" x {v.views}" if v.views else "")
        rows.append(
            f"| `{name}` | {v.task} | {inp} | {count_parameters(name):,} | {v.dataset}: "
            f"{_metrics(v.metrics)} | {flops} | {v.checkpoint} | {v.source} |"
        )
    return "\n".join(rows)
