"""AVA v2.2 frame-mAP evaluation: file readers, the metric and the DatasetEvaluator adapter.

``evaluate_files`` is the stand-alone entry (``tools/eval_ava.py``); results match the official
ActivityNet evaluator (protocol ``activitynet``) or mmaction2's variant (``mmaction2``).
"""
from typing import Optional

from .frame_map import (DEFAULT_CAPACITY, PROTOCOLS, FrameMapResult, class_groups, evaluate,
                        voc_average_precision)
from .io import (AvaFormatError, BoxTable, Exclusions, Finding, LabelMap, box_findings,
                 read_box_csv, read_exclusions, read_labelmap)


def evaluate_files(groundtruth: str, detections: str, labelmap: str,
                   exclusions: Optional[str] = None, protocol: str = "activitynet",
                   breakdown: bool = False, iou_threshold: float = 0.5,
                   strict: bool = False) -> FrameMapResult:
    """Read the four AVA files (CSV may be ``.gz``) and return the frame-mAP result.

    Inputs that the official evaluator reads but that look wrong are scored and listed in
    ``result.warnings``; ``strict`` refuses them (:class:`AvaFormatError` naming file:line).
    """
    lm = read_labelmap(labelmap)
    ex = read_exclusions(exclusions)
    gt = read_box_csv(groundtruth)
    det = read_box_csv(detections)
    return evaluate(gt, det, lm, ex, protocol=protocol, iou_threshold=iou_threshold,
                    breakdown=breakdown, strict=strict)


__all__ = [
    "AvaFormatError", "BoxTable", "DEFAULT_CAPACITY", "Exclusions", "Finding", "FrameMapResult",
    "LabelMap", "box_findings",
    "PROTOCOLS", "class_groups", "evaluate", "evaluate_files", "read_box_csv",
    "read_exclusions", "read_labelmap", "voc_average_precision",
]
