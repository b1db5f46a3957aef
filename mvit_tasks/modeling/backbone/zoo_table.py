"""The README model-zoo table, generated from the variant registry so it cannot drift.

``python tools/model_zoo.py`` prints it; ``tests/test_readme.py`` checks README holds it verbatim.
"""
from __future__ import annotations

from typing import List, Optional

import torch

from .mvit import MViT
from .variants import get_variant, list_variants
from ..meta_arch.classifier import Classifier


def count_parameters(name: str, num_classes: Optional[int] = None) -> int:
    """Exact parameter count of a variant with its published head (or one of ``num_classes``;
    0: pooled features), built on the meta device. Detection backbones (0 classes by default)
    count the head-less multi-scale backbone."""
    v = get_variant(name)
    with torch.device("meta"):
        if num_classes is None and not v.num_classes:
            model: torch.nn.Module = MViT(v.arch)
        else:
            k = v.num_classes if num_classes is None else num_classes
            model = Classifier.from_arch(v.arch, k)
    return sum(p.numel() for p in model.parameters())


def _weights(name: str) -> str:
    """``k400`` (slowfast), ``k400_torchvision`` (torchvision, hash-checked), ..."""
    from .pretrained import weights_of

    parts = []
    for w in weights_of(name):
        notes = [w.source] + (["hash-checked"] if w.verified else []) + (
            [] if w.direct else ["page link"])
        parts.append(f"`{w.tag}` ({', '.join(notes)})")
    return ", ".join(parts) or "none published"


def _metrics(m: dict) -> str:
    if not m:
        return "-"
    return ", ".join(f"{k} {v:g}" for k, v in m.items())


def model_zoo_markdown() -> str:
    rows: List[str] = [
        "| name | kind | input | params (exact) | published results | GFLOPs x views | "
        "official weights (`name.tag`) | recipe |",
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
            f"{_metrics(v.metrics)} | {flops} | {_weights(name)} | {v.source} |"
        )
    return "\n".join(rows)
