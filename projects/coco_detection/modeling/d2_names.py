"""detectron2 ``GeneralizedRCNN`` tensor names <-> our torchvision-assembled detector's, by name.

No model is needed: every rule follows from the key names (detectron2's module attributes in
``modeling/backbone/fpn.py``, ``proposal_generator/rpn.py``, ``roi_heads/box_head.py``,
``fast_rcnn.py``, ``mask_head.py``, ``cascade_rcnn.py``) and the shapes of the class layers.
Keys are relative to the torchvision detector (``CocoDetector.detector``):

==============================================  ====================================================
detectron2                                      ours
==============================================  ====================================================
``backbone.bottom_up.*``                        same (core converter ``detectron2``: 5-D kernels)
``backbone.fpn_lateral{k}[.norm].*``            ``backbone.fpn.inner_blocks.{k-k0}.{0|1}.*``
``backbone.fpn_output{k}[.norm].*``             ``backbone.fpn.layer_blocks.{k-k0}.{0|1}.*``
``proposal_generator.rpn_head.conv[.conv{j}]``  ``rpn.head.conv.{j}.0``
``...objectness_logits / anchor_deltas``        ``rpn.head.cls_logits / bbox_pred``
``roi_heads.box_head.fc1 / fc2`` (no convs)     ``roi_heads.box_head.fc6 / fc7`` (``TwoMLPHead``)
``roi_heads.box_head.conv{j}[.norm] / fc{i}``   ``roi_heads.box_head.{j-1}.{0|1} / {n+2i-1}``
                                                (``FastRCNNConvFCHead``: n convs, flatten, fc+relu)
``roi_heads.box_predictor.cls_score``           same; rows: background last -> first
``roi_heads.box_predictor.bbox_pred``           4K rows: 4 zero background rows prepended;
                                                4 (class-agnostic): repeated for the K+1 classes
``roi_heads.box_head.{s}.* / box_predictor.{s}``  cascade: ``roi_heads.box_heads.{s}.* /
                                                box_predictors.{s}.*`` (bbox_pred stays 4 rows)
``roi_heads.mask_head.mask_fcn{j}[.norm]``      ``roi_heads.mask_head.{j-1}.{0|1}``
``roi_heads.mask_head.deconv / predictor``      ``roi_heads.mask_predictor.conv5_mask /
                                                mask_fcn_logits`` (K maps: zero background map
                                                prepended; 1: repeated)
==============================================  ====================================================

``k0`` is the finest FPN level (2 for MViTv2). Back to detectron2, the FPN level of each lateral
conv is the backbone output with its input width (``scale{k}_norm``); the background block of
``bbox_pred`` / ``mask_fcn_logits`` (never read by torchvision's inference) is dropped, or, when
all class blocks are equal (a class-agnostic layer repeated on import), one block is written.
BatchNorm counters (``num_batches_tracked``, 0-d) are kept; missing ones are added as 0.
``pixel_mean`` / ``pixel_std`` and anchor buffers are derived from detectron2's config and are
dropped on import (reported). Any other key is refused by name (:class:`UnmappableKeysError`).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Set

import torch

from mvit_tasks.checkpoint.converters import get_converter
from mvit_tasks.checkpoint.converters.base import StateDict
from mvit_tasks.checkpoint.converters.detectron2 import (
    BOX_HEAD_KEY,
    BOX_PREDICTOR_KEY,
    DERIVED_KEY,
    FPN_KEY,
    MASK_HEAD_KEY,
    RPN_KEY,
)

BOTTOM_UP = "backbone.bottom_up."
_LEAF = r"\.([A-Za-z_]+)$"
# our (torchvision) names
_TV_FPN = re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.([01])" + _LEAF)
_TV_RPN = re.compile(r"^rpn\.head\.(?:conv\.(\d+)\.0|(cls_logits|bbox_pred))" + _LEAF)
# group 1: the head (``box_head`` or cascade ``box_heads.{s}``), as detectron2 names it
_TV_BOX_HEAD = re.compile(
    r"^roi_heads\.(box_head|box_heads\.\d+)\.(fc6|fc7|\d+)(?:\.([01]))?" + _LEAF)
_TV_BOX_PREDICTOR = re.compile(
    r"^roi_heads\.(box_predictor|box_predictors\.\d+)\.(cls_score|bbox_pred)" + _LEAF)
_TV_MASK = re.compile(
    r"^roi_heads\.(?:mask_head\.(\d+)\.([01])|mask_predictor\.(conv5_mask|mask_fcn_logits))"
    + _LEAF)
_NORM_SUB = {None: "0", ".norm": "1"}


class UnmappableKeysError(ValueError):
    """Keys with no counterpart in the other layout (the message lists them)."""

    def __init__(self, keys: List[str], direction: str) -> None:
        self.keys = keys
        shown = ", ".join(keys[:12]) + (f" ... (+{len(keys) - 12})" if len(keys) > 12 else "")
        super().__init__(f"{len(keys)} keys have no {direction} name: {shown}")


@dataclass
class Renamed:
    """Result of a conversion: the state dict, source keys dropped on purpose (with the
    reason) and notes on what was changed."""

    state_dict: StateDict
    dropped: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


# ----------------------------------------------------------------------- class-dependent rows
def _rows_in(v: torch.Tensor, width: int, classes: int) -> Optional[torch.Tensor]:
    """detectron2 per-class rows (``K*width`` or ``width``) -> torchvision's ``(K+1)*width``."""
    if v.shape[0] == (classes - 1) * width:
        return torch.cat((v.new_zeros((width,) + tuple(v.shape[1:])), v))
    if v.shape[0] == width:
        return v.repeat(classes, *([1] * (v.ndim - 1)))
    return None


def _fold(layer: Dict[str, torch.Tensor], width: int) -> Optional[bool]:
    """Whether the ``(K+1)*width`` rows of a layer's tensors are K+1 equal blocks (class-agnostic,
    True) or not (False); None if the rows are not a multiple of ``width`` above it."""
    agnostic = True
    for v in layer.values():
        if v.shape[0] % width or v.shape[0] <= width:
            return None
        blocks = v.reshape(v.shape[0] // width, width, *v.shape[1:])
        agnostic = agnostic and bool((blocks == blocks[:1]).all())
    return agnostic


def _add_bn_counters(sd: StateDict, notes: List[str]) -> None:
    added = [k[: -len("running_mean")] + "num_batches_tracked" for k in sd
             if k.endswith(".running_mean")]
    added = [k for k in added if k not in sd]
    for k in added:
        sd[k] = torch.zeros((), dtype=torch.long)
    if added:
        notes.append(f"{len(added)} BatchNorm num_batches_tracked counters absent, set to 0")


# ------------------------------------------------------------------------ detectron2 -> ours
def _select_stage(sd: Mapping[str, torch.Tensor], stage: int, dropped: Dict[str, str]) -> StateDict:
    """One cascade stage as a single-stage head (``box_head.{s}.`` -> ``box_head.``)."""
    out: StateDict = {}
    for k, v in sd.items():
        m = BOX_HEAD_KEY.match(k) or BOX_PREDICTOR_KEY.match(k)
        if m is None or m.group(1) is None:
            out[k] = v
        elif int(m.group(1)) == stage:
            out[k.replace(f".{stage}.", ".", 1)] = v
        else:
            dropped[k] = f"other cascade stage (loaded stage {stage})"
    return out


def _num_classes(sd: Mapping[str, torch.Tensor]) -> Optional[int]:
    rows = [v.shape[0] for k, v in sorted(sd.items())
            if (m := BOX_PREDICTOR_KEY.match(k)) and m.group(2) == "cls_score"]
    return rows[0] if rows else None


def _box_head_name(m: re.Match, convs: Dict[Optional[str], Set[int]]) -> str:
    stage, kind, idx, norm, leaf = m.groups()
    head = "roi_heads.box_head" if stage is None else f"roi_heads.box_heads.{stage}"
    n = len(convs[stage])
    if kind == "conv":
        return f"{head}.{int(idx) - 1}.{_NORM_SUB[norm]}.{leaf}"
    if n == 0 and int(idx) <= 2:  # torchvision TwoMLPHead
        return f"{head}.fc{int(idx) + 5}.{leaf}"
    return f"{head}.{n + 2 * int(idx) - 1}.{leaf}"


def detectron2_to_torchvision(
    sd: Mapping[str, torch.Tensor],
    cascade_stage: Optional[int] = None,
    num_classes: Optional[int] = None,
) -> Renamed:
    """A whole detectron2 detector state dict -> our detector's keys (see the module table).

    Args:
        cascade_stage: of a Cascade checkpoint, load only this stage as a single-stage head.
        num_classes: K+1 of the target model; default: the checkpoint's (``cls_score`` rows).
            When given, class layers that do not fit are passed on unchanged (the caller drops
            them); otherwise they raise.
    """
    res = Renamed({})
    if cascade_stage is not None:
        sd = _select_stage(sd, cascade_stage, res.dropped)
    bottom = {k: v for k, v in sd.items() if k.startswith(BOTTOM_UP)}
    native = get_converter("detectron2").to_native(bottom)
    res.state_dict.update({BOTTOM_UP + k[len("backbone."):]: v for k, v in native.items()})
    classes = num_classes or _num_classes(sd)
    levels = [int(m.group(2)) for k in sd if (m := FPN_KEY.match(k))]
    convs: Dict[Optional[str], Set[int]] = defaultdict(set)
    for k in sd:
        if (m := BOX_HEAD_KEY.match(k)) and m.group(2) == "conv":
            convs[m.group(1)].add(int(m.group(3)))
    bad: List[str] = []
    for k, v in sd.items():
        if k.startswith(BOTTOM_UP):
            continue
        if DERIVED_KEY.match(k):
            res.dropped[k] = ("input normalisation; the model uses its image_mean / image_std"
                              if k.startswith("pixel_") else "derived anchor buffer")
            continue
        if m := FPN_KEY.match(k):
            kind, level, norm, leaf = m.groups()
            block = "inner" if kind == "lateral" else "layer"
            new = f"backbone.fpn.{block}_blocks.{int(level) - min(levels)}.{_NORM_SUB[norm]}.{leaf}"
        elif m := RPN_KEY.match(k):
            j, layer, leaf = m.groups()
            ours = "cls_logits" if layer == "objectness_logits" else "bbox_pred"
            new = (f"rpn.head.conv.{int(j or 0)}.0.{leaf}" if layer is None else
                   f"rpn.head.{ours}.{leaf}")
        elif m := BOX_HEAD_KEY.match(k):
            new = _box_head_name(m, convs)
        elif m := BOX_PREDICTOR_KEY.match(k):
            stage, layer, leaf = m.groups()
            head = "roi_heads.box_predictor" + ("" if stage is None else f"s.{stage}")
            new = f"{head}.{layer}.{leaf}"
            if layer == "cls_score":
                v = torch.cat((v[-1:], v[:-1]))
            elif stage is None:
                v = _fit_rows(k, v, 4, classes, num_classes is None, res.notes)
        elif m := MASK_HEAD_KEY.match(k):
            j, norm, layer, leaf = m.groups()
            if layer is None:
                new = f"roi_heads.mask_head.{int(j) - 1}.{_NORM_SUB[norm]}.{leaf}"
            else:
                name = "conv5_mask" if layer == "deconv" else "mask_fcn_logits"
                new = f"roi_heads.mask_predictor.{name}.{leaf}"
                if layer == "predictor":
                    v = _fit_rows(k, v, 1, classes, num_classes is None, res.notes)
        else:
            bad.append(k)
            continue
        res.state_dict[new] = v
    if bad:
        raise UnmappableKeysError(bad, "torchvision-detector")
    if classes is not None:
        res.notes.append("box classifier rows reordered: detectron2 background last -> first")
    _add_bn_counters(res.state_dict, res.notes)
    return res


def _fit_rows(key: str, v: torch.Tensor, width: int, classes: Optional[int], strict: bool,
              notes: List[str]) -> torch.Tensor:
    fitted = _rows_in(v, width, classes) if classes else None
    if fitted is None:
        if strict:
            raise ValueError(f"{key}: {v.shape[0]} rows fit neither {classes} classes nor "
                             "class-agnostic prediction")
        return v
    if v.shape[0] == width and classes != 2:
        notes.append(f"{key}: class-agnostic, repeated for the {classes} classes")
    return fitted


# ------------------------------------------------------------------------ ours -> detectron2
def _fpn_levels(sd: Mapping[str, torch.Tensor]) -> Dict[int, int]:
    """FPN input index -> detectron2 level, matched by width with the ``scale{k}_norm``."""
    width = {int(v.shape[0]): int(m.group(1)) for k, v in sd.items()
             if (m := re.match(rf"^{re.escape(BOTTOM_UP)}scale(\d+)_norm\.weight$", k))}
    out: Dict[int, int] = {}
    for k, v in sd.items():
        m = _TV_FPN.match(k)
        if m and m.group(1) == "inner" and m.group(3) == "0" and m.group(4) == "weight":
            if int(v.shape[1]) not in width:
                raise ValueError(f"{k}: no backbone output of width {v.shape[1]} "
                                 f"(scale norms: {width}); cannot tell its FPN level")
            out[int(m.group(2))] = width[int(v.shape[1])]
    return out


def torchvision_to_detectron2(sd: Mapping[str, torch.Tensor]) -> Renamed:
    """Our detector's keys -> detectron2's (inverse of :func:`detectron2_to_torchvision`)."""
    res = Renamed({})
    bottom = {"backbone." + k[len(BOTTOM_UP):]: v for k, v in sd.items() if k.startswith(BOTTOM_UP)}
    res.state_dict.update(get_converter("detectron2").from_native(bottom))
    levels = _fpn_levels(sd)
    rpn_depth = len({m.group(1) for k in sd if (m := _TV_RPN.match(k)) and m.group(1)})
    linears: Dict[Optional[str], List[int]] = defaultdict(list)
    convs: Dict[Optional[str], List[int]] = defaultdict(list)
    for k in sd:
        if (m := _TV_BOX_HEAD.match(k)) and m.group(2).isdigit():
            (convs if m.group(3) else linears)[m.group(1)].append(int(m.group(2)))
    class_layers: Dict[str, Dict[str, torch.Tensor]] = defaultdict(dict)
    bad: List[str] = []
    for k, v in sd.items():
        if k.startswith(BOTTOM_UP):
            continue
        if m := _TV_FPN.match(k):
            kind, i, sub, leaf = m.groups()
            if int(i) not in levels:
                bad.append(k)
                continue
            name = "lateral" if kind == "inner" else "output"
            new = f"backbone.fpn_{name}{levels[int(i)]}{'.norm' if sub == '1' else ''}.{leaf}"
        elif m := _TV_RPN.match(k):
            j, layer, leaf = m.groups()
            if layer is not None:
                layer = "objectness_logits" if layer == "cls_logits" else "anchor_deltas"
                new = f"proposal_generator.rpn_head.{layer}.{leaf}"
            else:
                conv = "conv" if rpn_depth == 1 else f"conv.conv{j}"
                new = f"proposal_generator.rpn_head.{conv}.{leaf}"
        elif m := _TV_BOX_HEAD.match(k):
            stage, idx, sub, leaf = m.groups()
            head = "roi_heads." + stage.replace("box_heads", "box_head")
            if idx in ("fc6", "fc7"):
                new = f"{head}.fc{int(idx[2]) - 5}.{leaf}"
            elif sub is not None:
                rank = sorted(set(convs[stage])).index(int(idx)) + 1
                new = f"{head}.conv{rank}{'.norm' if sub == '1' else ''}.{leaf}"
            else:
                new = f"{head}.fc{sorted(set(linears[stage])).index(int(idx)) + 1}.{leaf}"
        elif m := _TV_BOX_PREDICTOR.match(k):
            stage, layer, leaf = m.groups()
            new = f"roi_heads.{stage.replace('box_predictors', 'box_predictor')}.{layer}.{leaf}"
            if layer == "cls_score":
                v = torch.cat((v[1:], v[:1]))
            elif v.shape[0] != 4:
                class_layers[new.rsplit(".", 1)[0]][leaf] = v
                continue
        elif m := _TV_MASK.match(k):
            j, sub, layer, leaf = m.groups()
            if layer is None:
                norm = ".norm" if sub == "1" else ""
                new = f"roi_heads.mask_head.mask_fcn{int(j) + 1}{norm}.{leaf}"
            elif layer == "conv5_mask":
                new = f"roi_heads.mask_head.deconv.{leaf}"
            else:
                class_layers["roi_heads.mask_head.predictor"][leaf] = v
                continue
        else:
            bad.append(k)
            continue
        res.state_dict[new] = v
    if bad:
        raise UnmappableKeysError(bad, "detectron2")
    for name, layer in class_layers.items():
        width = 1 if name.endswith("mask_head.predictor") else 4
        agnostic = _fold(layer, width)
        if agnostic is None:
            raise ValueError(f"{name}: rows {[tuple(v.shape) for v in layer.values()]} are not "
                             f"(K+1) blocks of {width}")
        for leaf, v in layer.items():
            res.state_dict[f"{name}.{leaf}"] = v[:width] if agnostic else v[width:]
        res.notes.append(f"{name}: " + ("all class blocks equal, written class-agnostic" if agnostic
                                        else "background block dropped (torchvision-only, unused)"))
    if any(k.endswith("cls_score.weight") for k in res.state_dict):
        res.notes.append("box classifier rows reordered: background first -> last")
    return res


__all__ = [
    "BOTTOM_UP",
    "Renamed",
    "UnmappableKeysError",
    "detectron2_to_torchvision",
    "torchvision_to_detectron2",
]
