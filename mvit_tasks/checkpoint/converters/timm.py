"""timm ``mvitv2_*`` state dicts <-> ours.

Layout followed: ``timm/models/mvitv2.py`` (timm >= 0.6.12), class ``MultiScaleVit`` with the
default ``pool_first=False`` attention:

=================================================  ==========================================
timm                                               ours
=================================================  ==========================================
``patch_embed.proj.weight`` ``[C, 3, kh, kw]``     ``backbone.patch_embed.proj.weight``
                                                   ``[C, 3, 1, kh, kw]``
``cls_token`` ``[1, 1, C]`` / ``pos_embed``        ``backbone.cls_token`` / ``backbone.pos_embed``
``stages.S.blocks.B.*``                            ``backbone.blocks.N.*`` with N the global index
                                                   (per-stage block counts read from the keys)
``...attn.pool_X.weight`` ``[d, 1, kh, kw]``       ``...attn.pool_X.weight`` ``[d, 1, 1, kh, kw]``
``...shortcut_proj_attn`` (``expand_attn=True``)   ``backbone.blocks.N.proj``
``...shortcut_proj_mlp`` (``expand_attn=False``)   ``backbone.blocks.N.proj``
``norm``                                           ``backbone.scale5_norm``
``head.fc``                                        ``head.projection``
=================================================  ==========================================

The other block keys (``norm1``, ``attn.qkv``, ``attn.proj``, ``attn.norm_X``,
``attn.rel_pos_{h,w}``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``) keep their names.

Semantics: timm's ``mvitv2_{t,s,b,l}`` are our ``mvitv2_{t,s,b,l}`` and ``mvitv2_*_cls`` our
``mvitv2_*_cls``. timm adds the pooled-q residual to the cls row too (``x = x + q``), which our
image variants reproduce with ``residual_pooling_cls=True``; timm's ``avg`` head averages the
normalised grid tokens only, like ours.

``from_native`` recovers the stages from the dim changes: a block whose ``proj`` widens inside
attention (``qkv`` out != 3 x in, ``expand_attn=True``) starts a stage; one that widens in its
MLP (``expand_attn=False``) ends a stage. timm's ``pool_first=True`` models (separate
``attn.q/k/v``) are not supported.
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping

import torch

from .base import CheckpointConverter, StateDict, register_converter, to_4d, to_5d

_STAGE = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$")
_NATIVE_BLOCK = re.compile(r"^backbone\.blocks\.(\d+)\.(.*)$")
_CONV = re.compile(r"(^patch_embed\.proj\.weight|\.attn\.pool_[qkv]\.weight)$")

_TOP_TO_NATIVE = {"cls_token": "backbone.cls_token", "pos_embed": "backbone.pos_embed"}
_TOP_FROM_NATIVE = {v: k for k, v in _TOP_TO_NATIVE.items()}


def _stage_offsets(sd: Mapping[str, torch.Tensor]) -> Dict[int, int]:
    """Global index of the first block of every stage, from the ``stages.S.blocks.B`` keys."""
    counts: Dict[int, int] = {}
    for k in sd:
        m = _STAGE.match(k)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            counts[s] = max(counts.get(s, 0), b + 1)
    if counts and sorted(counts) != list(range(len(counts))):
        raise ValueError(f"timm checkpoint has non-contiguous stages {sorted(counts)}")
    offsets, n = {}, 0
    for s in range(len(counts)):
        offsets[s] = n
        n += counts[s]
    return offsets


def _block_to_native(rest: str) -> str:
    for old in ("shortcut_proj_attn.", "shortcut_proj_mlp."):
        if rest.startswith(old):
            return "proj." + rest[len(old):]
    return rest


def _stage_layout(sd: Mapping[str, torch.Tensor]) -> tuple:
    """From native keys: ``(stage of each block, attention-expands per block)``."""
    depth = 1 + max((int(m.group(1)) for k in sd if (m := _NATIVE_BLOCK.match(k))), default=-1)
    stage_of: List[int] = []
    expand_attn: Dict[int, bool] = {}
    stage = 0
    for i in range(depth):
        proj = sd.get(f"backbone.blocks.{i}.proj.weight")
        qkv = sd.get(f"backbone.blocks.{i}.attn.qkv.weight")
        in_att = proj is not None and qkv is not None and qkv.shape[0] != 3 * qkv.shape[1]
        if in_att and i > 0:
            stage += 1
        stage_of.append(stage)
        if proj is not None:
            expand_attn[i] = in_att
            if not in_att:
                stage += 1  # widened in the MLP: the next block starts a new stage
    return stage_of, expand_attn


@register_converter
class TimmConverter(CheckpointConverter):
    """timm ``mvitv2_*`` (see the module docstring)."""

    name = "timm"
    priority = 50

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return "patch_embed.proj.weight" in sd and any(_STAGE.match(k) for k in sd)

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        offsets = _stage_offsets(sd)
        out: StateDict = {}
        for k, v in sd.items():
            if _CONV.search(k):
                v = to_5d(v)
            m = _STAGE.match(k)
            if m:
                idx = offsets[int(m.group(1))] + int(m.group(2))
                nk = f"backbone.blocks.{idx}.{_block_to_native(m.group(3))}"
            elif k in _TOP_TO_NATIVE:
                nk = _TOP_TO_NATIVE[k]
            elif k.startswith("patch_embed."):
                nk = "backbone." + k
            elif k.startswith("norm."):
                nk = "backbone.scale5_norm." + k[len("norm."):]
            elif k.startswith("head.fc."):
                nk = "head.projection." + k[len("head.fc."):]
            else:
                nk = k
            out[nk] = v
        return out

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        stage_of, expand_attn = _stage_layout(sd)
        starts = {s: stage_of.index(s) for s in set(stage_of)}
        out: StateDict = {}
        for k, v in sd.items():
            if k.startswith("backbone.scale") and not k.startswith("backbone.scale5_norm."):
                raise ValueError(f"'{k}' has no timm counterpart (timm MViTv2 has one final norm)")
            if k.startswith("backbone.pos_embed_"):
                raise ValueError(f"'{k}': timm MViTv2 has a joint pos_embed only")
            m = _NATIVE_BLOCK.match(k)
            if m:
                i, rest = int(m.group(1)), m.group(2)
                if rest.startswith("proj."):
                    kind = "attn" if expand_attn[i] else "mlp"
                    rest = f"shortcut_proj_{kind}." + rest[len("proj."):]
                s = stage_of[i]
                nk = f"stages.{s}.blocks.{i - starts[s]}.{rest}"
            elif k in _TOP_FROM_NATIVE:
                nk = _TOP_FROM_NATIVE[k]
            elif k.startswith("backbone.patch_embed."):
                nk = k[len("backbone."):]
            elif k.startswith("backbone.scale5_norm."):
                nk = "norm." + k[len("backbone.scale5_norm."):]
            elif k.startswith("head.projection."):
                nk = "head.fc." + k[len("head.projection."):]
            else:
                nk = k
            if _CONV.search(nk):
                v = to_4d(v)
            out[nk] = v
        return out
