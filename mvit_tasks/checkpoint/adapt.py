"""Fit a converted (native-layout) state dict to a target model's geometry.

* ``rel_pos_{h,w,t}`` tables: linear resize to the target length (SlowFast / timm semantics).
* ``pos_embed_spatial`` / ``pos_embed_temporal`` / joint ``pos_embed``: resized with the rule
  the backbone applies at run time (``mvit_tasks/modeling/layers/pos_embed.py``): bicubic over
  ``H x W`` for image models (detectron2's ``get_abs_pos``), trilinear for video (SlowFast). A
  joint table with a cls row going into a model without a cls token loses that row, as
  detectron2's ``get_abs_pos`` drops it.
* Conv kernels with a temporal extent of 1 (image checkpoints) into video models: image ->
  video inflation by repeating over time and dividing by the new temporal extent, so a static
  clip gives the image model's response.
* ``head.*`` tensors of another shape (e.g. a K400 400-class ``head.projection`` into an AVA
  80-class head): left out, so the strict load reports them as missing (allow ``head.`` to
  re-initialise the head for the new classes; the loader then logs the left-out tensors as a
  WARNING and lists them in ``LoadReport.dropped``).
"""
from __future__ import annotations

import math
from typing import List, Mapping, Tuple

import torch

from .converters.base import StateDict
from ..modeling.layers.pos_embed import resize_abs_pos
from ..modeling.layers.rel_pos import resize_rel_pos


class ShapeMismatchError(ValueError):
    """A checkpoint tensor cannot be fitted to the model."""


def _square(n: int) -> int:
    r = int(round(math.sqrt(n)))
    return r if r * r == n else -1


def _adapt_pos(key: str, v: torch.Tensor, target: torch.Tensor, grid: Tuple[int, int, int],
               has_cls: bool) -> torch.Tensor:
    t, h, w = grid
    if key.endswith("pos_embed_temporal"):
        return resize_abs_pos(v, (v.shape[1], 1, 1), (target.shape[1], 1, 1))
    if key.endswith("pos_embed_spatial"):
        s = _square(v.shape[1])
        if s < 0:
            raise ShapeMismatchError(f"{key}: cannot infer the source grid of {tuple(v.shape)}")
        return resize_abs_pos(v, (1, s, s), (1, h, w), video=t > 1)
    # joint pos_embed
    cls = v[:, :1] if has_cls else None
    body = v[:, 1:] if has_cls else v
    n = body.shape[1]
    if not has_cls and t == 1 and _square(n) < 0 and _square(n - 1) > 0:
        body, n = body[:, 1:], n - 1  # a pre-training cls row: dropped (detectron2 get_abs_pos)
    src = None
    for ts in (t, 1) + tuple(range(2, 65)):
        if n % ts == 0 and _square(n // ts) > 0:
            src = (ts, _square(n // ts), _square(n // ts))
            break
    if src is None:
        raise ShapeMismatchError(f"{key}: cannot infer the source grid of {tuple(v.shape)}")
    body = resize_abs_pos(body, src, grid)  # same rule as the backbone at run time
    return body if cls is None else torch.cat((cls, body), dim=1)


def _inflate(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    kt = target.shape[2]
    return v.repeat(1, 1, kt, 1, 1) / kt


def adapt_state_dict(
    sd: Mapping[str, torch.Tensor],
    model_sd: Mapping[str, torch.Tensor],
    patch_grid: Tuple[int, int, int] = (1, 1, 1),
    has_cls: bool = False,
    prefix: str = "backbone.",
) -> Tuple[StateDict, List[str]]:
    """Return the fitted state dict and human-readable notes of what was changed.

    Args:
        sd: native-layout checkpoint.
        model_sd: the target model's ``state_dict()`` (for shapes).
        patch_grid: the target backbone's token grid (t, h, w) at its configured input size.
        has_cls: whether the target backbone has a cls token (its joint pos_embed row 0).
    """
    out: StateDict = {}
    notes: List[str] = []
    for k, v in sd.items():
        target = model_sd.get(k)
        if target is None or target.shape == v.shape:
            out[k] = v
            continue
        name = k.rsplit(".", 1)[-1]
        if name.startswith("rel_pos_"):
            out[k] = resize_rel_pos(v, target.shape[0])
            notes.append(f"{k}: resized {v.shape[0]} -> {target.shape[0]} rows")
        elif name.startswith("pos_embed"):
            out[k] = _adapt_pos(k, v, target, patch_grid, has_cls)
            notes.append(f"{k}: resized {tuple(v.shape)} -> {tuple(target.shape)}")
        elif (k.endswith("patch_embed.proj.weight") or ".attn.pool_" in k) and v.ndim == 5 \
                and v.shape[2] == 1 and v.shape[:2] + v.shape[3:] == target.shape[:2] + target.shape[3:]:
            out[k] = _inflate(v, target)
            notes.append(f"{k}: inflated temporal kernel 1 -> {target.shape[2]}")
        elif k.startswith("head."):
            notes.append(f"{k}: not loaded ({tuple(v.shape)} vs model {tuple(target.shape)}: "
                         "another class count?)")
        else:
            raise ShapeMismatchError(
                f"checkpoint tensor '{k}' has shape {tuple(v.shape)} but the model expects "
                f"{tuple(target.shape)}, and no resize rule applies (is it the same architecture?)"
            )
    return out, notes
