"""pytorchvideo MViT (``pytorchvideo.models.hub.mvit_base_16x4`` / ``mvit_base_32x3`` /
``mvit_base_16``) state dicts <-> ours.

Layout followed: ``pytorchvideo/models/vision_transformers.py``
(``create_multiscale_vision_transformers``) and ``pytorchvideo/layers/attention.py``
(``MultiScaleBlock``, ``MultiScaleAttention`` with ``pool_first=False``), pytorchvideo 0.1.5:

=====================================================  ======================================
pytorchvideo                                           ours
=====================================================  ======================================
``patch_embed.patch_model.{weight,bias}``              ``backbone.patch_embed.proj.*``
  (Conv3d; Conv2d ``[C, 3, kh, kw]`` if use_2d_patch)    (always 5-D)
``cls_positional_encoding.cls_token`` ``[1, 1, C]``    ``backbone.cls_token``
``cls_positional_encoding.pos_embed_spatial``          ``backbone.pos_embed_spatial``
``cls_positional_encoding.pos_embed_temporal``         ``backbone.pos_embed_temporal``
``cls_positional_encoding.pos_embed_class``            ``backbone.pos_embed_class``
``cls_positional_encoding.pos_embed`` (joint)          ``backbone.pos_embed``
``blocks.N.attn.{q,k,v}.{weight,bias}`` (3 Linears)    ``backbone.blocks.N.attn.qkv.*`` (fused,
                                                       rows ordered q, k, v)
``blocks.N.{norm1,norm2,attn.proj,attn.pool_X,``       same names under ``backbone.``
``attn.norm_X,mlp.fc1,mlp.fc2,proj}``
``norm_embed``                                         ``backbone.scale5_norm``
``head.proj``                                          ``head.projection``
=====================================================  ======================================

Semantics vs. SlowFast (and ours): same v1 block (dim change in the previous block's MLP, skip
``proj(norm2(x))``, max-pooled skip with kernel ``s + 1``, cls token bypasses pooling and is
normalised with the pooled tokens, cls-token head, no softmax). One difference:
``MultiScaleBlock`` builds ``norm_q/k/v`` with a plain ``nn.LayerNorm`` (eps 1e-5) while all its
other norms, and every norm of SlowFast / ours, use eps 1e-6; the effect is ~1e-6 relative on
the pooled q/k/v. ``norm_patch_embed`` (``enable_patch_embed_norm=True``) and ``pool_first=True``
models have no counterpart in ours; their keys pass through and a strict load reports them.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

from .base import CheckpointConverter, StateDict, register_converter, to_5d

_QKV = re.compile(r"^blocks\.(\d+)\.attn\.([qkv])\.(weight|bias)$")
_NATIVE_QKV = re.compile(r"^backbone\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
_CPE = "cls_positional_encoding."
_POS_NAMES = (
    "cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class", "pos_embed"
)


@register_converter
class PytorchvideoConverter(CheckpointConverter):
    """pytorchvideo ``MultiscaleVisionTransformers`` (see the module docstring)."""

    name = "pytorchvideo"
    priority = 50

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return "patch_embed.patch_model.weight" in sd or any(k.startswith(_CPE) for k in sd)

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        out: StateDict = {}
        for k, v in sd.items():
            m = _QKV.match(k)
            if m:
                blk, kind = m.group(1), m.group(3)
                if m.group(2) != "q":
                    continue  # fused together with q below
                parts = [sd.get(f"blocks.{blk}.attn.{x}.{kind}") for x in "qkv"]
                if any(p is None for p in parts):
                    raise KeyError(f"pytorchvideo block {blk}: needs all of attn.q/k/v.{kind}")
                out[f"backbone.blocks.{blk}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)
            elif k.startswith("patch_embed.patch_model."):
                suffix = k[len("patch_embed.patch_model."):]
                out["backbone.patch_embed.proj." + suffix] = to_5d(v) if suffix == "weight" else v
            elif k.startswith(_CPE) and k[len(_CPE):] in _POS_NAMES:
                out["backbone." + k[len(_CPE):]] = v
            elif k.startswith("blocks."):
                out["backbone." + k] = v
            elif k.startswith("norm_embed."):
                out["backbone.scale5_norm." + k[len("norm_embed."):]] = v
            elif k.startswith("head.proj."):
                out["head.projection." + k[len("head.proj."):]] = v
            else:
                out[k] = v
        return out

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        """Ours -> pytorchvideo. The patch embedding is written as a Conv3d (5-D) weight; an
        image model exported here needs ``use_2d_patch=False`` on the pytorchvideo side."""
        out: StateDict = {}
        for k, v in sd.items():
            m = _NATIVE_QKV.match(k)
            if m:
                blk, kind = m.groups()
                if v.shape[0] % 3:
                    raise ValueError(f"{k}: {tuple(v.shape)} does not split into q, k, v")
                for x, part in zip("qkv", v.chunk(3, dim=0)):
                    out[f"blocks.{blk}.attn.{x}.{kind}"] = part.clone()
            elif k.startswith("backbone.patch_embed.proj."):
                out["patch_embed.patch_model." + k[len("backbone.patch_embed.proj."):]] = v
            elif k.startswith("backbone.") and k[len("backbone."):] in _POS_NAMES:
                out[_CPE + k[len("backbone."):]] = v
            elif k.startswith("backbone.blocks."):
                out[k[len("backbone."):]] = v
            elif k.startswith("backbone.scale5_norm."):
                out["norm_embed." + k[len("backbone.scale5_norm."):]] = v
            elif k.startswith("backbone.scale"):
                raise ValueError(f"'{k}' has no pytorchvideo counterpart (one final norm only)")
            elif k.startswith("head.projection."):
                out["head.proj." + k[len("head.projection."):]] = v
            else:
                out[k] = v
        return out
