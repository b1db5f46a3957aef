"""torchvision ``mvit_v1_b`` / ``mvit_v2_s`` state dicts <-> ours.

Layout followed: ``torchvision/models/video/mvit.py`` (torchvision >= 0.14), class ``MViT``:

============================================  ================================================
torchvision                                   ours
============================================  ================================================
``conv_proj.{weight,bias}`` (Conv3d)          ``backbone.patch_embed.proj.*``
``pos_encoding.class_token`` ``[C]``          ``backbone.cls_token`` ``[1, 1, C]``
``pos_encoding.spatial_pos`` ``[HW, C]``      ``backbone.pos_embed_spatial`` ``[1, HW, C]``
``pos_encoding.temporal_pos`` ``[T, C]``      ``backbone.pos_embed_temporal`` ``[1, T, C]``
``pos_encoding.class_pos`` ``[C]``            ``backbone.pos_embed_class`` ``[1, 1, C]``
``blocks.N.{norm1,norm2}``                    ``backbone.blocks.N.{norm1,norm2}``
``blocks.N.attn.qkv`` / ``rel_pos_{h,w,t}``   same names under ``backbone.``
``blocks.N.attn.project.0``                   ``backbone.blocks.N.attn.proj``
``blocks.N.attn.pool_X.pool.weight``          ``backbone.blocks.N.attn.pool_X.weight``
``blocks.N.attn.pool_X.norm_act.0.*``         ``backbone.blocks.N.attn.norm_X.*``
``blocks.N.mlp.0`` / ``blocks.N.mlp.3``       ``backbone.blocks.N.mlp.fc1`` / ``.fc2``
``blocks.N.project``                          ``backbone.blocks.N.proj``
``norm``                                      ``backbone.scale5_norm``
``head.1`` (``head.0`` is Dropout)            ``head.projection``
============================================  ================================================

Semantics match ours one-to-one: ``mvit_v1_b`` is our ``mvit_b_16x4`` and ``mvit_v2_s`` our
``mvitv2_s_16x4`` (torchvision uses ``residual_with_cls_embed=False``, i.e. the pooled-q residual
skips the cls token like SlowFast; all LayerNorms use eps 1e-6; the head reads the cls token).
Keys that match no rule are passed through unchanged so a strict load reports them.
"""
from __future__ import annotations

import re
from typing import List, Mapping, Tuple

import torch

from .base import CheckpointConverter, StateDict, register_converter

_B = r"^blocks\.(\d+)\."
_NB = r"^backbone\.blocks\.(\d+)\."

# first matching rule wins; unmatched keys pass through
_TO_NATIVE: List[Tuple[str, str]] = [
    (r"^conv_proj\.", "backbone.patch_embed.proj."),
    (r"^pos_encoding\.class_token$", "backbone.cls_token"),
    (r"^pos_encoding\.spatial_pos$", "backbone.pos_embed_spatial"),
    (r"^pos_encoding\.temporal_pos$", "backbone.pos_embed_temporal"),
    (r"^pos_encoding\.class_pos$", "backbone.pos_embed_class"),
    (_B + r"attn\.project\.0\.", r"backbone.blocks.\1.attn.proj."),
    (_B + r"attn\.pool_([qkv])\.pool\.", r"backbone.blocks.\1.attn.pool_\2."),
    (_B + r"attn\.pool_([qkv])\.norm_act\.0\.", r"backbone.blocks.\1.attn.norm_\2."),
    (_B + r"mlp\.0\.", r"backbone.blocks.\1.mlp.fc1."),
    (_B + r"mlp\.3\.", r"backbone.blocks.\1.mlp.fc2."),
    (_B + r"project\.", r"backbone.blocks.\1.proj."),
    (r"^blocks\.", "backbone.blocks."),
    (r"^norm\.", "backbone.scale5_norm."),
    (r"^head\.1\.", "head.projection."),
]

_FROM_NATIVE: List[Tuple[str, str]] = [
    (r"^backbone\.patch_embed\.proj\.", "conv_proj."),
    (r"^backbone\.cls_token$", "pos_encoding.class_token"),
    (r"^backbone\.pos_embed_spatial$", "pos_encoding.spatial_pos"),
    (r"^backbone\.pos_embed_temporal$", "pos_encoding.temporal_pos"),
    (r"^backbone\.pos_embed_class$", "pos_encoding.class_pos"),
    (_NB + r"attn\.proj\.", r"blocks.\1.attn.project.0."),
    (_NB + r"attn\.pool_([qkv])\.weight$", r"blocks.\1.attn.pool_\2.pool.weight"),
    (_NB + r"attn\.norm_([qkv])\.", r"blocks.\1.attn.pool_\2.norm_act.0."),
    (_NB + r"mlp\.fc1\.", r"blocks.\1.mlp.0."),
    (_NB + r"mlp\.fc2\.", r"blocks.\1.mlp.3."),
    (_NB + r"proj\.", r"blocks.\1.project."),
    (r"^backbone\.blocks\.", "blocks."),
    (r"^backbone\.scale5_norm\.", "norm."),
    (r"^head\.projection\.", "head.1."),
]

_VECTOR_KEYS = ("pos_encoding.class_token", "pos_encoding.class_pos")  # [C] <-> [1, 1, C]
_TABLE_KEYS = ("pos_encoding.spatial_pos", "pos_encoding.temporal_pos")  # [N, C] <-> [1, N, C]


def _rename(key: str, rules: List[Tuple[str, str]]) -> str:
    for pat, rep in rules:
        new, n = re.subn(pat, rep, key)
        if n:
            return new
    return key


@register_converter
class TorchvisionConverter(CheckpointConverter):
    """``torchvision.models.video.mvit_v1_b`` / ``mvit_v2_s`` (see the module docstring)."""

    name = "torchvision"
    priority = 50

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return "conv_proj.weight" in sd and "pos_encoding.class_token" in sd

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        out: StateDict = {}
        for k, v in sd.items():
            if k in _VECTOR_KEYS:
                v = v.reshape(1, 1, -1)
            elif k in _TABLE_KEYS:
                v = v.unsqueeze(0)
            out[_rename(k, _TO_NATIVE)] = v
        return out

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        out: StateDict = {}
        for k, v in sd.items():
            extra_norm = k.startswith("backbone.scale") and not k.startswith("backbone.scale5_")
            if k == "backbone.pos_embed" or extra_norm:
                raise ValueError(
                    f"'{k}' has no torchvision counterpart (torchvision MViT has separate "
                    "space/time position tables and a single final norm)"
                )
            nk = _rename(k, _FROM_NATIVE)
            if nk in _VECTOR_KEYS:
                v = v.reshape(-1)
            elif nk in _TABLE_KEYS:
                v = v.squeeze(0)
            out[nk] = v
        return out
