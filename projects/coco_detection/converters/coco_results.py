"""Per-image detector outputs <-> COCO results json (the format of COCO's test server).

Format: https://cocodataset.org/#format-results -- a list of ``{"image_id", "category_id",
"bbox": [x, y, w, h], "score", "segmentation": compressed RLE}``, as written by detectron2's
``instances_to_coco_json`` (masks thresholded at 0.5, RLE ``counts`` as str) and read by
pycocotools' ``COCO.loadRes``.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from pycocotools import mask as mask_util

from .coco_json import CocoFormatError, CocoInstances, _is_int, _is_number

Output = Mapping[str, Any]


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def encode_masks(masks: Any, threshold: float = 0.5) -> List[Dict[str, Any]]:
    """Compressed RLEs (``counts`` str) of ``masks > threshold``.

    Args:
        masks: ``(N, 1, H, W)`` or ``(N, H, W)`` probabilities (or 0/1 values).
        threshold: a pixel is in the mask when its value is strictly greater.
    """
    m = _as_numpy(masks)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"masks must be (N, 1, H, W) or (N, H, W), got shape {m.shape}")
    if m.shape[0] == 0:
        return []
    binary = np.asfortranarray((m > threshold).transpose(1, 2, 0).astype(np.uint8))
    rles = mask_util.encode(binary)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def instances_to_coco_results(image_id: int, output: Output, label_to_category: Mapping[int, int],
                              mask_threshold: float = 0.5) -> List[Dict[str, Any]]:
    """COCO result records of one image's detections.

    Args:
        image_id: the COCO image id.
        output: ``{"boxes": (N, 4) xyxy absolute pixels, "labels": (N,) contiguous 1..K,
            "scores": (N,), "masks": (N, 1, H, W) probabilities (optional)}``, already in the
            coordinates of the original image.
        label_to_category: contiguous label -> COCO category id
            (:attr:`CategoryMapping.label_to_id`).
        mask_threshold: masks are ``prob > mask_threshold``.

    Returns:
        One dict per detection: ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``,
        ``score`` and, with masks, ``segmentation`` (RLE, ``counts`` str).
    """
    boxes = _as_numpy(output["boxes"]).astype(np.float64).reshape(-1, 4)
    labels = _as_numpy(output["labels"]).reshape(-1)
    scores = _as_numpy(output["scores"]).astype(np.float64).reshape(-1)
    n = boxes.shape[0]
    if labels.shape[0] != n or scores.shape[0] != n:
        raise ValueError(f"image {image_id}: {n} boxes, {labels.shape[0]} labels, "
                         f"{scores.shape[0]} scores")
    rles: Optional[List[Dict[str, Any]]] = None
    if output.get("masks") is not None:
        rles = encode_masks(output["masks"], mask_threshold)
        if len(rles) != n:
            raise ValueError(f"image {image_id}: {len(rles)} masks for {n} boxes")
    results = []
    for i in range(n):
        label = int(labels[i])
        if label not in label_to_category:
            raise ValueError(f"image {image_id}: label {label} has no COCO category "
                             f"(labels are 1..{len(label_to_category)}, 0 is background)")
        x1, y1, x2, y2 = boxes[i].tolist()
        rec = {"image_id": int(image_id), "category_id": int(label_to_category[label]),
               "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[i])}
        if rles is not None:
            rec["segmentation"] = rles[i]
        results.append(rec)
    return results


def predictions_to_coco_results(predictions: Iterable[Tuple[int, Output]],
                                label_to_category: Mapping[int, int],
                                mask_threshold: float = 0.5) -> List[Dict[str, Any]]:
    """Concatenated :func:`instances_to_coco_results` of ``(image_id, output)`` pairs
    (pass ``dict.items()`` for a ``{image_id: output}`` mapping)."""
    return [r for image_id, out in predictions
            for r in instances_to_coco_results(image_id, out, label_to_category, mask_threshold)]


def write_coco_results(path: str, results: Sequence[Dict[str, Any]]) -> None:
    """Write a COCO results json (a list of result records), atomically. Floats are written
    with ``repr`` precision, so the file reads back to the same values."""
    from mvit_tasks.utils.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(list(results)))


def load_coco_results(path: str) -> List[Dict[str, Any]]:
    """Read a COCO results json; raises :class:`CocoFormatError` naming the file if not a list."""
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{path}: not valid JSON: line {e.lineno}: {e.msg}") from None
    if not isinstance(data, list):
        raise CocoFormatError(f"{path}: a COCO results file is a list of records, "
                              f"not {type(data).__name__}")
    return data


def validate_coco_results(results: Sequence[Any], gt: CocoInstances, iou_types: Sequence[str],
                          source: str = "<results>") -> None:
    """Raise :class:`CocoFormatError` for records pycocotools would reject or misread.

    Checks every record: a known ``image_id`` and ``category_id``, a finite ``score``, a
    ``bbox`` of 4 numbers (for ``bbox``) and an RLE ``segmentation`` of the image's size
    (for ``segm``). The message names the record index and image id.
    """
    errors: List[str] = []
    cat_ids = set(gt.mapping.category_ids)
    for i, r in enumerate(results):
        where = f"record {i}"
        if not isinstance(r, dict):
            errors.append(f"{where}: not an object")
            continue
        img = gt.images.get(r.get("image_id")) if _is_int(r.get("image_id")) else None
        if img is None:
            errors.append(f"{where}: image_id {r.get('image_id')!r} is not in the ground truth")
            continue
        where += f" (image {r['image_id']})"
        if r.get("category_id") not in cat_ids:
            errors.append(f"{where}: unknown category_id {r.get('category_id')!r}")
        if not (_is_number(r.get("score")) and math.isfinite(r["score"])):
            errors.append(f"{where}: score {r.get('score')!r} is not a finite number")
        bbox = r.get("bbox")
        if "bbox" in iou_types and not (isinstance(bbox, list) and len(bbox) == 4
                                        and all(_is_number(v) for v in bbox)):
            errors.append(f"{where}: bbox {bbox!r} is not [x, y, w, h]")
        if "segm" in iou_types:
            segm = r.get("segmentation")
            if not (isinstance(segm, dict) and isinstance(segm.get("counts"), (str, bytes))):
                errors.append(f"{where}: segmentation is not a compressed RLE dict (box-only "
                              f"results: evaluate bbox only)")
            elif list(segm.get("size", [])) != [img["height"], img["width"]]:
                errors.append(f"{where}: RLE size {segm.get('size')} differs from the image's "
                              f"[{img['height']}, {img['width']}]")
        if len(errors) > 20:
            break
    if errors:
        raise CocoFormatError(f"{source}: bad result record(s):\n  " + "\n  ".join(errors[:20]))
