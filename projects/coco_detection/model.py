"""The engine-facing COCO detector: a torchvision Mask R-CNN behind the batch-dict interface.

Follows torchvision's detection model I/O (``torchvision/models/detection/generalized_rcnn.py``)
and the engine's Task contract (``mvit_tasks/tasks/base.py``): ``forward(batch)`` takes the
dict of :func:`mvit_tasks.projects.coco_detection.dataset.collate_detection`; in training it returns
torchvision's loss dict, in evaluation one output dict per image in the frame of the image
given to the model, which :class:`mvit_tasks.projects.coco_detection.evaluator.CocoEvaluator` rescales to
the original image with the target's ``"size"``.

Inference reproduces detectron2's by default (``DefaultPredictor`` / the test mapper, then
``GeneralizedRCNN.inference`` + ``detector_postprocess``): the image is resized by
``ResizeShortestEdge(short, max_size)`` rules (sizes rounded as ``get_output_shape``, uint8
pixels by PIL bilinear, see :func:`~mvit_tasks.projects.coco_detection.transforms.resize_image_detectron2`),
normalised in 0-255 units, and the detections are mapped back to the given image with
:func:`~mvit_tasks.projects.coco_detection.modeling.postprocess.detector_postprocess` (masks pasted at
sub-pixel precision). ``test_resize="torchvision"`` / ``mask_paste="torchvision"`` select
torchvision's ``GeneralizedRCNNTransform`` resize / integer-box paste instead.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList

from mvit_tasks.modeling.backbone.base import Backbone

from .modeling import build_mask_rcnn
from .modeling.postprocess import MASK_PASTES, detector_postprocess
from .transforms import RESIZE_BACKENDS, resize_image_detectron2, shortest_edge_size

_TRAIN_KEYS = ("boxes", "labels", "masks")
TEST_RESIZES = RESIZE_BACKENDS  # ("detectron2", "torchvision")


def _as_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float in [0, 1]; float images unchanged."""
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image


class CocoDetector(nn.Module):
    """Wraps a :func:`~mvit_tasks.projects.coco_detection.modeling.build_mask_rcnn` model.

    Args:
        detector: torchvision ``MaskRCNN`` / ``FasterRCNN`` (its weights are ``detector.*`` in
            this module's state dict); its ``transform.min_size[-1]`` / ``max_size`` are the
            test resize's short side / long-side cap.
        test_resize / mask_paste / mask_threshold: see :meth:`configure_inference`.

    ``forward(batch)``: ``batch["images"]`` is a list of ``3 x H_i x W_i`` RGB tensors, float in
    [0, 1] or uint8 (divided by 255), ``batch["targets"]`` a list of dicts with ``boxes``
    (``N x 4`` xyxy absolute pixels), ``labels`` (``N`` int64 in ``1..K``) and, for Mask R-CNN,
    ``masks`` (``N x H_i x W_i`` uint8). Train mode returns ``{"loss_classifier",
    "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}`` (scalars). Eval mode
    resizes each image for the network itself and returns one dict per image: ``boxes``
    (``D x 4`` xyxy in the pixels of the input image), ``labels`` (``D``), ``scores`` (``D``)
    and, for Mask R-CNN, ``masks`` (``D x 1 x H_i x W_i``, bool ``prob >= mask_threshold``, or
    float probabilities with ``mask_threshold=None``). Give uint8 images to get detectron2's
    resize exactly (it resizes uint8 pixels with PIL; float images take its float path).
    """

    def __init__(self, detector: nn.Module, test_resize: str = "detectron2",
                 mask_paste: str = "detectron2", mask_threshold: Optional[float] = 0.5) -> None:
        super().__init__()
        self.detector = detector
        self.mask_on = getattr(detector.roi_heads, "mask_predictor", None) is not None
        self.configure_inference(test_resize, mask_paste, mask_threshold)

    def configure_inference(self, test_resize: str = "detectron2", mask_paste: str = "detectron2",
                            mask_threshold: Optional[float] = 0.5) -> None:
        """Set how eval mode resizes images and pastes masks.

        Args:
            test_resize: ``"detectron2"`` (``ResizeShortestEdge`` sizes, PIL bilinear on uint8,
                normalisation in 0-255 units) or ``"torchvision"`` (``GeneralizedRCNNTransform``:
                floor-rounded sizes, bilinear interpolation of the float image).
            mask_paste: ``"detectron2"`` (sub-pixel ``grid_sample`` paste) or ``"torchvision"``
                (integer boxes); see :mod:`mvit_tasks.projects.coco_detection.modeling.postprocess`.
            mask_threshold: masks are returned as ``prob >= mask_threshold`` (detectron2: 0.5),
                or as probabilities when None.
        """
        if test_resize not in TEST_RESIZES:
            raise ValueError(f"test resize must be one of {TEST_RESIZES}, got {test_resize!r}")
        if mask_paste not in MASK_PASTES:
            raise ValueError(f"mask paste must be one of {MASK_PASTES}, got {mask_paste!r}")
        self.test_resize, self.mask_paste = test_resize, mask_paste
        self.mask_threshold = None if mask_threshold is None else float(mask_threshold)

    @classmethod
    def build(cls, backbone: Backbone, num_classes: int, **kwargs: Any) -> "CocoDetector":
        """``CocoDetector(build_mask_rcnn(backbone, num_classes, **kwargs))``; ``num_classes``
        counts the background (COCO: 81). ``roi_heads="cascade"`` builds Cascade Mask R-CNN
        (:class:`~mvit_tasks.projects.coco_detection.modeling.CascadeRoIHeads` at ``detector.roi_heads``);
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
            return self.inference(images)
        images = [_as_float(img) for img in images]
        targets = batch.get("targets")
        if targets is None or len(targets) != len(images):
            raise ValueError(f"training needs one target per image; got {len(images)} images "
                             f"and {None if targets is None else len(targets)} targets")
        return self.detector(images, [self._train_target(t, img)
                                      for t, img in zip(targets, images)])

    # ---------------------------------------------------------------------------- inference
    def inference(self, images: Sequence[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
        """Detections of ``images`` (``3 x H_i x W_i``) in their own pixels (see the class)."""
        raw, sizes = self.detect(images)
        return [detector_postprocess(det, size, tuple(img.shape[-2:]), self.mask_paste,
                                     self.mask_threshold)
                for det, size, img in zip(raw, sizes, images)]

    def detect(self, images: Sequence[torch.Tensor]
               ) -> Tuple[List[Dict[str, torch.Tensor]], List[Tuple[int, int]]]:
        """The network's raw detections: per image ``boxes`` in the pixels of the resized image,
        ``labels``, ``scores``, ``masks`` (``D x 1 x M x M`` probabilities), and the resized
        (unpadded) sizes ``(h_i, w_i)``."""
        d = self.detector
        batch = self._preprocess(images)
        features = d.backbone(batch.tensors)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        proposals, _ = d.rpn(batch, features)
        detections, _ = d.roi_heads(features, proposals, batch.image_sizes)
        return detections, [tuple(s) for s in batch.image_sizes]

    def _preprocess(self, images: Sequence[torch.Tensor]) -> ImageList:
        """Resize, normalise and pad ``images`` into the network's batch."""
        t = self.detector.transform
        if self.test_resize == "torchvision":
            return t([_as_float(img) for img in images])[0]
        short, max_size = int(t.min_size[-1]), int(t.max_size)
        out = []
        for img in images:
            x = resize_image_detectron2(img, shortest_edge_size(*img.shape[-2:], short, max_size))
            # detectron2 normalises 0-255 pixels with 0-255 means / stds
            unit = 255.0 if x.dtype == torch.uint8 else 1.0
            mean = torch.tensor([m * unit for m in t.image_mean], device=x.device)
            std = torch.tensor([s * unit for s in t.image_std], device=x.device)
            out.append((x.float() - mean[:, None, None]) / std[:, None, None])
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in out]
        return ImageList(t.batch_images(out, size_divisible=t.size_divisible), sizes)

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


__all__ = ["CocoDetector", "TEST_RESIZES"]
