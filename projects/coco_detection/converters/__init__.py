"""COCO json converters: validated loading of instances files, results json writing."""
from .coco_json import (
    CategoryMapping,
    CocoFormatError,
    CocoInstances,
    Dropped,
    decode_segmentation,
    load_coco_json,
    segmentation_to_rle,
    validate_coco_dict,
)
from .coco_results import (
    encode_masks,
    instances_to_coco_results,
    load_coco_results,
    predictions_to_coco_results,
    validate_coco_results,
    write_coco_results,
)

__all__ = [
    "CategoryMapping",
    "CocoFormatError",
    "CocoInstances",
    "Dropped",
    "decode_segmentation",
    "encode_masks",
    "instances_to_coco_results",
    "load_coco_json",
    "load_coco_results",
    "predictions_to_coco_results",
    "segmentation_to_rle",
    "validate_coco_dict",
    "validate_coco_results",
    "write_coco_results",
]
