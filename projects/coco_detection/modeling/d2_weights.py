"""Weights for the torchvision-assembled detector: detectron2 checkpoints and backbone init.

detectron2 MViTv2 checkpoints (``projects/MViTv2``; model-zoo ``.pkl`` = ``{"model": {name:
ndarray}}``, or a ``torch.save``-d ``{"model": state_dict}``) name their tensors after
``GeneralizedRCNN(backbone=FPN(bottom_up=MViT))``. :mod:`.d2_names` maps those names to ours and
back (Mask R-CNN and Cascade Mask R-CNN: ``roi_heads.box_head.{s}`` / ``box_predictor.{s}`` ->
the cascade model's ``roi_heads.box_heads.{s}`` / ``box_predictors.{s}``), by name alone; here
they are checked against a model and loaded strictly. The COCO checkpoint layout (the
torchvision detector under ``detector.``) is registered with the core ``detectron2`` converter,
so ``tools/convert_checkpoint.py`` converts whole detectors both ways.

Box-delta weights: detectron2's RPN uses (1, 1, 1, 1), its Mask R-CNN box head (10, 10, 5, 5)
and its cascade stages (10, 10, 5, 5) x (s + 1), as torchvision's defaults and the cascade model;
they are checked on load where the model exposes them. A Cascade checkpoint can also be loaded
one stage at a time (``cascade_stage``) into a single-stage model built with the cascade's heads
(not the published cascade). Not loaded (reported in :attr:`D2LoadReport.unmapped`):
``pixel_mean`` / ``pixel_std`` (the model's ``image_mean`` / ``image_std`` are used), anchor
buffers, the other stages with ``cascade_stage``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from mvit_tasks.checkpoint.converters.base import StateDict, strip_prefix
from mvit_tasks.checkpoint.converters.detectron2 import (
    BOX_HEAD_KEY,
    DetectorLayout,
    register_detector_layout,
)
from mvit_tasks.checkpoint.io import extract_state_dict, load_checkpoint_file
from mvit_tasks.checkpoint.loader import LoadReport, load_weights

from .d2_names import detectron2_to_torchvision, torchvision_to_detectron2

_CASCADE_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
_CLASS_LAYER = re.compile(r"\.(cls_score|bbox_pred|mask_fcn_logits)\.[a-z]+$")
#: the COCO task's checkpoints: the torchvision detector under ``detector.`` (``CocoDetector``)
COCO_PREFIX = "detector."


@dataclass
class D2LoadReport:
    """What :func:`load_detectron2_checkpoint` did.

    Attributes:
        load: the strict load report (model keys allowed to stay missing, adaptations).
        unmapped: detectron2 keys deliberately not loaded, with the reason.
        notes: conversions applied (class reordering, background rows, ...).
    """

    load: LoadReport
    unmapped: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        s = self.load.summary()
        if self.unmapped:
            s += f"; {len(self.unmapped)} detectron2 keys not loaded: " + ", ".join(
                f"{k} ({r})" for k, r in list(self.unmapped.items())[:6]
            ) + (" ..." if len(self.unmapped) > 6 else "")
        return s


def _is_cascade_checkpoint(sd: Mapping[str, Any]) -> bool:
    return any((m := BOX_HEAD_KEY.match(k)) and m.group(1) is not None for k in sd)


def _is_cascade_model(model: nn.Module) -> bool:
    return hasattr(model.roi_heads, "box_heads")


def _check_layout(sd: Mapping[str, Any], model: nn.Module, cascade_stage: Optional[int]) -> None:
    """Cascade checkpoint <-> cascade model (or one stage into a single-stage model)."""
    cascade, model_cascade = _is_cascade_checkpoint(sd), _is_cascade_model(model)
    if cascade_stage is not None and (not cascade or model_cascade):
        raise ValueError(f"cascade_stage={cascade_stage} loads one stage of a Cascade checkpoint "
                         "into a single-stage model; " + (
                             "the checkpoint has no cascade heads" if not cascade else
                             "this model is a cascade: load all stages (cascade_stage=None)"))
    if cascade and not model_cascade and cascade_stage is None:
        raise ValueError(
            "this is a Cascade R-CNN checkpoint (roi_heads.box_head.0/1/2): build the cascade "
            "model (COCO.DETECTOR.ROI_HEADS cascade, BOX_HEAD 4conv1fc, BOX_HEAD_NORM BN, "
            "RPN_CONV_DEPTH 2, MASK_HEAD_NORM BN), or pass cascade_stage=0, 1 or 2 to load one "
            "stage into a single-stage model with those heads (not the published numbers)"
        )
    if model_cascade and not cascade:
        raise ValueError("the model is a cascade but the checkpoint has a single-stage box head "
                         "(roi_heads.box_head.fc*/conv*); build the model without the cascade")


def _coder_weights(coder: Any) -> Tuple[float, ...]:
    return tuple(float(w) for w in coder.weights)


def _check_box_coders(model: nn.Module, cascade_stage: Optional[int]) -> None:
    heads = model.roi_heads
    coders = getattr(heads, "box_coders", None)
    if coders is not None:  # the cascade model: one coder per stage
        pairs = [(f"stage {s}", _coder_weights(c), w) for s, (c, w) in
                 enumerate(zip(coders, _CASCADE_WEIGHTS))]
    else:
        want = _CASCADE_WEIGHTS[cascade_stage if cascade_stage is not None else 0]
        pairs = [("box head", _coder_weights(heads.box_coder), want)]
    for what, have, want in pairs:
        if have != want:
            raise ValueError(
                f"the model's {what} box-delta weights are {have} but the detectron2 head was "
                f"trained with {want}; build the model with bbox_reg_weights={want}"
            )
    rpn = _coder_weights(model.rpn.box_coder)
    if rpn != (1.0, 1.0, 1.0, 1.0):
        raise ValueError(
            f"the model's RPN box-delta weights are {rpn}; detectron2 uses (1, 1, 1, 1)"
        )


def _num_classes(model_sd: Mapping[str, torch.Tensor]) -> Optional[int]:
    rows = [v.shape[0] for k, v in sorted(model_sd.items()) if k.endswith("cls_score.weight")]
    return rows[0] if rows else None


def convert_detectron2_state_dict(
    sd: Mapping[str, torch.Tensor], model: nn.Module, cascade_stage: Optional[int] = None
) -> Tuple[StateDict, Dict[str, str], List[str]]:
    """detectron2 detector state dict -> ``model``'s keys (a ``build_mask_rcnn`` or cascade
    model), with the class layers fitted to the model's class count.

    Returns:
        (mapped state dict, detectron2 keys not loaded -> reason, notes). Class layers of
        another class count are left out (a note says so; the strict load then reports them
        missing unless allowed).

    Raises:
        ValueError: cascade / single-stage mismatch, box-delta weights that differ from the
            checkpoint's, keys that have no counterpart (by name).
    """
    _check_layout(sd, model, cascade_stage)
    _check_box_coders(model, cascade_stage)
    model_sd = model.state_dict()
    res = detectron2_to_torchvision(sd, cascade_stage, num_classes=_num_classes(model_sd))
    out: StateDict = {}
    for k, v in res.state_dict.items():
        target = model_sd.get(k)
        if target is not None and _CLASS_LAYER.search(k) and target.shape != v.shape:
            res.notes.append(f"{k}: {tuple(v.shape)} does not fit the model's "
                             f"{tuple(target.shape)} (another class count?); not loaded")
            continue
        out[k] = v
    return out, res.dropped, res.notes


def load_detectron2_checkpoint(
    model: nn.Module,
    checkpoint: Union[str, Mapping[str, Any]],
    cascade_stage: Optional[int] = None,
    allow_missing: Sequence[str] = (),
    allow_unsafe: bool = False,
    allow_unexpected: Sequence[str] = (),
) -> D2LoadReport:
    """Load a detectron2 MViTv2 checkpoint (Mask / Faster R-CNN, Cascade Mask R-CNN, or one
    cascade stage) strictly into a ``build_mask_rcnn`` or cascade model.

    Args:
        checkpoint: path (``.pkl`` model-zoo pickle or ``.pth``) or an already-read object.
        cascade_stage: for Cascade checkpoints into a single-stage model, the stage to load.
        allow_missing / allow_unexpected: model-key prefixes / globs that may stay at their
            init / be left out (e.g. ``["roi_heads.box_predictor.",
            "roi_heads.mask_predictor.mask_fcn_logits."]`` for another class count).

    Raises:
        CheckpointMismatchError: model keys missing from the checkpoint or checkpoint keys the
            model lacks (not allowed).
    """
    obj = checkpoint
    if isinstance(checkpoint, str):
        obj = load_checkpoint_file(checkpoint, allow_unsafe)
    sd = strip_prefix(extract_state_dict(obj), "module.")
    mapped, unmapped, notes = convert_detectron2_state_dict(sd, model, cascade_stage)
    report = load_weights(model, {"model": mapped}, source="native",
                          allow_missing=allow_missing, allow_unexpected=allow_unexpected)
    return D2LoadReport(report, unmapped, notes)


# ------------------------------------------------------------ COCO checkpoint layout (tools)
def _norm_of(sd: Mapping[str, torch.Tensor], pattern: str) -> str:
    """``COCO.DETECTOR.*_NORM`` of the layers whose keys match ``pattern`` + ``.norm.``."""
    keys = [k for k in sd if re.match(pattern + r".*\.norm\.", k)]
    if not keys:
        return "''"
    return "BN" if any(k.endswith("running_mean") for k in keys) else "GN|LN"


def coco_settings(sd: Mapping[str, torch.Tensor]) -> str:
    """The ``KEY VALUE`` settings of ``--task coco`` whose model has the architecture of a
    detectron2 detector state dict (norms without running statistics are GN or LN: ``GN|LN``)."""
    cls = sorted(k for k in sd if k.endswith("cls_score.weight"))
    fcs = sorted(k for k in sd if re.match(r"^roi_heads\.box_head\.(\d+\.)?fc\d+\.weight$", k))
    convs = {m.group(3) for k in sd if (m := BOX_HEAD_KEY.match(k)) and m.group(2) == "conv"}
    rpn = {k.rsplit(".", 1)[0] for k in sd if k.startswith("proposal_generator.rpn_head.conv")}
    box_head = {(0, 2): "2fc", (4, 1): "4conv1fc"}.get(
        (len(convs), len({k.split("fc")[-1] for k in fcs})), "unsupported")
    norms = {n: _norm_of(sd, p) for n, p in (("BOX_HEAD", r"^roi_heads\.box_head\."),
                                             ("FPN", r"^backbone\.fpn_"),
                                             ("MASK_HEAD", r"^roi_heads\.mask_head\."))}
    out = [f"MODEL.NUM_CLASSES {sd[cls[0]].shape[0]}" if cls else "",
           f"COCO.DETECTOR.ROI_HEADS {'cascade' if _is_cascade_checkpoint(sd) else 'standard'}",
           f"COCO.DETECTOR.BOX_HEAD {box_head}",
           f"COCO.DETECTOR.BOX_HEAD_NORM {norms['BOX_HEAD']}",
           f"COCO.DETECTOR.BOX_FC_DIM {sd[fcs[0]].shape[0]}" if fcs else "",
           f"COCO.DETECTOR.RPN_CONV_DEPTH {len(rpn)}",
           f"COCO.DETECTOR.FPN_NORM {norms['FPN']}",
           f"COCO.DETECTOR.MASK_ON {any(k.startswith('roi_heads.mask_head.') for k in sd)}",
           f"COCO.DETECTOR.MASK_HEAD_NORM {norms['MASK_HEAD']}"]
    fpn = [v for k, v in sorted(sd.items()) if re.match(r"^backbone\.fpn_output\d+\.weight$", k)]
    if fpn:
        out.insert(1, f"COCO.DETECTOR.FPN_CHANNELS {fpn[0].shape[0]}")
    return " ".join(o for o in out if o)


def _coco_from_detectron2(sd: Mapping[str, torch.Tensor]) -> Tuple[StateDict, List[str]]:
    res = detectron2_to_torchvision(sd)
    notes = res.notes + [f"{k} not converted ({r})" for k, r in res.dropped.items()]
    notes.append("the architecture of these weights, for --task coco: " + coco_settings(sd))
    return {COCO_PREFIX + k: v for k, v in res.state_dict.items()}, notes


def _coco_to_detectron2(sd: Mapping[str, torch.Tensor]) -> Tuple[StateDict, List[str]]:
    outside = [k for k in sd if not k.startswith(COCO_PREFIX)]
    if outside:
        raise ValueError(f"{len(outside)} keys outside the detector ({COCO_PREFIX}*) have no "
                         f"detectron2 name: {', '.join(outside[:12])}")
    res = torchvision_to_detectron2({k[len(COCO_PREFIX):]: v for k, v in sd.items()})
    return res.state_dict, res.notes


COCO_LAYOUT = register_detector_layout(
    DetectorLayout("coco", COCO_PREFIX, _coco_from_detectron2, _coco_to_detectron2))


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
    "COCO_LAYOUT",
    "COCO_PREFIX",
    "D2LoadReport",
    "coco_settings",
    "convert_detectron2_state_dict",
    "load_backbone_init",
    "load_detectron2_checkpoint",
]
