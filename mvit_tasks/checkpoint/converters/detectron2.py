"""detectron2 MViTv2 detection checkpoints (``projects/MViTv2``, Mask / Cascade Mask R-CNN).

detectron2 builds ``GeneralizedRCNN(backbone=FPN(bottom_up=MViT(...)))``, so the MViT parameters
sit under ``backbone.bottom_up.`` with the module attribute names of
``detectron2/modeling/backbone/mvit.py``::

    backbone.bottom_up.patch_embed.proj.{weight,bias}   Conv2d [C,3,7,7]
    backbone.bottom_up.pos_embed                        only with use_abs_pos (off in MViTv2
                                                        configs); [1, N(+1), C], row 0 is the
                                                        unused cls position if
                                                        pretrain_use_cls_token
    backbone.bottom_up.blocks.N.norm1 / norm2 / mlp.fc1 / mlp.fc2 / proj
    backbone.bottom_up.blocks.N.attn.qkv / attn.proj
    backbone.bottom_up.blocks.N.attn.pool_{q,k,v}.weight    depthwise Conv2d [hd,1,3,3], every block
    backbone.bottom_up.blocks.N.attn.norm_{q,k,v}
    backbone.bottom_up.blocks.N.attn.rel_pos_{h,w}
    backbone.bottom_up.scale{2..5}_norm                 one LayerNorm per output

Model-zoo files are ``.pkl`` pickles ``{"model": {name: numpy array}, "__author__": ...}``
(read safely by :func:`mvit_tasks.checkpoint.io.load_checkpoint_file`).

``to_native``: ``backbone.bottom_up.X`` -> ``backbone.X`` with 2-D kernels made 5-D (temporal
extent 1); ``pos_embed`` loses its cls row when it has one (N + 1 rows with N a square: our
backbone has no cls token in this layout, and detectron2's ``get_abs_pos`` drops the row too).
Every other key (``backbone.fpn_*``, ``proposal_generator.*``, ``roi_heads.*``) passes through
unchanged for the detection project to map. ``from_native`` inverts this (a zero cls row is
prepended to ``pos_embed``, matching detectron2's default ``pretrain_use_cls_token=True``).
"""
from __future__ import annotations

import math
import re
from typing import List, Mapping

import torch

from .base import CheckpointConverter, StateDict, register_converter, to_4d, to_5d

_D2 = "backbone.bottom_up."
_CONV = re.compile(r"(^patch_embed\.proj\.weight|\.attn\.pool_[qkv]\.weight)$")
# Native backbone parameters that belong to the MViT (not to an FPN living under backbone.).
_NATIVE_MVIT = re.compile(
    r"^backbone\.(patch_embed\.|cls_token$|pos_embed|blocks\.\d+\.|scale\d+_norm\.)"
)


def _is_square(n: int) -> bool:
    r = math.isqrt(n) if n >= 0 else -1
    return r >= 1 and r * r == n


@register_converter
class Detectron2Converter(CheckpointConverter):
    """detectron2 ``backbone.bottom_up.*`` MViT (+ FPN / RPN / RoI heads passed through)."""

    name = "detectron2"
    priority = 90

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return f"{_D2}patch_embed.proj.weight" in sd and any(
            re.match(r"^backbone\.bottom_up\.blocks\.\d+\.attn\.qkv\.weight$", k) for k in sd
        )

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        out: StateDict = {}
        for k, v in sd.items():
            if not k.startswith(_D2):
                out[k] = v
                continue
            name = k[len(_D2):]
            if _CONV.search(name):
                v = to_5d(v)
            elif name == "pos_embed" and v.ndim == 3 and not _is_square(v.shape[1]) \
                    and _is_square(v.shape[1] - 1):
                v = v[:, 1:]
            out["backbone." + name] = v
        return out

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        bad: List[str] = [k for k in sd if k == "backbone.cls_token" or (
            _NATIVE_MVIT.match(k) and k.endswith(
                ("rel_pos_t", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class")))]
        if bad:
            raise ValueError(
                "the detectron2 MViT has no cls token, no temporal axis and no separate position "
                f"tables; cannot represent: {bad[:8]}"
            )
        out: StateDict = {}
        for k, v in sd.items():
            if not _NATIVE_MVIT.match(k):
                out[k] = v
                continue
            name = k[len("backbone."):]
            if _CONV.search(name):
                v = to_4d(v)
            elif name == "pos_embed":
                v = torch.cat((v.new_zeros(v.shape[0], 1, v.shape[2]), v), dim=1)
            out[_D2 + name] = v
        return out
