"""Detections back to the original image, as detectron2 does at inference.

Semantics follow detectron2's ``detector_postprocess`` (``detectron2/modeling/postprocessing.py``)
and ``paste_masks_in_image`` / ``_do_paste_mask`` (``detectron2/layers/mask_ops.py``):

* boxes (xyxy, in the pixels of the resized image the network saw, ``h x w``) are scaled by
  ``W / w`` and ``H / h`` per axis to the output (original) size ``H x W``, clipped to
  ``[0, W] x [0, H]``, and detections whose clipped box has no area are dropped;
* each ``M x M`` mask probability map is pasted at sub-pixel precision: output pixel ``(y, x)``
  samples the map bilinearly (``F.grid_sample``, ``align_corners=False``, zeros outside) at
  its centre ``(x + 0.5, y + 0.5)`` mapped into the box, so a map cell covers exactly
  ``box_w / M`` pixels; then ``prob >= threshold`` (0.5). Only the box hull widened by one
  pixel is sampled (detectron2's CPU path; pixels beyond it sample below 0.5 anyway, so the
  binary masks are those of detectron2's GPU path too).

torchvision's ``paste_masks_in_image`` (integer boxes widened by one pixel, then resized) is
the ``"torchvision"`` option of :func:`paste_masks`.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

MASK_PASTES = ("detectron2", "torchvision")
GPU_CHUNK_BYTES = 1 << 30  # detectron2's GPU_MEM_LIMIT: float32 bytes of pasted masks per chunk

__all__ = ["GPU_CHUNK_BYTES", "MASK_PASTES", "detector_postprocess", "paste_masks",
           "paste_masks_detectron2"]


def _paste_chunk(masks: Tensor, boxes: Tensor, height: int, width: int
                 ) -> Tuple[Tensor, slice, slice]:
    """Soft masks ``n x h' x w'`` of ``masks`` (``n x M x M`` float) in ``boxes`` (``n x 4``)
    over the rows / columns of the image that the boxes' hull (+ 1 px) covers."""
    lo = torch.floor(boxes[:, :2].min(dim=0).values) - 1
    x_lo, y_lo = (max(int(v), 0) for v in lo.tolist())
    x_hi = min(math.ceil(float(boxes[:, 2].max())) + 1, width)
    y_hi = min(math.ceil(float(boxes[:, 3].max())) + 1, height)
    x_hi, y_hi = max(x_hi, x_lo), max(y_hi, y_lo)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    # pixel centres in the box's normalised frame [-1, 1] (grid_sample, align_corners=False)
    cx = torch.arange(x_lo, x_hi, device=boxes.device, dtype=torch.float32) + 0.5
    cy = torch.arange(y_lo, y_hi, device=boxes.device, dtype=torch.float32) + 0.5
    gx = (cx[None, :] - x1[:, None]) / (x2 - x1)[:, None] * 2 - 1  # n x w'
    gy = (cy[None, :] - y1[:, None]) / (y2 - y1)[:, None] * 2 - 1  # n x h'
    n, hh, ww = masks.shape[0], gy.shape[1], gx.shape[1]
    grid = torch.stack([gx[:, None, :].expand(n, hh, ww), gy[:, :, None].expand(n, hh, ww)],
                       dim=3)
    soft = F.grid_sample(masks[:, None], grid.to(masks.dtype), mode="bilinear",
                         padding_mode="zeros", align_corners=False)[:, 0]
    return soft, slice(y_lo, y_hi), slice(x_lo, x_hi)


def paste_masks_detectron2(masks: Tensor, boxes: Tensor, image_size: Sequence[int],
                           threshold: Optional[float] = 0.5) -> Tensor:
    """Paste ``N x M x M`` (or ``N x 1 x M x M``) mask probabilities into an image.

    Args:
        masks: per-detection probability maps, any float dtype (sampled in float32).
        boxes: ``N x 4`` xyxy in the pixels of the output image, each with positive width and
            height (detector_postprocess drops the others first).
        image_size: ``(H, W)`` of the output.
        threshold: binary masks ``prob >= threshold`` (detectron2: 0.5); ``None`` returns the
            sampled probabilities (0 outside each chunk's box hull).

    Returns:
        ``N x H x W``: bool, or float32 when ``threshold`` is None.
    """
    masks = masks[:, 0] if masks.dim() == 4 else masks
    if masks.dim() != 3 or masks.shape[0] != boxes.shape[0]:
        raise ValueError(f"masks {tuple(masks.shape)} and boxes {tuple(boxes.shape)} do not pair")
    h, w = int(image_size[0]), int(image_size[1])
    n = masks.shape[0]
    out = torch.zeros((n, h, w), device=masks.device,
                      dtype=torch.bool if threshold is not None else torch.float32)
    if n == 0:
        return out
    masks, boxes = masks.float(), boxes.float()
    if masks.device.type == "cpu":
        chunks = n  # one box at a time touches the fewest pixels on a CPU
    else:
        chunks = min(n, math.ceil(n * h * w * 4 / GPU_CHUNK_BYTES))
    for idx in torch.chunk(torch.arange(n, device=masks.device), chunks):
        soft, rows, cols = _paste_chunk(masks[idx], boxes[idx], h, w)
        out[idx, rows, cols] = soft >= threshold if threshold is not None else soft
    return out


def paste_masks(masks: Tensor, boxes: Tensor, image_size: Sequence[int],
                method: str = "detectron2", threshold: Optional[float] = 0.5) -> Tensor:
    """``N x 1 x M x M`` probabilities + ``N x 4`` boxes -> ``N x 1 x H x W`` masks.

    ``method``: ``"detectron2"`` (:func:`paste_masks_detectron2`) or ``"torchvision"``
    (``torchvision.models.detection.roi_heads.paste_masks_in_image``). ``threshold``: bool
    masks ``prob >= threshold``, or float32 probabilities when None.
    """
    if method not in MASK_PASTES:
        raise ValueError(f"mask paste must be one of {MASK_PASTES}, got {method!r}")
    masks = masks[:, None] if masks.dim() == 3 else masks
    if method == "detectron2":
        return paste_masks_detectron2(masks, boxes, image_size, threshold)[:, None]
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    h, w = int(image_size[0]), int(image_size[1])
    if masks.shape[0] == 0:
        soft = masks.new_zeros((0, 1, h, w), dtype=torch.float32)
    else:
        soft = paste_masks_in_image(masks.float(), boxes.float(), (h, w))
    return soft >= threshold if threshold is not None else soft


def detector_postprocess(result: Dict[str, Tensor], input_size: Sequence[int],
                         output_size: Sequence[int], mask_paste: str = "detectron2",
                         mask_threshold: Optional[float] = 0.5) -> Dict[str, Tensor]:
    """One image's detections from the network's frame to the output (original) image.

    Args:
        result: ``boxes`` (``D x 4`` xyxy in the pixels of the ``input_size`` image), any
            per-detection tensors (``labels``, ``scores``, ...) and optionally ``masks``
            (``D x 1 x M x M`` probabilities, as torchvision's RoI heads return them).
        input_size: ``(h, w)`` of the (resized, unpadded) image the network saw.
        output_size: ``(H, W)`` to return the detections in.
        mask_paste / mask_threshold: see :func:`paste_masks`.

    Returns:
        A new dict: ``boxes`` scaled and clipped, detections with empty boxes dropped from
        every per-detection entry, ``masks`` ``D' x 1 x H x W`` pasted.
    """
    h_in, w_in = int(input_size[0]), int(input_size[1])
    h, w = int(output_size[0]), int(output_size[1])
    boxes = result["boxes"].clone()
    n = boxes.shape[0]
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("detections contain non-finite boxes")
    boxes[:, 0::2] *= w / w_in
    boxes[:, 1::2] *= h / h_in
    boxes[:, 0::2] = boxes[:, 0::2].clamp(min=0, max=w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(min=0, max=h)
    keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
    out: Dict[str, Tensor] = {}
    for k, v in result.items():
        if k in ("boxes", "masks"):
            continue
        out[k] = v[keep] if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n else v
    out["boxes"] = boxes[keep]
    if "masks" in result:
        out["masks"] = paste_masks(result["masks"][keep], out["boxes"], (h, w), mask_paste,
                                   mask_threshold)
    return out
