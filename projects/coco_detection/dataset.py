"""COCO instances dataset with targets in torchvision's detection format.

Semantics follow torchvision's detection references (``references/detection/coco_utils.py``:
boxes xyxy clipped to the image, label 0 = background, ``image_id`` / ``area`` / ``iscrowd`` in
the target) and detectron2's ``DatasetMapper`` for training: crowd regions are left out of the
training targets (they are ignored, not negatives) and images left without annotations are
filtered by default (``filter_empty``).

Bad records follow :mod:`mvit_tasks.projects.coco_detection.converters.coco_json` (structural errors raise;
degenerate boxes and invalid polygons are dropped and listed in ``dataset.dropped``). An image
whose file is missing on disk, cannot be decoded, or whose size differs from its json entry
yields the skip marker ``{"skipped": (path, reason)}`` instead of a sample;
:func:`collate_detection` removes those and lists them in the batch for the engine to count
(``final_report.json``, ``TRAIN.MAX_FAILED_FRACTION``), as unreadable videos are.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file

from mvit_tasks.projects.coco_detection.converters.coco_json import (
    CocoInstances,
    Dropped,
    decode_segmentation,
    load_coco_json,
)

Sample = Union[Tuple[torch.Tensor, Dict[str, Any]], Dict[str, Tuple[str, str]]]


def is_skipped(sample: Any) -> bool:
    """True for the skip marker ``{"skipped": (path, reason)}``."""
    return isinstance(sample, dict) and "skipped" in sample


def collate_detection(items: Sequence[Sample]) -> Dict[str, Any]:
    """Batch of ``(image, target)`` samples of different sizes, in the engine's batch format.

    Returns:
        ``{"images": [(3, H_i, W_i)], "targets": [target dicts], "num_samples": int,
        "skipped": [(path, reason)]}`` (lists, not stacked: torchvision's detection models
        take lists and batch them themselves).
    """
    batch: Dict[str, Any] = {"images": [], "targets": [], "num_samples": 0, "skipped": []}
    for item in items:
        if is_skipped(item):
            batch["skipped"].append(tuple(item["skipped"]))  # type: ignore[index]
            continue
        image, target = item  # type: ignore[misc]
        batch["images"].append(image)
        batch["targets"].append(target)
    batch["num_samples"] = len(batch["images"])
    return batch


class CocoDetectionDataset(torch.utils.data.Dataset):
    """Images and instance targets of a COCO json.

    Args:
        json_path: COCO instances json.
        image_root: folder the images' ``file_name`` entries are relative to.
        transforms: ``(tv_tensors.Image uint8, target) -> (image, target)``, e.g.
            :func:`mvit_tasks.projects.coco_detection.transforms.build_train_transforms`; the target's
            ``boxes`` / ``masks`` are ``tv_tensors.BoundingBoxes`` / ``tv_tensors.Mask`` there.
        train: leave crowd annotations out of the targets (kept with ``iscrowd=1`` otherwise).
        filter_empty: drop images without (non-crowd, when ``train``) annotations; default
            ``train``. How many were dropped is in ``num_filtered_empty``.
        with_masks: decode instance masks (every kept annotation then needs a segmentation).
        to_float: return the image as float in [0, 1] (else uint8).

    ``dataset[i]`` is ``(image, target)``: ``image`` (3, H, W) RGB after the transforms and
    ``target`` ``{"boxes": (N, 4) float32 xyxy absolute, "labels": (N,) int64 contiguous 1..K,
    "masks": (N, H, W) uint8, "image_id": int, "area": (N,) float32 (json area, original
    pixels), "iscrowd": (N,) int64, "orig_size": (2,) int64 (H0, W0) of the file,
    "size": (2,) int64 (H, W) after the transforms}``, or the skip marker.
    """

    def __init__(self, json_path: str, image_root: str,
                 transforms: Optional[Callable[..., Any]] = None, train: bool = True,
                 filter_empty: Optional[bool] = None, with_masks: bool = True,
                 to_float: bool = True) -> None:
        # files are looked up when read: a missing one is skipped and counted by the engine
        self.coco: CocoInstances = load_coco_json(json_path, None, drop_invalid=True)
        self.image_root = image_root
        self.transforms = transforms
        self.train = train
        self.with_masks = with_masks
        self.to_float = to_float
        self.mapping = self.coco.mapping
        filter_empty = train if filter_empty is None else filter_empty
        self.image_ids: List[int] = []
        self.num_filtered_empty = 0
        for img_id in self.coco.images:
            if filter_empty and not self._annotations(img_id):
                self.num_filtered_empty += 1
            else:
                self.image_ids.append(img_id)
        if with_masks:
            no_mask = [a["id"] for i in self.image_ids for a in self._annotations(i)
                       if not a.get("segmentation")]
            if no_mask:
                raise ValueError(f"{json_path}: with_masks=True, but annotation(s) "
                                 f"{no_mask[:20]} have no segmentation")

    @property
    def dropped(self) -> List[Dropped]:
        """Records left out when the json was loaded (see the converters)."""
        return self.coco.dropped

    def __len__(self) -> int:
        return len(self.image_ids)

    def _annotations(self, image_id: int) -> List[Dict[str, Any]]:
        anns = self.coco.annotations.get(image_id, [])
        return [a for a in anns if not a["iscrowd"]] if self.train else anns

    def _target(self, image_id: int, h: int, w: int) -> Dict[str, Any]:
        anns = self._annotations(image_id)
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        target: Dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self.mapping.label_of(a["category_id"]) for a in anns],
                                   dtype=torch.int64),
            "image_id": image_id,
            "area": torch.tensor([a["area"] for a in anns], dtype=torch.float32),
            "iscrowd": torch.tensor([a["iscrowd"] for a in anns], dtype=torch.int64),
            "orig_size": torch.tensor([h, w], dtype=torch.int64),
        }
        if self.with_masks:
            masks = np.zeros((len(anns), h, w), dtype=np.uint8)
            for i, a in enumerate(anns):
                masks[i] = decode_segmentation(a["segmentation"], h, w)
            target["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
        return target

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        rec = self.coco.images[image_id]
        path = os.path.join(self.image_root, rec["file_name"])
        if not os.path.isfile(path):
            return {"skipped": (path, f"image {image_id}: file missing on disk")}
        try:
            image = decode_image(read_file(path), mode=ImageReadMode.RGB)
        except (RuntimeError, OSError, ValueError) as e:
            return {"skipped": (path, f"cannot decode image {image_id}: "
                                      f"{type(e).__name__}: {e}".strip())}
        h, w = rec["height"], rec["width"]
        if tuple(image.shape[-2:]) != (h, w):
            return {"skipped": (path, f"image {image_id} is {image.shape[-2]}x{image.shape[-1]}"
                                      f" (HxW), the json says {h}x{w}")}
        img: Any = tv_tensors.Image(image)
        target = self._target(image_id, h, w)
        if self.transforms is not None:
            img, target = self.transforms(img, target)
        target["size"] = torch.tensor(img.shape[-2:], dtype=torch.int64)
        for k, v in target.items():
            if isinstance(v, tv_tensors.TVTensor):
                target[k] = v.as_subclass(torch.Tensor)
        img = img.as_subclass(torch.Tensor)
        if self.to_float and img.dtype == torch.uint8:
            img = img.float() / 255.0
        return img, target
