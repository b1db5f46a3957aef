"""Batch collation for AVA keyframe samples: variable box counts and frame sizes.

Boxes become one ``(K, 5)`` tensor ``[batch_index, x1, y1, x2, y2]`` (the RoI format of
``torchvision.ops.roi_align`` and PySlowFast's detection batches); clips of different sizes
(test time keeps each video's aspect ratio) are zero-padded at the bottom / right, which moves
no box (detectron2's ``ImageList`` padding). Skip markers are removed and reported as in
:func:`mvit_tasks.data.collate.collate_samples`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch

from mvit_tasks.data.collate import is_skipped


def ava_collate(items: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Collate :class:`~mvit_tasks.projects.ava.dataset.AvaKeyframeDataset` samples.

    Returns:
        ``{"video": B x 3 x T x H_max x W_max, "boxes": (K, 5) float32 [b, x1, y1, x2, y2]
        pixels, "labels": (K, C), "norm_boxes": list of B (N_b, 4) normalised boxes,
        "video_id": list of B str, "timestamp": (B,) int64, "num_samples": B,
        "skipped": [(path, reason)]}`` (only the last two when every item was skipped).
    """
    kept: List[Mapping[str, Any]] = []
    skipped: List[Tuple[str, str]] = []
    for item in items:
        if is_skipped(item):
            skipped.append(tuple(item["skipped"]))  # type: ignore[arg-type]
        else:
            kept.append(item)
    batch: Dict[str, Any] = {"num_samples": len(kept), "skipped": skipped}
    if not kept:
        return batch
    c, t = kept[0]["video"].shape[:2]
    h = max(int(s["video"].shape[-2]) for s in kept)
    w = max(int(s["video"].shape[-1]) for s in kept)
    video = kept[0]["video"].new_zeros((len(kept), c, t, h, w))
    rois = []
    for i, s in enumerate(kept):
        v = s["video"]
        video[i, :, :, :v.shape[-2], :v.shape[-1]] = v
        b = s["boxes"].float()
        rois.append(torch.cat([torch.full((len(b), 1), float(i)), b], dim=1))
    batch.update({
        "video": video,
        "boxes": torch.cat(rois),
        "labels": torch.cat([s["labels"] for s in kept]),
        "norm_boxes": [s["norm_boxes"] for s in kept],
        "video_id": [str(s["video_id"]) for s in kept],
        "timestamp": torch.tensor([int(s["timestamp"]) for s in kept], dtype=torch.long),
    })
    return batch
