"""COCO detector: mvit-tasks backbone + FPN inside torchvision's Mask R-CNN (or Cascade Mask
R-CNN), and its weights."""
from .cascade import CascadeBoxPredictor, CascadeRoIHeads
from .components import FixedScaleRoIAlign, FixedStrideAnchorGenerator
from .d2_weights import (
    D2LoadReport,
    convert_detectron2_state_dict,
    detectron2_key_map,
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
    "convert_detectron2_state_dict",
    "detectron2_key_map",
    "load_backbone_init",
    "load_detectron2_checkpoint",
]
