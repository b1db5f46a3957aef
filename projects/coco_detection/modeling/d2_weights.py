"""Weights for the torchvision-assembled detector: detectron2 checkpoints and backbone init.

detectron2 MViTv2 checkpoints (``projects/MViTv2``; model-zoo ``.pkl`` = ``{"model": {name:
ndarray}}``, or a ``torch.save``-d ``{"model": state_dict}``) name their tensors after
``GeneralizedRCNN(backbone=FPN(bottom_up=MViT))`` (``detectron2/modeling/...``). Mapping of
detectron2 keys to ours (a :func:`build_mask_rcnn` model):

* ``backbone.bottom_up.*`` -> ``backbone.bottom_up.*`` (core converter ``detectron2``: 2-D
  pooling / patch kernels made 5-D, ...).
* ``backbone.fpn_lateral{k}[.norm].*`` / ``backbone.fpn_output{k}[.norm].*`` ->
  ``backbone.fpn.inner_blocks.{k-2}.{0|1}.*`` / ``backbone.fpn.layer_blocks.{k-2}.{0|1}.*``.
* ``proposal_generator.rpn_head.conv.*`` (or ``conv.conv{j}.*`` with 2 convs),
  ``objectness_logits``, ``anchor_deltas`` -> ``rpn.head.conv.{j}.0.*``, ``cls_logits``,
  ``bbox_pred`` (same anchor order: one size per level, ratios 0.5/1/2).
* ``roi_heads.box_head.fc1 / fc2`` (2fc) -> ``roi_heads.box_head.fc6 / fc7``;
  ``conv{j}[.norm] / fc1`` (4conv1fc) -> ``roi_heads.box_head.{j-1}.{0|1} / .5``.
* ``roi_heads.box_predictor.cls_score`` -> same name, rows reordered: detectron2 puts the
  background *last* of its K+1 rows, torchvision first.
* ``roi_heads.box_predictor.bbox_pred``: detectron2 has 4K rows (class-specific) or 4
  (class-agnostic); torchvision 4(K+1): four zero rows for the background (never used) are
  prepended, or the agnostic rows are repeated for every class.
* ``roi_heads.mask_head.mask_fcn{j}[.norm]`` -> ``roi_heads.mask_head.{j-1}.{0|1}``;
  ``deconv`` -> ``roi_heads.mask_predictor.conv5_mask``; ``predictor`` (K maps, or 1 if
  class-agnostic) -> ``roi_heads.mask_predictor.mask_fcn_logits`` (K+1: a zero background map
  is prepended, or the single map repeated).

Box-delta weights: detectron2's RPN uses (1, 1, 1, 1) and its Mask R-CNN box head (10, 10, 5, 5),
as torchvision's defaults; both are checked on load. Cascade R-CNN checkpoints
(``roi_heads.box_head.{0,1,2}``, class-agnostic, weights (10,10,5,5)x(s+1)) can only be loaded one
stage at a time (``cascade_stage``) into a single-stage model built with the Cascade heads; that
is not the published cascade. Not mapped (reported): ``pixel_mean`` / ``pixel_std`` (the model's
``image_mean`` / ``image_std`` are used), anchor buffers, other cascade stages, branches the model
lacks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops.misc import Conv2dNormActivation

from mvit_tasks.checkpoint.converters import get_converter
from mvit_tasks.checkpoint.converters.base import StateDict, strip_prefix
from mvit_tasks.checkpoint.io import extract_state_dict, load_checkpoint_file
from mvit_tasks.checkpoint.loader import LoadReport, load_weights

_BOTTOM_UP = "backbone.bottom_up."
_CASCADE_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
# Tensor transforms for class-dependent layers: (d2 tensor, model tensor) -> model-shaped tensor.
_Fix = Callable[[torch.Tensor, torch.Tensor], Optional[torch.Tensor]]


@dataclass
class D2LoadReport:
    """What :func:`load_detectron2_checkpoint` did.

    Attributes:
        load: the strict load report (model keys allowed to stay missing, adaptations).
        unmapped: detectron2 keys with no counterpart in the model, with the reason.
        notes: conversions applied (class reordering, background rows, ...).
    """

    load: LoadReport
    unmapped: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        s = self.load.summary()
        if self.unmapped:
            s += f"; {len(self.unmapped)} detectron2 keys not mapped: " + ", ".join(
                f"{k} ({r})" for k, r in list(self.unmapped.items())[:6]
            ) + (" ..." if len(self.unmapped) > 6 else "")
        return s


# ------------------------------------------------------------------------ class-dependent rows
def _cls_score(d2: torch.Tensor, ours: torch.Tensor) -> Optional[torch.Tensor]:
    """detectron2 rows (fg_0..fg_{K-1}, bg) -> torchvision rows (bg, fg_0..fg_{K-1})."""
    if d2.shape != ours.shape:
        return None
    return torch.cat((d2[-1:], d2[:-1]))


def _per_class(width: int) -> _Fix:
    """``K*width`` class-specific rows -> zero background block first; ``width`` class-agnostic
    rows -> repeated for every class (background included)."""

    def fix(d2: torch.Tensor, ours: torch.Tensor) -> Optional[torch.Tensor]:
        classes = ours.shape[0] // width
        if d2.shape[1:] != ours.shape[1:]:
            return None
        if d2.shape[0] == width:
            return d2.repeat(classes, *([1] * (d2.ndim - 1)))
        if d2.shape[0] == (classes - 1) * width:
            return torch.cat((d2.new_zeros((width,) + tuple(d2.shape[1:])), d2))
        return None

    return fix


# ---------------------------------------------------------------------------------- key map
def _params(module: nn.Module) -> List[str]:
    return list(module.state_dict())


def _conv_block(ours: str, block: nn.Module, d2: str) -> Dict[str, str]:
    """A torchvision ``Conv2dNormActivation`` -> a detectron2 ``Conv2d`` (+ ``.norm``)."""
    out = {f"{ours}.0.{p}": f"{d2}.{p}" for p in _params(block[0])}
    if len(block) > 1 and _params(block[1]):
        out.update({f"{ours}.1.{p}": f"{d2}.norm.{p}" for p in _params(block[1])})
    return out


def _box_head(ours: str, head: nn.Module, d2: str) -> Dict[str, str]:
    if isinstance(head, TwoMLPHead):
        return {f"{ours}.{a}.{p}": f"{d2}.{b}.{p}" for a, b in (("fc6", "fc1"), ("fc7", "fc2"))
                for p in _params(getattr(head, a))}
    out: Dict[str, str] = {}
    convs = fcs = 0
    for idx, child in head.named_children():
        if isinstance(child, Conv2dNormActivation):
            convs += 1
            out.update(_conv_block(f"{ours}.{idx}", child, f"{d2}.conv{convs}"))
        elif isinstance(child, nn.Linear):
            fcs += 1
            out.update({f"{ours}.{idx}.{p}": f"{d2}.fc{fcs}.{p}" for p in _params(child)})
        elif _params(child):
            raise TypeError(f"box head layer {ours}.{idx} ({type(child).__name__}) has no "
                            "detectron2 counterpart")
    return out


def detectron2_key_map(model: nn.Module, cascade_stage: Optional[int] = None) -> Dict[str, str]:
    """Model key -> detectron2 key for the FPN, RPN and RoI heads of a ``build_mask_rcnn``
    model (the MViT under ``backbone.bottom_up.`` is mapped by the core converter)."""
    m: Dict[str, str] = {f"backbone.{k}": f"backbone.{v}"
                         for k, v in model.backbone.detectron2_names().items()}
    rpn = model.rpn.head
    convs = list(rpn.conv)
    for j, block in enumerate(convs):
        d2 = "proposal_generator.rpn_head.conv" + ("" if len(convs) == 1 else f".conv{j}")
        m.update(_conv_block(f"rpn.head.conv.{j}", block, d2))
    for ours, d2 in (("cls_logits", "objectness_logits"), ("bbox_pred", "anchor_deltas")):
        m.update({f"rpn.head.{ours}.{p}": f"proposal_generator.rpn_head.{d2}.{p}"
                  for p in _params(getattr(rpn, ours))})
    stage = "" if cascade_stage is None else f".{cascade_stage}"
    heads = model.roi_heads
    m.update(_box_head("roi_heads.box_head", heads.box_head, f"roi_heads.box_head{stage}"))
    for p in ("cls_score", "bbox_pred"):
        for t in ("weight", "bias"):
            m[f"roi_heads.box_predictor.{p}.{t}"] = f"roi_heads.box_predictor{stage}.{p}.{t}"
    if getattr(heads, "mask_head", None) is not None:
        for j, block in heads.mask_head.named_children():
            m.update(_conv_block(f"roi_heads.mask_head.{j}", block,
                                 f"roi_heads.mask_head.mask_fcn{int(j) + 1}"))
        for ours, d2 in (("conv5_mask", "deconv"), ("mask_fcn_logits", "predictor")):
            for t in ("weight", "bias"):
                m[f"roi_heads.mask_predictor.{ours}.{t}"] = f"roi_heads.mask_head.{d2}.{t}"
    return m


_FIXES: Dict[str, _Fix] = {
    "roi_heads.box_predictor.cls_score.weight": _cls_score,
    "roi_heads.box_predictor.cls_score.bias": _cls_score,
    "roi_heads.box_predictor.bbox_pred.weight": _per_class(4),
    "roi_heads.box_predictor.bbox_pred.bias": _per_class(4),
    "roi_heads.mask_predictor.mask_fcn_logits.weight": _per_class(1),
    "roi_heads.mask_predictor.mask_fcn_logits.bias": _per_class(1),
}


def _check_box_coders(model: nn.Module, cascade_stage: Optional[int]) -> None:
    want = _CASCADE_WEIGHTS[cascade_stage] if cascade_stage is not None else _CASCADE_WEIGHTS[0]
    have = tuple(float(w) for w in model.roi_heads.box_coder.weights)
    if have != want:
        raise ValueError(
            f"the model's box-delta weights are {have} but the detectron2 head was trained with "
            f"{want}; build the model with bbox_reg_weights={want}"
        )
    rpn = tuple(float(w) for w in model.rpn.box_coder.weights)
    if rpn != (1.0, 1.0, 1.0, 1.0):
        raise ValueError(
            f"the model's RPN box-delta weights are {rpn}; detectron2 uses (1, 1, 1, 1)"
        )


def convert_detectron2_state_dict(
    sd: Mapping[str, torch.Tensor], model: nn.Module, cascade_stage: Optional[int] = None
) -> Tuple[StateDict, Dict[str, str], List[str]]:
    """detectron2 detector state dict -> ``model``'s keys.

    Returns:
        (mapped state dict, unmapped detectron2 keys -> reason, notes).
    """
    cascade = any(k.startswith("roi_heads.box_head.0.") for k in sd)
    if cascade and cascade_stage is None:
        raise ValueError(
            "this is a Cascade R-CNN checkpoint (roi_heads.box_head.0/1/2); torchvision has no "
            "cascade. Pass cascade_stage=0, 1 or 2 to load that stage's box head into a model "
            "built with box_head='4conv1fc', box_head_norm='BN', rpn_conv_depth=2, "
            "mask_head_norm='BN' (single-stage inference, not the published numbers)"
        )
    if cascade_stage is not None and not cascade:
        raise ValueError(
            f"cascade_stage={cascade_stage} given but the checkpoint has no cascade heads"
        )
    _check_box_coders(model, cascade_stage)
    notes: List[str] = []
    out: StateDict = {}
    bottom = {k: v for k, v in sd.items() if k.startswith(_BOTTOM_UP)}
    native = get_converter("detectron2").to_native(bottom)
    out.update({"backbone.bottom_up." + k[len("backbone."):]: v for k, v in native.items()})

    model_sd = model.state_dict()
    used = set(bottom)
    for ours, d2 in detectron2_key_map(model, cascade_stage).items():
        if d2 not in sd:
            if ours.endswith("num_batches_tracked"):
                out[ours] = torch.zeros_like(model_sd[ours])  # detectron2 .pkl files omit it
            continue
        used.add(d2)
        value = sd[d2]
        fix = _FIXES.get(ours)
        if fix is not None:
            fixed = fix(value, model_sd[ours])
            if fixed is None:
                notes.append(f"{d2}: {tuple(value.shape)} does not fit {ours} "
                             f"{tuple(model_sd[ours].shape)} (another class count?); not loaded")
                continue
            value = fixed
        out[ours] = value
    if "roi_heads.box_predictor.cls_score.bias" in out:
        notes.append("box classifier rows reordered: detectron2 background last -> first")
    unmapped = {k: _why(k, cascade_stage) for k in sd if k not in used}
    return out, unmapped, notes


def _why(key: str, cascade_stage: Optional[int]) -> str:
    if key in ("pixel_mean", "pixel_std"):
        return "input normalisation; the model uses its image_mean / image_std"
    if "anchor_generator" in key:
        return "derived anchor buffer"
    if cascade_stage is not None and key.startswith(
        ("roi_heads.box_head.", "roi_heads.box_predictor.")
    ):
        return f"other cascade stage (loaded stage {cascade_stage})"
    if key.startswith("roi_heads.mask_head."):
        return "the model has no mask branch or another mask head"
    return "no counterpart in the model"


def load_detectron2_checkpoint(
    model: nn.Module,
    checkpoint: Union[str, Mapping[str, Any]],
    cascade_stage: Optional[int] = None,
    allow_missing: Sequence[str] = (),
    allow_unsafe: bool = False,
) -> D2LoadReport:
    """Load a detectron2 MViTv2 (Mask / Faster / one cascade stage) checkpoint into a
    :func:`~projects.coco_detection.modeling.detector.build_mask_rcnn` model.

    Args:
        checkpoint: path (``.pkl`` model-zoo pickle or ``.pth``) or an already-read object.
        cascade_stage: for Cascade checkpoints, the stage whose box head to load.
        allow_missing: model-key prefixes / globs that may stay at their init (e.g.
            ``["roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."]`` for
            another class count).

    Raises:
        CheckpointMismatchError: model keys missing from the checkpoint (not allowed) or
            checkpoint backbone keys the model lacks.
    """
    obj = checkpoint
    if isinstance(checkpoint, str):
        obj = load_checkpoint_file(checkpoint, allow_unsafe)
    sd = strip_prefix(extract_state_dict(obj), "module.")
    mapped, unmapped, notes = convert_detectron2_state_dict(sd, model, cascade_stage)
    report = load_weights(model, mapped, source="native", allow_missing=allow_missing)
    return D2LoadReport(report, unmapped, notes)


def load_backbone_init(
    model: nn.Module,
    checkpoint: Union[str, Mapping[str, Any]],
    source: str = "auto",
    allow_unsafe: bool = False,
) -> LoadReport:
    """Initialise only ``model.backbone.bottom_up`` from an ImageNet (or any backbone)
    checkpoint: mvit ``.pyth``, SlowFast, timm, torchvision, detectron2, ours (auto-detected).

    Relative-position tables are resized to the model's (core ``adapt_state_dict``); window
    attention has no parameters, so hybrid-window COCO backbones take global-attention ImageNet
    weights as they are. The checkpoint's classifier head and FPN/detector heads are dropped;
    the FPN, RPN, RoI heads and the per-stage norms the checkpoint lacks (``scale2..4_norm``;
    its final norm becomes ``scale5_norm``) keep their initialisation and are listed as
    missing in the report.
    """
    dropped: List[str] = []

    def rename(key: str) -> Optional[str]:
        if key.startswith("backbone.") and not key.startswith("backbone.fpn_"):
            return "backbone.bottom_up." + key[len("backbone."):]
        dropped.append(key)
        return None

    report = load_weights(
        model, checkpoint, source=source, allow_unsafe=allow_unsafe, rename=rename,
        allow_missing=["backbone.fpn.", "rpn.", "roi_heads.", "backbone.bottom_up.scale*_norm.*"],
    )
    if dropped:
        report.notes.append(
            f"{len(dropped)} non-backbone tensors dropped ({', '.join(dropped[:4])})"
        )
    return report


__all__ = [
    "D2LoadReport",
    "convert_detectron2_state_dict",
    "detectron2_key_map",
    "load_backbone_init",
    "load_detectron2_checkpoint",
]
