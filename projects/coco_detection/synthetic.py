"""COCO Shapes: a small synthetic instance-segmentation dataset in COCO format (demo and tests).

Each image shows a few coloured squares, disks and triangles (3 categories) on a noisy
gradient background. Shapes are painted in order, so later shapes may occlude earlier ones;
every instance's mask is its *visible* region. Visible masks that are the full shape are stored
as polygons, occluded ones as compressed RLE (pycocotools), so both COCO mask formats occur;
``bbox`` is the tight ``[x, y, w, h]`` box of the visible mask and ``area`` its pixel count
(COCO's conventions, ``cocodataset/cocoapi`` ``PythonAPI/pycocotools/mask.py``). Instances with
less than half of their shape visible are not painted at all.

Layout under ``root``::

    train/000000.png ...            RGB PNG (lossless: the masks match the pixels exactly)
    val/000000.png ...
    annotations/instances_train.json, annotations/instances_val.json
    meta.json                       generation parameters; written last (marks a complete set)

Image ``(split, i)`` depends only on ``seed``, the split and ``i``; an existing complete dataset
with the same parameters is reused (nothing is written).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from mvit_tasks.utils.fileio import atomic_write_text

CATEGORIES: Tuple[Dict[str, Any], ...] = (
    {"id": 1, "name": "square", "supercategory": "shape"},
    {"id": 2, "name": "disk", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
)
SPLITS = ("train", "val")
GENERATOR_VERSION = 1
_MIN_VISIBLE = 0.5


def annotation_path(root: str, split: str) -> str:
    """``root/annotations/instances_{split}.json``."""
    return os.path.join(root, "annotations", f"instances_{split}.json")


def generate_coco_shapes(root: str, num_train: int, num_val: int, size: int = 128,
                         max_shapes: int = 4, seed: int = 0) -> Dict[str, Any]:
    """Write the COCO Shapes dataset under ``root`` (or reuse a complete one).

    Args:
        root: output folder (created if needed).
        num_train, num_val: images per split.
        size: image height and width in pixels (>= 32).
        max_shapes: at most this many shapes per image (at least one is visible).
        seed: base seed; the same arguments give the same files.

    Returns:
        ``{"root", "train_json", "val_json", "num_train", "num_val", "num_instances",
        "reused"}``.
    """
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    if max_shapes < 1 or num_train < 0 or num_val < 0:
        raise ValueError(f"need max_shapes >= 1 and non-negative counts, got max_shapes="
                         f"{max_shapes}, num_train={num_train}, num_val={num_val}")
    params = dict(generator="coco_shapes", version=GENERATOR_VERSION, num_train=num_train,
                  num_val=num_val, size=size, max_shapes=max_shapes, seed=seed)
    meta_path = os.path.join(root, "meta.json")
    out = {"root": root, "train_json": annotation_path(root, "train"),
           "val_json": annotation_path(root, "val"), "num_train": num_train,
           "num_val": num_val}
    if _is_complete(root, params):
        with open(meta_path) as f:
            out["num_instances"] = json.load(f)["num_instances"]
        return {**out, "reused": True}
    if os.path.exists(meta_path):
        os.remove(meta_path)  # parameters changed: the set is rewritten
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    counts = {}
    for s, (split, n) in enumerate(zip(SPLITS, (num_train, num_val))):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(n):
            rng = np.random.default_rng([seed, s, i])
            image, instances = render_image(rng, size, max_shapes)
            file_name = f"{split}/{i:06d}.png"
            cv2.imwrite(os.path.join(root, file_name), image[:, :, ::-1])  # RGB -> BGR
            image_id = i + 1
            images.append({"id": image_id, "file_name": file_name, "height": size,
                           "width": size})
            for inst in instances:
                anns.append({"id": len(anns) + 1, "image_id": image_id, **inst})
        data = {"info": {"description": "COCO Shapes (mvit-tasks synthetic demo)", **params},
                "images": images, "annotations": anns, "categories": list(CATEGORIES)}
        atomic_write_text(annotation_path(root, split), json.dumps(data))
        counts[split] = len(anns)
    atomic_write_text(meta_path, json.dumps({**params, "num_instances": counts}, indent=1))
    return {**out, "num_instances": counts, "reused": False}


def render_image(rng: np.random.Generator, size: int,
                 max_shapes: int) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """One image: ``(size, size, 3)`` uint8 RGB and its COCO annotations (without ids).

    Annotation fields: ``category_id``, ``segmentation`` (polygon list or compressed RLE),
    ``bbox`` ``[x, y, w, h]`` of the visible mask, ``area`` (visible pixels), ``iscrowd`` 0.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(40, 120, size=3)
    tilt = rng.uniform(-40, 40, size=(2, 3))
    image = base + xx[..., None] * tilt[0] + yy[..., None] * tilt[1]
    image = image + rng.normal(0, 6, size=image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    shapes = []  # (category, full mask, polygon)
    owner = np.full((size, size), -1, dtype=np.int32)  # index of the shape on top
    for k in range(int(rng.integers(1, max_shapes + 1))):
        cat = int(rng.integers(1, len(CATEGORIES) + 1))
        mask, poly = _shape_mask(cat, rng, size)
        colour = _colour(rng)
        image[mask] = colour
        owner[mask] = k
        shapes.append((cat, mask, poly))
    instances = []
    for k, (cat, mask, poly) in enumerate(shapes):
        visible = owner == k
        full, seen = int(mask.sum()), int(visible.sum())
        if seen < _MIN_VISIBLE * full or seen == 0:
            continue
        ys, xs = np.nonzero(visible)
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1)]
        if seen == full:
            segm: Any = [poly]
        else:
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            segm = {"size": [size, size], "counts": rle["counts"].decode("ascii")}
        instances.append({"category_id": cat, "segmentation": segm, "bbox": bbox,
                          "area": float(seen), "iscrowd": 0})
    return image, instances


def _shape_mask(cat: int, rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[float]]:
    """Boolean mask of a random shape of category ``cat`` and its outline polygon
    ``[x1, y1, x2, y2, ...]`` (pixel-edge coordinates; a disk as a 24-gon)."""
    side = float(rng.uniform(0.15, 0.4) * size)
    cx, cy = rng.uniform(side / 2, size - side / 2, size=2)
    if cat == 1:  # axis-aligned square
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * side / 2
    elif cat == 2:  # disk
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * side / 2
    else:  # upright triangle, random width / height ratio
        w = side * rng.uniform(0.8, 1.2)
        pts = np.array([[0, -side / 2], [w / 2, side / 2], [-w / 2, side / 2]])
    pts = pts + [cx, cy]
    mask = np.zeros((size, size), dtype=np.uint8)
    # fillPoly fills pixel centres; 4-bit sub-pixel precision
    cv2.fillPoly(mask, [np.round((pts - 0.5) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8,
                 shift=4)
    poly = np.clip(pts, 0, size).reshape(-1)
    return mask.astype(bool), [round(float(v), 2) for v in poly]


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour, far from the dull background."""
    hue = rng.uniform(0, 180)
    hsv = np.array([[[hue, rng.uniform(170, 255), rng.uniform(180, 255)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def _is_complete(root: str, params: Dict[str, Any]) -> bool:
    meta_path = os.path.join(root, "meta.json")
    if not os.path.exists(meta_path):
        return False
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if {k: meta.get(k) for k in params} != params:
        return False
    for split, n in zip(SPLITS, (params["num_train"], params["num_val"])):
        if not os.path.exists(annotation_path(root, split)):
            return False
        if any(not os.path.exists(os.path.join(root, split, f"{i:06d}.png")) for i in range(n)):
            return False
    return True
