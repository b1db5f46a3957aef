"""COCO "instances" json: load, validate, and map category ids to contiguous labels.

Format: the COCO object-detection annotation format (Lin et al., "Microsoft COCO", ECCV 2014;
https://cocodataset.org/#format-data) as read by pycocotools. Semantics follow detectron2's
``load_coco_json`` (sorted category ids -> contiguous ids; annotations whose polygons are all
invalid are dropped and counted) and torchvision's detection references (label 0 = background,
boxes clipped to the image).

Policy for bad records:

* **structural errors raise** :class:`CocoFormatError`, naming the file and the offending ids:
  unknown category ids, annotations referring to a missing image entry, duplicate ids, annotation
  id < 1 (pycocotools uses id 0 as "unmatched"), malformed fields (types, bbox length, RLE size);
* **bad but well-formed records are dropped and counted** (``CocoInstances.dropped``, a list of
  :class:`Dropped` ``(id, reason)``): degenerate boxes (w or h <= 0, non-finite values, or nothing
  left inside the image), annotations with an invalid polygon part, and (when an image root is
  given) images whose file is missing on disk, together with their annotations.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_util

_MAX_LISTED = 20


class CocoFormatError(ValueError):
    """A COCO json that cannot be used as given; the message names the file and record ids."""


class Dropped(NamedTuple):
    """A record left out on load: ``id`` is the annotation id (or image id, see ``reason``)."""

    id: int
    reason: str


@dataclass(frozen=True)
class CategoryMapping:
    """Sparse COCO category ids <-> contiguous labels ``1..K`` (0 is background).

    Label ``i`` (1-based) is the i-th smallest category id, as in detectron2's
    ``thing_dataset_id_to_contiguous_id`` shifted by one for torchvision's background class.
    """

    category_ids: Tuple[int, ...]
    names: Tuple[str, ...]

    @classmethod
    def from_categories(cls, categories: Sequence[Dict[str, Any]]) -> "CategoryMapping":
        cats = sorted(categories, key=lambda c: c["id"])
        return cls(tuple(int(c["id"]) for c in cats), tuple(str(c["name"]) for c in cats))

    @property
    def num_classes(self) -> int:
        """K, the number of object classes (without background)."""
        return len(self.category_ids)

    @property
    def id_to_label(self) -> Dict[int, int]:
        return {cid: i + 1 for i, cid in enumerate(self.category_ids)}

    @property
    def label_to_id(self) -> Dict[int, int]:
        return {i + 1: cid for i, cid in enumerate(self.category_ids)}

    def label_of(self, category_id: int) -> int:
        try:
            return self.id_to_label[int(category_id)]
        except KeyError:
            raise KeyError(f"unknown COCO category id {category_id}") from None

    def category_of(self, label: int) -> int:
        """COCO category id of contiguous label ``1..K``; raises for 0 (background) or > K."""
        if not 1 <= int(label) <= self.num_classes:
            raise KeyError(f"label {label} outside 1..{self.num_classes}")
        return self.category_ids[int(label) - 1]


@dataclass
class CocoInstances:
    """A validated COCO instances file.

    Attributes:
        source: the file (or a description of the dict) it came from.
        images: image id -> image record (``file_name``, ``height``, ``width``, ...), file order.
        annotations: image id -> kept annotation records of that image; every record has
            ``iscrowd`` (0/1) and ``area`` (filled in when absent: mask area, else box area).
        categories: the category records, as in the file.
        mapping: category id <-> contiguous label.
        dropped: records left out on load, never silently (see the module docstring).
    """

    source: str
    images: Dict[int, Dict[str, Any]]
    annotations: Dict[int, List[Dict[str, Any]]]
    categories: List[Dict[str, Any]]
    mapping: CategoryMapping
    dropped: List[Dropped] = field(default_factory=list)

    @property
    def num_annotations(self) -> int:
        return sum(len(v) for v in self.annotations.values())

    def to_coco_dict(self) -> Dict[str, Any]:
        """``{"images", "annotations", "categories"}`` of the kept records (for pycocotools)."""
        return {
            "images": list(self.images.values()),
            "annotations": [a for anns in self.annotations.values() for a in anns],
            "categories": list(self.categories),
        }


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _summarise(source: str, errors: List[str]) -> str:
    shown = errors[:_MAX_LISTED]
    more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
    return f"{source}: {len(errors)} problem(s):\n  " + "\n  ".join(shown) + more


def _duplicates(ids: Iterable[Any]) -> List[Any]:
    seen, dup = set(), []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    return dup


def segmentation_to_rle(segm: Any, height: int, width: int) -> Dict[str, Any]:
    """One compressed RLE (``counts`` bytes) for polygons, uncompressed or compressed RLE."""
    if isinstance(segm, list):
        return mask_util.merge(mask_util.frPyObjects(segm, height, width))
    if isinstance(segm["counts"], list):
        return mask_util.frPyObjects(segm, height, width)
    counts = segm["counts"]
    return {"size": list(segm["size"]), "counts": counts.encode() if isinstance(counts, str)
            else counts}


def decode_segmentation(segm: Any, height: int, width: int) -> np.ndarray:
    """Binary mask ``(height, width)`` uint8 of a polygon list or an RLE dict."""
    return mask_util.decode(segmentation_to_rle(segm, height, width))


def _check_segmentation(segm: Any, img: Dict[str, Any]) -> Optional[str]:
    """Return a structural problem with ``segm``, or None; invalid polygons are not structural."""
    if isinstance(segm, list):
        for part in segm:
            if not isinstance(part, list) or not all(_is_number(v) for v in part):
                return "segmentation polygon is not a list of lists of numbers"
        return None
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        return "segmentation is neither a polygon list nor an RLE dict with counts and size"
    size = segm["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) for s in size)):
        return f"RLE size {size!r} is not [height, width]"
    if list(size) != [img["height"], img["width"]]:
        return f"RLE size {size} differs from the image's [{img['height']}, {img['width']}]"
    counts = segm["counts"]
    if isinstance(counts, list):
        if not all(_is_int(c) and c >= 0 for c in counts):
            return "uncompressed RLE counts must be non-negative integers"
        if sum(counts) != size[0] * size[1]:
            return f"uncompressed RLE counts sum to {sum(counts)}, not {size[0] * size[1]}"
    elif not isinstance(counts, str):
        return f"RLE counts of type {type(counts).__name__} (want str or list of int)"
    return None


def _valid_polygons(segm: Any) -> bool:
    """False when ``segm`` is a polygon list with a part of odd length or < 3 points.

    An empty list means "no mask" (bbox-only records), like a missing ``segmentation``.
    """
    if not isinstance(segm, list):
        return True
    return all(len(p) >= 6 and len(p) % 2 == 0 for p in segm)


def _check_categories(cats: Any, errors: List[str]) -> None:
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(
                c.get("name"), str):
            errors.append(f"categories[{i}]: needs an integer 'id' and a string 'name'")
    dup = _duplicates(c.get("id") for c in cats if isinstance(c, dict))
    if dup:
        errors.append(f"duplicate category ids {dup[:_MAX_LISTED]}")


def _check_images(imgs: Any, errors: List[str]) -> None:
    for i, img in enumerate(imgs):
        if not isinstance(img, dict) or not _is_int(img.get("id")):
            errors.append(f"images[{i}]: needs an integer 'id'")
            continue
        if not isinstance(img.get("file_name"), str):
            errors.append(f"image {img['id']}: needs a string 'file_name'")
        if not all(_is_int(img.get(k)) and img[k] > 0 for k in ("height", "width")):
            errors.append(f"image {img['id']}: 'height' and 'width' must be positive integers")
    dup = _duplicates(img.get("id") for img in imgs if isinstance(img, dict))
    if dup:
        errors.append(f"duplicate image ids {dup[:_MAX_LISTED]}")


def _check_annotation(ann: Any, i: int, images: Dict[int, Dict[str, Any]],
                      cat_ids: set) -> Optional[str]:
    """The structural problem of annotation ``ann`` (index ``i``), or None."""
    if not isinstance(ann, dict) or not _is_int(ann.get("id")):
        return f"annotations[{i}]: needs an integer 'id'"
    aid = ann["id"]
    if aid < 1:
        return f"annotation {aid}: ids must be >= 1 (pycocotools uses 0 for 'unmatched')"
    image_id, cat = ann.get("image_id"), ann.get("category_id")
    if not _is_int(image_id):
        return f"annotation {aid}: needs an integer 'image_id'"
    if image_id not in images:
        return f"annotation {aid}: refers to image {image_id}, which has no entry in 'images'"
    if not _is_int(cat) or cat not in cat_ids:
        return f"annotation {aid} (image {image_id}): unknown category id {cat!r}"
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        return f"annotation {aid} (image {image_id}): bbox {bbox!r} is not [x, y, w, h] numbers"
    if ann.get("iscrowd", 0) not in (0, 1):
        return f"annotation {aid} (image {image_id}): iscrowd must be 0 or 1"
    if "area" in ann and not (_is_number(ann["area"]) and ann["area"] >= 0):
        return f"annotation {aid} (image {image_id}): area must be a number >= 0"
    segm = ann.get("segmentation")
    if segm is not None:
        problem = _check_segmentation(segm, images[image_id])
        if problem:
            return f"annotation {aid} (image {image_id}): {problem}"
    return None


def _bbox_problem(bbox: Sequence[float], img: Dict[str, Any]) -> Optional[str]:
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return f"degenerate bbox [x, y, w, h] = {list(bbox)}"
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, float(img["width"])), min(y + h, float(img["height"]))
    if x2 <= x1 or y2 <= y1:
        return f"bbox {list(bbox)} lies outside the {img['width']}x{img['height']} image"
    return None


def _fill_area(ann: Dict[str, Any], img: Dict[str, Any]) -> None:
    if "area" in ann:
        return
    segm = ann.get("segmentation")
    if segm and _valid_polygons(segm):
        rle = segmentation_to_rle(segm, img["height"], img["width"])
        ann["area"] = float(mask_util.area(rle))
    else:
        ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])


def validate_coco_dict(data: Any, source: str = "<dict>", image_root: Optional[str] = None,
                       drop_invalid: bool = True) -> CocoInstances:
    """Validate a parsed COCO instances dict (see :func:`load_coco_json`)."""
    if not isinstance(data, dict):
        raise CocoFormatError(f"{source}: top level is {type(data).__name__}, not an object")
    missing = [k for k in ("images", "annotations", "categories")
               if not isinstance(data.get(k), list)]
    if missing:
        raise CocoFormatError(f"{source}: missing or non-list key(s) {missing}")
    errors: List[str] = []
    _check_categories(data["categories"], errors)
    _check_images(data["images"], errors)
    if not data["categories"]:
        errors.append("'categories' is empty")
    if errors:
        raise CocoFormatError(_summarise(source, errors))
    images = {img["id"]: dict(img) for img in data["images"]}
    cat_ids = {c["id"] for c in data["categories"]}
    for i, ann in enumerate(data["annotations"]):
        problem = _check_annotation(ann, i, images, cat_ids)
        if problem:
            errors.append(problem)
    dup = _duplicates(a["id"] for a in data["annotations"] if isinstance(a, dict) and "id" in a)
    if dup:
        errors.append(f"duplicate annotation ids {dup[:_MAX_LISTED]}")
    if errors:
        raise CocoFormatError(_summarise(source, errors))

    dropped: List[Dropped] = []
    missing_files = set()
    if image_root is not None:
        for img_id, img in images.items():
            if not os.path.isfile(os.path.join(image_root, img["file_name"])):
                missing_files.add(img_id)
    annotations: Dict[int, List[Dict[str, Any]]] = {i: [] for i in images if i not in missing_files}
    num_dropped_with_image = {i: 0 for i in missing_files}
    for ann in data["annotations"]:
        ann = dict(ann)
        img = images[ann["image_id"]]
        if ann["image_id"] in missing_files:
            num_dropped_with_image[ann["image_id"]] += 1
            continue
        ann.setdefault("iscrowd", 0)
        if drop_invalid:
            problem = _bbox_problem(ann["bbox"], img)
            if problem is None and not _valid_polygons(ann.get("segmentation")):
                problem = "invalid polygon (each part needs an even length >= 6)"
            if problem:
                dropped.append(Dropped(ann["id"], f"annotation {ann['id']} (image "
                                                  f"{ann['image_id']}): {problem}"))
                continue
        _fill_area(ann, img)
        annotations[ann["image_id"]].append(ann)
    for img_id in sorted(missing_files):
        path = os.path.join(image_root or "", images[img_id]["file_name"])
        dropped.append(Dropped(img_id, f"image {img_id}: file missing on disk: {path} "
                                       f"({num_dropped_with_image[img_id]} annotation(s) dropped)"))
        del images[img_id]
    return CocoInstances(source, images, annotations, list(data["categories"]),
                         CategoryMapping.from_categories(data["categories"]), dropped)


def load_coco_json(path: str, image_root: Optional[str] = None,
                   drop_invalid: bool = True) -> CocoInstances:
    """Read and validate a COCO instances json.

    Args:
        path: the json file (``images``, ``annotations``, ``categories``).
        image_root: when given, images whose ``file_name`` is missing under it are dropped
            (with their annotations) and reported.
        drop_invalid: drop (and report) degenerate boxes and annotations without a valid
            polygon. ``False`` keeps every annotation, as an evaluator's ground truth must.

    Returns:
        The validated :class:`CocoInstances` (dropped records in ``.dropped``).

    Raises:
        CocoFormatError: unreadable json or structural errors (the message names the ids).
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{path}: not valid JSON: line {e.lineno}: {e.msg}") from None
    return validate_coco_dict(data, str(path), image_root, drop_invalid)
