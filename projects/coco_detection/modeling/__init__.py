"""COCO detector: mvit-tasks backbone + FPN inside torchvision's Mask R-CNN (or Cascade Mask
R-CNN), and its weights."""
from .cascade import CascadeBoxPredictor, CascadeRoIHeads
from .components import FixedScaleRoIAlign, FixedStrideAnchorGenerator
from .d2_names import UnmappableKeysError, detectron2_to_torchvision, torchvision_to_detectron2
from .d2_weights import (
    D2LoadReport,
    convert_detectron2_state_dict,
    load_backbone_init,
    load_detectron2_checkpoint,
)
from .detector import BOX_HEADS, ROI_HEADS, build_box_head, build_mask_rcnn

__all__ = [
    "BOX_HEADS",
    "CascadeBoxPredictor",
    "CascadeRoIHeads",
    "D2LoadReport",
    "FixedScaleRoIAlign",
    "FixedStrideAnchorGenerator",
    "ROI_HEADS",
    "build_box_head",
    "build_mask_rcnn",
    "UnmappableKeysError",
    "convert_detectron2_state_dict",
    "detectron2_to_torchvision",
    "load_backbone_init",
    "load_detectron2_checkpoint",
    "torchvision_to_detectron2",
]
