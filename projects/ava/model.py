"""Backbone + RoI action head for AVA (spatiotemporal action detection from person boxes).

The head follows PySlowFast's ``ResNetRoIHead`` as used by its MViT ``DETECTION.ENABLE`` branch
(``slowfast/models/head_helper.py``, ``video_model_builder.py``): temporal average pooling of the
last-stage map, ``RoIAlign(resolution, spatial_scale, sampling_ratio=0, aligned=True)`` on the
keyframe person boxes, spatial max pooling, dropout, a linear layer named ``projection`` (so
SlowFast's ``head.projection.*`` load as they are) and a sigmoid per class (BCE loss).
``spatial_scale`` is feature pixels per input pixel (SlowFast: ``1 / DETECTION.
SPATIAL_SCALE_FACTOR``); the default is ``1 / stride`` read from the backbone's
:meth:`output_shape` (SlowFast's fixed ``SPATIAL_SCALE_FACTOR=16`` does not match the stride-32
last stage of MViTv2-S/B). Checkpoints of older mvit-tasks versions name the linear layer
``action_proj``; they still load (:attr:`RoIActionHead.checkpoint_renames`).
"""
from __future__ import annotations

import logging
from typing import Any, ClassVar, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from mvit_tasks.checkpoint.loader import rename_checkpoint_keys
from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.backbone.base import Backbone, FeatureSpec
from mvit_tasks.modeling.backbone.mvit import MViT

logger = logging.getLogger(__name__)


def check_roi_settings(resolution: int, spatial_scale: Optional[float] = None,
                       sampling_ratio: int = 0) -> None:
    """Raise :class:`ValueError` for RoIAlign settings that cannot be meant.

    ``spatial_scale`` is feature pixels per input pixel (``1 / stride``, at most 1); a value
    above 1 is almost always SlowFast's ``DETECTION.SPATIAL_SCALE_FACTOR`` (its reciprocal)
    copied over. ``None`` / 0 = ``1 / stride`` from the backbone.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"RoI resolution (AVA.ROI_RESOLUTION) must be an integer >= 1, "
                         f"got {resolution!r}")
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int) \
            or sampling_ratio < 0:
        raise ValueError(f"RoI sampling ratio (AVA.ROI_SAMPLING_RATIO) must be an integer >= 0 "
                         f"(0 = adaptive, as SlowFast), got {sampling_ratio!r}")
    if spatial_scale is None or spatial_scale == 0:
        return
    if not spatial_scale > 0:  # negative or NaN
        raise ValueError(f"RoI spatial scale (AVA.ROI_SPATIAL_SCALE) must be > 0 (or 0 for "
                         f"1 / stride of the backbone), got {spatial_scale!r}")
    if spatial_scale > 1:
        raise ValueError(
            f"RoI spatial scale (AVA.ROI_SPATIAL_SCALE) {spatial_scale:g} is feature pixels per "
            f"input pixel, so above 1 it would up-sample the map: the spatial scale is 1/stride; "
            f"did you mean 1/{spatial_scale:g}? (SlowFast's DETECTION.SPATIAL_SCALE_FACTOR "
            f"{spatial_scale:g} is the reciprocal: AVA.ROI_SPATIAL_SCALE {1 / spatial_scale:g}; "
            f"or 0 for 1 / stride of the backbone)")


class RoIActionHead(nn.Module):
    """RoI features of one backbone map -> per-box action logits.

    Args:
        spec: the map's :class:`FeatureSpec` (channels, stride).
        num_classes: outputs (80 for AVA).
        resolution: RoIAlign output size (SlowFast ``DETECTION.ROI_XFORM_RESOLUTION``).
        spatial_scale: feature pixels per input pixel (SlowFast ``1 / DETECTION.
            SPATIAL_SCALE_FACTOR``); ``None`` or 0 = ``1 / spec.stride``.
        sampling_ratio, aligned: RoIAlign settings (SlowFast: 0, ``DETECTION.ALIGNED``).
        spatial_pool: ``"max"`` (SlowFast) or ``"avg"`` over the RoI grid.
        dropout: before the linear layer.

    ``forward(feature, rois)``: ``feature`` ``B x C x T x H x W`` (or ``B x C x H x W``),
    ``rois`` ``(K, 5)`` ``[batch_index, x1, y1, x2, y2]`` in input pixels -> ``(K, classes)``
    logits. Parameters: ``projection.{weight (classes x C), bias}``, SlowFast's names.

    Raises:
        ValueError: from :func:`check_roi_settings`.
    """

    #: Old key prefix -> current one (relative to this module), applied when loading.
    checkpoint_renames: ClassVar[Dict[str, str]] = {"action_proj.": "projection."}

    def __init__(self, spec: FeatureSpec, num_classes: int, resolution: int = 7,
                 spatial_scale: Optional[float] = None, sampling_ratio: int = 0,
                 aligned: bool = True, spatial_pool: str = "max", dropout: float = 0.5) -> None:
        super().__init__()
        if spatial_pool not in ("max", "avg"):
            raise ValueError(f"spatial_pool must be 'max' or 'avg', got {spatial_pool!r}")
        check_roi_settings(resolution, spatial_scale, sampling_ratio)
        self.resolution = resolution
        self.spatial_scale = spatial_scale if spatial_scale else 1.0 / spec.stride
        if abs(self.spatial_scale * spec.stride - 1.0) > 1e-6:
            logger.warning(
                "RoI spatial scale 1/%g differs from 1/stride = 1/%d of the feature map: boxes "
                "are mapped as configured (right only for weights trained so, e.g. SlowFast's "
                "DETECTION.SPATIAL_SCALE_FACTOR default 16 on a stride-%d MViT)",
                1.0 / self.spatial_scale, spec.stride, spec.stride)
        self.sampling_ratio, self.aligned, self.spatial_pool = sampling_ratio, aligned, spatial_pool
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.projection = nn.Linear(spec.channels, num_classes)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        rename_checkpoint_keys(state_dict, self.checkpoint_renames, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, feature: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if feature.ndim == 5:
            feature = feature.mean(dim=2)  # temporal pooling over all of T'
        x = roi_align(feature, rois.to(feature.dtype), self.resolution, self.spatial_scale,
                      self.sampling_ratio, self.aligned)
        x = x.amax(dim=(2, 3)) if self.spatial_pool == "max" else x.mean(dim=(2, 3))
        return self.projection(self.dropout(x))


class AvaDetector(nn.Module):
    """MViT backbone + :class:`RoIActionHead` with the engine's batch I/O.

    State-dict keys ``backbone.*`` (as the Kinetics classifiers, so K400 checkpoints load with
    ``head.`` allowed missing) and ``head.projection.*`` (as SlowFast's detection models, so
    their ``DETECTION.ENABLE`` checkpoints load strictly).

    ``forward(batch)`` reads ``batch["video"]`` ``B x 3 x T x H x W`` and ``batch["boxes"]``
    ``(K, 5)``. Training returns ``{"loss_bce": mean BCE-with-logits over K x C}`` against
    ``batch["labels"]`` ``(K, C)``; evaluation returns one dict per clip ``{"video_id",
    "timestamp", "boxes": (N, 4) normalised x1, y1, x2, y2 (batch["norm_boxes"]),
    "scores": (N, C) sigmoid}``, the format of :class:`mvit_tasks.projects.ava.evaluation.AvaEvaluator`.
    """

    def __init__(self, backbone: Backbone, head: RoIActionHead, in_feature: str) -> None:
        super().__init__()
        self.backbone, self.head, self.in_feature = backbone, head, in_feature

    @classmethod
    def from_arch(cls, arch: MViTArch, num_classes: int, **head_kwargs: Any) -> "AvaDetector":
        """Last-stage MViT + RoI head (``head_kwargs`` go to :class:`RoIActionHead`)."""
        last = arch.stage_names()[-1]
        backbone = MViT(arch.replace(out_features=(last,)))
        head = RoIActionHead(backbone.output_shape()[last], num_classes, **head_kwargs)
        return cls(backbone, head, last)

    def forward_logits(self, video: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """``(K, C)`` logits of the ``rois`` ``(K, 5)`` in ``video`` ``B x 3 x T x H x W``."""
        return self.head(self.backbone(video)[self.in_feature], rois)

    def forward(self, batch: Dict[str, Any]) -> Union[Dict[str, torch.Tensor],
                                                      List[Dict[str, Any]]]:
        logits = self.forward_logits(batch["video"], batch["boxes"]).float()
        if self.training:
            loss = F.binary_cross_entropy_with_logits(logits, batch["labels"].float())
            return {"loss_bce": loss}
        scores = torch.sigmoid(logits)
        owner = batch["boxes"][:, 0].long()
        out: List[Dict[str, Any]] = []
        for i, vid in enumerate(batch["video_id"]):
            out.append({"video_id": vid, "timestamp": int(batch["timestamp"][i]),
                        "boxes": batch["norm_boxes"][i], "scores": scores[owner == i]})
        return out
