"""AVA v2.2 frame-mAP evaluation: file readers, the metric and the DatasetEvaluator adapter.

``evaluate_files`` is the stand-alone entry (``tools/eval_ava.py``); results match the official
ActivityNet evaluator (protocol ``activitynet``) or mmaction2's variant (``mmaction2``).
"""
from typing import Optional

from .frame_map import (DEFAULT_CAPACITY, PROTOCOLS, FrameMapResult, class_groups, evaluate,
                        voc_average_precision)
from .io import (AvaFormatError, BoxTable, Exclusions, LabelMap, read_box_csv, read_exclusions,
                 read_labelmap)


def evaluate_files(groundtruth: str, detections: str, labelmap: str,
                   exclusions: Optional[str] = None, protocol: str = "activitynet",
                   breakdown: bool = False, iou_threshold: float = 0.5) -> FrameMapResult:
    """Read the four AVA files (CSV may be ``.gz``) and return the frame-mAP result."""
    lm = read_labelmap(labelmap)
    ex = read_exclusions(exclusions)
    gt = read_box_csv(groundtruth)
    det = read_box_csv(detections)
    return evaluate(gt, det, lm, ex, protocol=protocol, iou_threshold=iou_threshold,
                    breakdown=breakdown)


__all__ = [
    "AvaFormatError", "BoxTable", "DEFAULT_CAPACITY", "Exclusions", "FrameMapResult", "LabelMap",
    "PROTOCOLS", "class_groups", "evaluate", "evaluate_files", "read_box_csv",
    "read_exclusions", "read_labelmap", "voc_average_precision",
]
