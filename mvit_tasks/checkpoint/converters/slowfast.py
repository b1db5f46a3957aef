"""PySlowFast (video) and facebookresearch/mvit (image) MViT checkpoints.

Both repositories name parameters after their module attributes (``slowfast/models/
video_model_builder.py::MViT`` + ``attention.py``; ``mvit/models/mvit_model.py`` +
``attention.py``), and their ``.pyth`` files hold ``{"epoch", "model_state", "optimizer_state",
"cfg"}`` (``io.extract_state_dict`` takes ``model_state``)::

    patch_embed.proj.{weight,bias}          Conv3d [C,3,kt,kh,kw]; Conv2d [C,3,kh,kw] for images
    cls_token                               [1,1,C]
    pos_embed | pos_embed_{spatial,temporal,class}
    blocks.N.norm1 / norm2 / mlp.fc1 / mlp.fc2 / proj (width-changing blocks only)
    blocks.N.attn.qkv                       fused [3*D, C] (q rows first, then k, then v)
    blocks.N.attn.{q,k,v}                   instead of qkv with SEPARATE_QKV / POOL_FIRST
    blocks.N.attn.proj
    blocks.N.attn.pool_{q,k,v}.weight       depthwise Conv3d [hd,1,kt,kh,kw] (SlowFast, also for
                                            PATCH_2D image models) / Conv2d [hd,1,kh,kw] (mvit)
    blocks.N.attn.norm_{q,k,v}
    blocks.N.attn.rel_pos_{h,w[,t]}
    norm                                    final LayerNorm
    head.projection                         Linear

Our layout is the same under ``backbone.`` except: convs are always 5-D (2-D kernels get a
temporal extent of 1), the final ``norm`` is ``backbone.scale5_norm`` (the loader renames it to
the model's last-stage norm when the model has fewer stages), and ``head.*`` stays ``head.*``.

Split ``attn.q/k/v`` (``MVIT.SEPARATE_QKV: True`` with ``POOL_FIRST: False``) are fused into
``attn.qkv`` by concatenating the q, k and v rows: SlowFast then computes ``q = self.q(x)`` etc.
*before* pooling, which is exactly what the fused layer does. The fusion is NOT exact for
checkpoints trained with ``POOL_FIRST: True`` (or the 2021 SlowFast code, which pooled the
input before the q/k/v projections): pooling before the projection is an architecture our
MViT does not implement, and a state dict alone cannot tell the two apart. The official
MViT/MViTv2 configs all use fused ``qkv`` (``official_config`` refuses POOL_FIRST /
SEPARATE_QKV configs).

Converters: ``"slowfast"`` (5-D patch embedding or pooling kernels, or video-only tables) and
``"mvit"`` (4-D patch embedding and 4-D pooling kernels). The released facebookresearch/mvit
IN-1K / IN-21K files store 4-D (Conv2d) kernels: timm loads the same URLs with strict
``load_state_dict`` into Conv2d layers after renaming only keys (``timm/models/mvitv2.py::
checkpoint_filter_fn``). The mvit test configs set ``TEST.CHECKPOINT_SQUEEZE_TEMPORAL: True``
for files written by a Conv3d build (temporal kernel 1); such a file is detected as
``"slowfast"`` and converts identically (5-D kernels are kept as they are). Likewise a SlowFast
``PATCH_2D`` model without pooling convs (``MODE: max``) is detected as ``"mvit"``; both
converters produce the same native state dict, so detection only decides the label.
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping

import torch

from .base import CheckpointConverter, StateDict, register_converter, to_4d, to_5d

_BLOCK = re.compile(r"^blocks\.\d+\.")
_ATTN_PROJ_IN = re.compile(r"^blocks\.\d+\.attn\.(qkv|q)\.weight$")
_SPLIT_QKV = re.compile(r"^(blocks\.\d+\.attn)\.([qkv])\.(weight|bias)$")
_CONV = re.compile(r"(^patch_embed\.proj\.weight|\.attn\.pool_[qkv]\.weight)$")
_NATIVE_NORM = re.compile(r"^backbone\.scale(\d+)_norm\.(weight|bias)$")
# Top-level prefixes of the other layouts (torchvision, timm, pytorchvideo, detectron2, ours,
# reversible MViT) that a SlowFast / mvit state dict never has.
_FOREIGN = ("backbone.", "stages.", "conv_proj.", "pos_encoding.", "patch_embed.patch_model.",
            "cls_positional_encoding.", "head.fc.", "head.1.", "head.proj.", "rev_backbone.")


def _is_family(sd: Mapping[str, torch.Tensor]) -> bool:
    """SlowFast or mvit layout: top-level ``blocks.N``, ``patch_embed.proj``, ``attn.qkv|q``."""
    if "patch_embed.proj.weight" not in sd:
        return False
    if any(k.startswith(_FOREIGN) for k in sd):
        return False
    return any(_ATTN_PROJ_IN.match(k) for k in sd)


def _is_image_2d(sd: Mapping[str, torch.Tensor]) -> bool:
    """facebookresearch/mvit: 2-D patch embedding and 2-D pooling kernels, no video tables."""
    if sd["patch_embed.proj.weight"].ndim != 4:
        return False
    if any(k.endswith(("rel_pos_t", "pos_embed_temporal", "pos_embed_spatial")) for k in sd):
        return False
    return all(v.ndim == 4 for k, v in sd.items() if _CONV.search(k))


def _fuse_qkv(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """``attn.q/k/v.{weight,bias}`` -> ``attn.qkv`` (rows q, k, v), see the module docstring."""
    groups: Dict[tuple, Dict[str, torch.Tensor]] = {}
    out: StateDict = {}
    for k, v in sd.items():
        m = _SPLIT_QKV.match(k)
        if m:
            groups.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
        else:
            out[k] = v
    for (prefix, kind), parts in groups.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(
                f"{prefix}: found split attention {kind}s {sorted(parts)} but need all of q, k, v "
                "to fuse them into qkv"
            )
        out[f"{prefix}.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _to_native(sd: Mapping[str, torch.Tensor]) -> StateDict:
    out: StateDict = {}
    for k, v in _fuse_qkv(sd).items():
        if _CONV.search(k):
            v = to_5d(v)
        if k.startswith("head."):
            out[k] = v
        elif k in ("norm.weight", "norm.bias"):
            out["backbone.scale5_norm." + k.split(".")[1]] = v
        else:
            out["backbone." + k] = v
    return out


def _from_native(sd: Mapping[str, torch.Tensor], image_2d: bool, layout: str) -> StateDict:
    norms = sorted({int(m.group(1)) for k in sd if (m := _NATIVE_NORM.match(k))})
    if len(norms) > 1:
        extra = ", ".join(f"backbone.scale{s}_norm" for s in norms[:-1])
        raise ValueError(
            f"the {layout} layout has a single final norm; this checkpoint also has {extra} "
            "(a multi-scale backbone), which it cannot represent"
        )
    out: StateDict = {}
    bad: List[str] = []
    for k, v in sd.items():
        m = _NATIVE_NORM.match(k)
        if m:
            out[f"norm.{m.group(2)}"] = v
        elif k.startswith("head."):
            out[k] = v
        elif k.startswith("backbone."):
            name = k[len("backbone."):]
            if _CONV.search(name):
                v = to_4d(v) if image_2d else v
            elif image_2d and name.endswith(("rel_pos_t", "pos_embed_temporal", "pos_embed_spatial",
                                             "pos_embed_class")):
                bad.append(k)
            out[name] = v
        else:
            bad.append(k)
    if bad:
        raise ValueError(f"the {layout} layout cannot represent these keys: {bad[:8]}")
    return out


@register_converter
class SlowFastConverter(CheckpointConverter):
    """PySlowFast MViT / MViTv2 (video, or ``PATCH_2D`` image models with Conv3d pooling)."""

    name = "slowfast"
    priority = 40

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return _is_family(sd) and not _is_image_2d(sd)

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        return _to_native(sd)

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        """Our layout -> SlowFast keys; conv kernels stay 5-D (SlowFast builds Conv3d pooling;
        only the ``PATCH_2D`` stem is a Conv2d, see :func:`slowfast_patch_2d`)."""
        return _from_native(sd, image_2d=False, layout="slowfast")


def slowfast_patch_2d(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Adjust a :meth:`SlowFastConverter.from_native` result for a ``PATCH_2D`` SlowFast model
    (Conv2d stem, Conv3d pooling): squeeze the patch-embedding kernel to 4-D."""
    out = dict(sd)
    out["patch_embed.proj.weight"] = to_4d(out["patch_embed.proj.weight"])
    return out


@register_converter
class MViTImageConverter(CheckpointConverter):
    """facebookresearch/mvit MViTv2 image models (Conv2d stem and pooling; IN-1K and IN-21K)."""

    name = "mvit"
    priority = 41

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return _is_family(sd) and _is_image_2d(sd)

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        return _to_native(sd)

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        """Our layout -> mvit keys with 4-D kernels (raises for temporal kernels > 1)."""
        return _from_native(sd, image_2d=True, layout="mvit")
