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
prepended to ``pos_embed``, matching detectron2's default ``pretrain_use_cls_token=True``); keys
that are neither our MViT's nor already named like detectron2's detector modules (the grammar
below, from ``modeling/backbone/fpn.py``, ``proposal_generator/rpn.py``,
``roi_heads/{box_head,fast_rcnn,mask_head,cascade_rcnn}.py``) are refused by name.

Whole detectors: a project that assembles a detector around our backbone registers a
:class:`DetectorLayout` (how its state dict names detectron2's FPN / RPN / RoI heads), so
``tools/convert_checkpoint.py`` converts full detectors both ways without knowing the project.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

from .base import CheckpointConverter, StateDict, register_converter, to_4d, to_5d

_D2 = "backbone.bottom_up."
_CONV = re.compile(r"(^patch_embed\.proj\.weight|\.attn\.pool_[qkv]\.weight)$")
# Native backbone parameters that belong to the MViT (not to an FPN living under backbone.).
NATIVE_MVIT_KEY = re.compile(
    r"^backbone\.(patch_embed\.|cls_token$|pos_embed|blocks\.\d+\.|scale\d+_norm\.)"
)


_LEAF = r"\.([A-Za-z_]+)$"
# detectron2 GeneralizedRCNN names outside the MViT (k = log2 stride, s = cascade stage).
FPN_KEY = re.compile(r"^backbone\.fpn_(lateral|output)(\d+)(\.norm)?" + _LEAF)
RPN_KEY = re.compile(
    r"^proposal_generator\.rpn_head\.(?:conv(?:\.conv(\d+))?|(objectness_logits|anchor_deltas))"
    + _LEAF)
BOX_HEAD_KEY = re.compile(r"^roi_heads\.box_head\.(?:(\d+)\.)?(conv|fc)(\d+)(\.norm)?" + _LEAF)
BOX_PREDICTOR_KEY = re.compile(r"^roi_heads\.box_predictor\.(?:(\d+)\.)?(cls_score|bbox_pred)"
                               + _LEAF)
MASK_HEAD_KEY = re.compile(
    r"^roi_heads\.mask_head\.(?:mask_fcn(\d+)(\.norm)?|(deconv|predictor))" + _LEAF)
#: buffers detectron2 derives from its config (older versions saved them): not weights.
DERIVED_KEY = re.compile(r"^(pixel_mean|pixel_std|proposal_generator\.anchor_generator\..+)$")
_DETECTOR_KEYS = (FPN_KEY, RPN_KEY, BOX_HEAD_KEY, BOX_PREDICTOR_KEY, MASK_HEAD_KEY, DERIVED_KEY)


def is_detector_key(key: str) -> bool:
    """Whether ``key`` names a tensor of detectron2's FPN / RPN / RoI heads (or a derived
    buffer), i.e. anything of a ``GeneralizedRCNN`` outside ``backbone.bottom_up.``."""
    return any(p.match(key) for p in _DETECTOR_KEYS)


def is_detectron2_detector(sd: Mapping[str, object]) -> bool:
    """A detectron2 checkpoint of a whole detector (MViT + FPN / RPN / RoI heads)."""
    return any(k.startswith(_D2) for k in sd) and any(
        is_detector_key(k) and not DERIVED_KEY.match(k) for k in sd)


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
            NATIVE_MVIT_KEY.match(k) and k.endswith(
                ("rel_pos_t", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class")))]
        if bad:
            raise ValueError(
                "the detectron2 MViT has no cls token, no temporal axis and no separate position "
                f"tables; cannot represent: {bad[:8]}"
            )
        foreign = [k for k in sd if not NATIVE_MVIT_KEY.match(k) and not is_detector_key(k)]
        if foreign:
            raise ValueError(
                f"{len(foreign)} keys have no detectron2 name: {', '.join(foreign[:12])}"
                + (" ..." if len(foreign) > 12 else "") + " (detectron2's MViT has no "
                "classification head; a whole detector converts through its project's layout)"
            )
        out: StateDict = {}
        for k, v in sd.items():
            if not NATIVE_MVIT_KEY.match(k):
                out[k] = v
                continue
            name = k[len("backbone."):]
            if _CONV.search(name):
                v = to_4d(v)
            elif name == "pos_embed":
                v = torch.cat((v.new_zeros(v.shape[0], 1, v.shape[2]), v), dim=1)
            out[_D2 + name] = v
        return out


# ------------------------------------------------------------------------- whole detectors
#: ``state dict -> (state dict, notes)``
Rename = Callable[[Mapping[str, torch.Tensor]], Tuple[StateDict, List[str]]]


@dataclass(frozen=True)
class DetectorLayout:
    """How a project's detector names the tensors of detectron2's ``GeneralizedRCNN``.

    Attributes:
        name: the project / task (``"coco"``).
        prefix: every key of the project's detector checkpoints starts with it (``"detector."``).
        to_native: a whole detectron2 state dict (``backbone.bottom_up.*``, ``backbone.fpn_*``,
            ``proposal_generator.*``, ``roi_heads.*``) -> the project's keys, plus notes.
        from_native: the inverse; raises :class:`ValueError` naming every key it cannot map.
    """

    name: str
    prefix: str
    to_native: Rename
    from_native: Rename


_LAYOUTS: Dict[str, DetectorLayout] = {}


def register_detector_layout(layout: DetectorLayout) -> DetectorLayout:
    """Register ``layout`` under its name (re-registering the same name replaces it)."""
    _LAYOUTS[layout.name] = layout
    return layout


def detector_layouts() -> List[DetectorLayout]:
    """The registered layouts, after importing the built-in projects (which register theirs)."""
    from mvit_tasks.tasks import load_builtin_projects

    load_builtin_projects()
    return list(_LAYOUTS.values())


def detector_layout_of(sd: Mapping[str, object]) -> Optional[DetectorLayout]:
    """The layout whose prefix the keys of ``sd`` use (one of the project's detectors), or
    None."""
    found = [lay for lay in detector_layouts() if any(k.startswith(lay.prefix) for k in sd)]
    if len(found) > 1:
        raise ValueError(f"keys of several detector layouts: {[lay.name for lay in found]}")
    return found[0] if found else None


def only_detector_layout() -> DetectorLayout:
    """The one registered layout (to import a detectron2 detector into)."""
    layouts = detector_layouts()
    if len(layouts) != 1:
        from mvit_tasks.tasks import load_builtin_projects

        raise ValueError(
            f"a whole detectron2 detector needs exactly one project detector layout to convert "
            f"into; registered: {[lay.name for lay in layouts]} (project import errors: "
            f"{load_builtin_projects() or 'none'})"
        )
    return layouts[0]
