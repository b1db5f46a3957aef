"""The engine-facing COCO detector: a torchvision Mask R-CNN behind the batch-dict interface.

Follows torchvision's detection model I/O (``torchvision/models/detection/generalized_rcnn.py``)
and the engine's Task contract (``mvit_tasks/tasks/base.py``): ``forward(batch)`` takes the
dict of :func:`projects.coco_detection.dataset.collate_detection`; in training it returns
torchvision's loss dict, in evaluation one output dict per image in the frame of the image
given to the model, which :class:`projects.coco_detection.evaluator.CocoEvaluator` rescales to
the original image with the target's ``"size"``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

import torch
from torch import nn

from mvit_tasks.modeling.backbone.base import Backbone

from .modeling import build_mask_rcnn

_TRAIN_KEYS = ("boxes", "labels", "masks")


class CocoDetector(nn.Module):
    """Wraps a :func:`~projects.coco_detection.modeling.build_mask_rcnn` model.

    Args:
        detector: torchvision ``MaskRCNN`` / ``FasterRCNN`` (its weights are ``detector.*`` in
            this module's state dict).

    ``forward(batch)``: ``batch["images"]`` is a list of ``3 x H_i x W_i`` float RGB tensors in
    [0, 1], ``batch["targets"]`` a list of dicts with ``boxes`` (``N x 4`` xyxy absolute
    pixels), ``labels`` (``N`` int64 in ``1..K``) and, for Mask R-CNN, ``masks``
    (``N x H_i x W_i`` uint8). Train mode returns ``{"loss_classifier", "loss_box_reg",
    "loss_mask", "loss_objectness", "loss_rpn_box_reg"}`` (scalars). Eval mode returns one dict
    per image: ``boxes`` (``D x 4`` xyxy in the pixels of the input image), ``labels`` (``D``),
    ``scores`` (``D``) and, for Mask R-CNN, ``masks`` (``D x 1 x H_i x W_i`` probabilities).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.mask_on = getattr(detector.roi_heads, "mask_predictor", None) is not None

    @classmethod
    def build(cls, backbone: Backbone, num_classes: int, **kwargs: Any) -> "CocoDetector":
        """``CocoDetector(build_mask_rcnn(backbone, num_classes, **kwargs))``; ``num_classes``
        counts the background (COCO: 81). ``roi_heads="cascade"`` builds Cascade Mask R-CNN
        (:class:`~projects.coco_detection.modeling.CascadeRoIHeads` at ``detector.roi_heads``);
        its training losses are ``loss_cls_stage{k}``, ``loss_box_reg_stage{k}`` (k = 0, 1, 2)
        instead of ``loss_classifier`` / ``loss_box_reg``, its outputs the same."""
        return cls(build_mask_rcnn(backbone, num_classes, **kwargs))

    @property
    def backbone(self) -> nn.Module:
        """The backbone + FPN (``load_weights`` reads its ``patch_grid``)."""
        return self.detector.backbone

    def forward(self, batch: Mapping[str, Any]) -> Any:
        images: List[torch.Tensor] = list(batch["images"])
        if not self.training:
            return self.detector(images)
        targets = batch.get("targets")
        if targets is None or len(targets) != len(images):
            raise ValueError(f"training needs one target per image; got {len(images)} images "
                             f"and {None if targets is None else len(targets)} targets")
        return self.detector(images, [self._train_target(t, img)
                                      for t, img in zip(targets, images)])

    def _train_target(self, target: Mapping[str, Any],
                      image: torch.Tensor) -> Dict[str, torch.Tensor]:
        keys: Sequence[str] = _TRAIN_KEYS if self.mask_on else _TRAIN_KEYS[:2]
        missing = [k for k in keys if k not in target]
        if missing:
            raise KeyError(f"image {target.get('image_id')}: target lacks {missing}")
        out = {k: target[k] for k in keys}
        if self.mask_on and tuple(out["masks"].shape[-2:]) != tuple(image.shape[-2:]):
            raise ValueError(f"image {target.get('image_id')}: masks are "
                             f"{tuple(out['masks'].shape[-2:])}, the image "
                             f"{tuple(image.shape[-2:])}")
        return out


__all__ = ["CocoDetector"]
