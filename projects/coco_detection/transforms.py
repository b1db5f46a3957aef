"""Detection augmentation on torchvision.transforms.v2: boxes and masks move with the image.

Semantics follow detectron2's augmentations as used by its MViTv2 COCO recipes
(``projects/MViTv2/configs/common/coco_loader.py`` and ``coco_loader_lsj.py``):

* ``ResizeShortestEdge``: short side drawn from a list, long side capped at ``max_size``
  (sizes by ``get_output_shape``'s arithmetic, rounded by ``int(x + 0.5)``); pixels by
  torchvision's antialiased resize, or (``backend="detectron2"``, the test default) by PIL
  bilinear on uint8 as detectron2's ``ResizeTransform``;
* ``RandomCropAbsolute``: DETR-style crop of a random size in an absolute range
  (detectron2 ``RandomCrop(crop_type="absolute_range")``), applied with probability 0.5 in the
  MViTv2 recipe after a short-side resize to 400/500/600;
* large-scale jitter (LSJ, Ghiasi et al., "Simple Copy-Paste", CVPR 2021): ``ResizeScale``
  (scale 0.1-2.0 of a target size) then ``FixedSizeCrop`` (random crop, pad bottom/right to the
  fixed square), boxes recomputed from the masks;
* ``SanitizeInstances``: drops instances whose box or mask became empty
  (detectron2 ``filter_empty_instances``).

Inputs are ``(image, target)`` with ``image`` a ``tv_tensors.Image`` (uint8, C x H x W) and
``target["boxes"]`` a ``tv_tensors.BoundingBoxes`` (XYXY, absolute), ``target["masks"]`` a
``tv_tensors.Mask`` (N x H x W); other target entries pass through. Random draws come from
``generator`` (a ``torch.Generator``) when given, else from torch's global RNG -- prefer the
global RNG inside DataLoader workers, which seed it per worker (a generator object is copied
into every worker with the same state).
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

INSTANCE_KEYS = ("boxes", "labels", "masks", "area", "iscrowd")
MVITV2_TRAIN_SIZES = tuple(range(480, 801, 32))  # detectron2 MViTv2 coco_loader.py


def _rand(generator: Optional[torch.Generator]) -> float:
    return float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator: Optional[torch.Generator]) -> int:
    """Uniform integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _size_of(flat_inputs: List[Any]) -> Tuple[int, int]:
    for x in flat_inputs:
        if isinstance(x, (tv_tensors.Image, tv_tensors.Mask)):
            return int(x.shape[-2]), int(x.shape[-1])
    for x in flat_inputs:
        if isinstance(x, tv_tensors.BoundingBoxes):
            return tuple(x.canvas_size)  # type: ignore[return-value]
    raise TypeError("no tv_tensors.Image, Mask or BoundingBoxes in the sample")


def shortest_edge_size(h: int, w: int, short: int, max_size: int) -> Tuple[int, int]:
    """(new_h, new_w) with short side ``short`` and long side <= ``max_size``.

    The arithmetic of detectron2's ``ResizeShortestEdge.get_output_shape``, step for step (the
    short side becomes ``short`` exactly, the long one ``scale * side``; both are rescaled when
    the long one passes ``max_size``; then rounded half up by ``int(x + 0.5)``), so the float
    rounding and hence the sizes are detectron2's.
    """
    size = float(short)
    scale = size / min(h, w)
    new_h, new_w = (size, scale * w) if h < w else (scale * h, size)
    if max(new_h, new_w) > max_size:
        scale = max_size * 1.0 / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


RESIZE_BACKENDS = ("detectron2", "torchvision")


def resize_image_detectron2(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a ``C x H x W`` image to ``size = (h, w)`` as detectron2's ``ResizeTransform``
    (interp BILINEAR) resizes an ``H x W x C`` array in ``apply_image``.

    uint8 images go through PIL: ``Image.fromarray`` (``L`` for one channel, ``RGB`` for three)
    then ``Image.resize((w, h), BILINEAR)`` -- PIL's antialiased, fixed-point resampling, which
    torch does not reproduce bit for bit. Float images use ``F.interpolate(mode="bilinear",
    align_corners=False)`` (no antialias), detectron2's path for non-uint8 arrays. Returns a
    ``C x h x w`` tensor of the input's dtype on the input's device; the input itself when the
    size is unchanged (both paths are the identity then).
    """
    h, w = int(size[0]), int(size[1])
    if image.ndim != 3:
        raise ValueError(f"expected a C x H x W image, got shape {tuple(image.shape)}")
    if tuple(image.shape[-2:]) == (h, w):
        return image
    if image.dtype != torch.uint8:
        return torch.nn.functional.interpolate(image[None], size=(h, w), mode="bilinear",
                                               align_corners=False)[0]
    from PIL import Image

    array = image.detach().permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    out = np.array(pil.resize((w, h), Image.Resampling.BILINEAR))  # a writable copy
    out = out[:, :, None] if out.ndim == 2 else out
    return torch.from_numpy(out).permute(2, 0, 1).contiguous().to(image.device)


class _RandomTransform(v2.Transform):
    def __init__(self, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.generator = generator


class ResizeShortestEdge(_RandomTransform):
    """Resize so the short side is one of ``short_sizes`` (uniform choice), long <= ``max_size``.

    Boxes scale with the image; masks use nearest-neighbour interpolation. ``backend`` resizes
    the image pixels: ``"torchvision"`` (antialiased ``F.resize``) or ``"detectron2"``
    (:func:`resize_image_detectron2`: PIL bilinear on uint8, as detectron2).
    """

    def __init__(self, short_sizes: Sequence[int], max_size: int = 1333,
                 generator: Optional[torch.Generator] = None,
                 backend: str = "torchvision") -> None:
        super().__init__(generator)
        if not short_sizes:
            raise ValueError("short_sizes is empty")
        if backend not in RESIZE_BACKENDS:
            raise ValueError(f"backend must be one of {RESIZE_BACKENDS}, got {backend!r}")
        self.short_sizes = [int(s) for s in short_sizes]
        self.max_size = int(max_size)
        self.backend = backend

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        i = _randint(0, len(self.short_sizes) - 1, self.generator) if len(
            self.short_sizes) > 1 else 0
        return {"size": list(shortest_edge_size(h, w, self.short_sizes[i], self.max_size))}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        if self.backend == "detectron2" and isinstance(inpt, torch.Tensor) and not isinstance(
                inpt, (tv_tensors.Mask, tv_tensors.BoundingBoxes)):  # the image
            out = resize_image_detectron2(inpt.as_subclass(torch.Tensor), params["size"])
            return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) \
                else out
        return F.resize(inpt, params["size"], antialias=True)


class RandomHorizontalFlip(_RandomTransform):
    """Flip image, boxes and masks together with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        self.p = p

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        return {"flip": _rand(self.generator) < self.p}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        return F.horizontal_flip(inpt) if params["flip"] else inpt


class RandomCropAbsolute(_RandomTransform):
    """Crop a random ``(h, w)`` region, each side uniform in ``[min_size, max_size]`` (clipped
    to the image), at a uniform position; boxes are clipped to the crop."""

    def __init__(self, min_size: int = 384, max_size: int = 600,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        if not 0 < min_size <= max_size:
            raise ValueError(f"need 0 < min_size <= max_size, got {min_size}, {max_size}")
        self.min_size, self.max_size = min_size, max_size

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        ch = _randint(min(h, self.min_size), min(h, self.max_size), self.generator)
        cw = _randint(min(w, self.min_size), min(w, self.max_size), self.generator)
        top = _randint(0, h - ch, self.generator)
        left = _randint(0, w - cw, self.generator)
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        return F.crop(inpt, **params)


class ResizeScale(_RandomTransform):
    """LSJ resize: fit the image into ``target_size * s``, ``s ~ U(min_scale, max_scale)``,
    keeping the aspect ratio (detectron2 ``ResizeScale``)."""

    def __init__(self, target_size: Tuple[int, int] = (1024, 1024), min_scale: float = 0.1,
                 max_scale: float = 2.0, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        self.target_size = tuple(target_size)
        self.min_scale, self.max_scale = min_scale, max_scale

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        s = self.min_scale + (self.max_scale - self.min_scale) * _rand(self.generator)
        scale = min(self.target_size[0] * s / h, self.target_size[1] * s / w)
        return {"size": [max(1, round(h * scale)), max(1, round(w * scale))]}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        return F.resize(inpt, params["size"], antialias=True)


class FixedSizeCrop(_RandomTransform):
    """Random crop to at most ``crop_size`` (H, W), then (``pad=True``) pad bottom/right to
    exactly ``crop_size``: image with ``pad_value`` (image dtype units), masks with 0."""

    def __init__(self, crop_size: Tuple[int, int] = (1024, 1024), pad: bool = True,
                 pad_value: float = 128.0, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(generator)
        self.crop_size = tuple(crop_size)
        self.pad, self.pad_value = pad, pad_value

    def make_params(self, flat_inputs: List[Any]) -> Dict[str, Any]:
        h, w = _size_of(flat_inputs)
        ch, cw = min(h, self.crop_size[0]), min(w, self.crop_size[1])
        top = round((h - ch) * _rand(self.generator))
        left = round((w - cw) * _rand(self.generator))
        pad_b, pad_r = (self.crop_size[0] - ch, self.crop_size[1] - cw) if self.pad else (0, 0)
        return {"crop": (top, left, ch, cw), "padding": [0, 0, pad_r, pad_b]}

    def transform(self, inpt: Any, params: Dict[str, Any]) -> Any:
        out = F.crop(inpt, *params["crop"])
        if any(params["padding"]):
            fill = self.pad_value if isinstance(inpt, tv_tensors.Image) else 0
            out = F.pad(out, params["padding"], fill=fill)
        return out


class RandomApplyAll:
    """Apply all of ``transforms`` (in order) with probability ``p``, else none."""

    def __init__(self, transforms: Sequence[Any], p: float = 0.5,
                 generator: Optional[torch.Generator] = None) -> None:
        self.transforms = v2.Compose(list(transforms))
        self.p, self.generator = p, generator

    def __call__(self, image: Any, target: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
        if _rand(self.generator) < self.p:
            return self.transforms(image, target)
        return image, target


class SanitizeInstances:
    """Drop instances whose box side is <= ``min_size`` px or whose mask is empty.

    With ``recompute_boxes`` the boxes are first replaced by the tight boxes of the masks
    (``x2 = last column + 1``), as detectron2 does after LSJ crops. Entries ``INSTANCE_KEYS``
    of the target are filtered together.
    """

    def __init__(self, min_size: float = 1e-5, recompute_boxes: bool = False) -> None:
        self.min_size, self.recompute_boxes = min_size, recompute_boxes

    def __call__(self, image: Any, target: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
        boxes = target["boxes"]
        masks = target.get("masks")
        if self.recompute_boxes and masks is not None:
            boxes = tv_tensors.wrap(masks_to_boxes(masks).to(boxes.dtype), like=boxes)
            target["boxes"] = boxes
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh > self.min_size).all(dim=1)
        if masks is not None and masks.shape[0] == keep.shape[0]:
            keep &= (masks.flatten(1) > 0).any(dim=1)
        if bool(keep.all()):
            return image, target
        for k in INSTANCE_KEYS:
            v = target.get(k)
            if isinstance(v, torch.Tensor) and v.shape[:1] == keep.shape:
                target[k] = tv_tensors.wrap(v[keep], like=v) if isinstance(
                    v, tv_tensors.TVTensor) else v[keep]
        return image, target


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight xyxy boxes ``(N, 4)`` float of binary masks ``(N, H, W)`` (empty -> zeros)."""
    n = masks.shape[0]
    out = torch.zeros((n, 4), dtype=torch.float32)
    if n == 0:
        return out
    m = masks.bool()
    cols, rows = m.any(dim=1), m.any(dim=2)  # (N, W), (N, H)
    nonempty = cols.any(dim=1)
    w, h = cols.shape[1], rows.shape[1]
    ar_w, ar_h = torch.arange(w), torch.arange(h)
    x1 = torch.where(cols, ar_w, w).min(dim=1).values
    x2 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    y1 = torch.where(rows, ar_h, h).min(dim=1).values
    y2 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    out[nonempty] = torch.stack([x1, y1, x2, y2], dim=1)[nonempty].float()
    return out


def build_train_transforms(short_sizes: Sequence[int] = MVITV2_TRAIN_SIZES,
                           max_size: int = 1333, flip_prob: float = 0.5,
                           crop_prob: float = 0.0, lsj: bool = False, lsj_size: int = 1024,
                           lsj_scale: Tuple[float, float] = (0.1, 2.0),
                           seed: Optional[int] = None) -> v2.Compose:
    """Training augmentation: ``(image, target) -> (image, target)``.

    Args:
        short_sizes: short-side choices of the multi-scale resize (detectron2 MViTv2 recipe:
            480..800 step 32).
        max_size: cap on the long side.
        flip_prob: horizontal flip probability.
        crop_prob: probability of the DETR-style crop (resize to 400/500/600 then crop
            384-600 px) before the resize; 0.5 in the MViTv2 recipe, off by default.
        lsj: large-scale jitter instead of the above: flip, scale ``lsj_scale`` of
            ``lsj_size`` x ``lsj_size``, random crop and pad to that square, boxes from masks.
        seed: seeds a private ``torch.Generator`` for reproducible draws (see module note on
            DataLoader workers); None uses torch's global RNG.
    """
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    if lsj:
        return v2.Compose([
            RandomHorizontalFlip(flip_prob, gen),
            ResizeScale((lsj_size, lsj_size), lsj_scale[0], lsj_scale[1], gen),
            FixedSizeCrop((lsj_size, lsj_size), pad=True, generator=gen),
            SanitizeInstances(recompute_boxes=True),
        ])
    steps: List[Any] = []
    if crop_prob > 0:
        steps.append(RandomApplyAll([ResizeShortestEdge([400, 500, 600], sys.maxsize, gen),
                                     RandomCropAbsolute(384, 600, gen)], crop_prob, gen))
    steps += [ResizeShortestEdge(short_sizes, max_size, gen), RandomHorizontalFlip(flip_prob, gen),
              SanitizeInstances()]
    return v2.Compose(steps)


def build_test_transforms(short_size: int = 800, max_size: int = 1333,
                          backend: str = "detectron2") -> v2.Compose:
    """Inference resize: short side ``short_size``, long side <= ``max_size``; ``backend``
    ``"detectron2"`` resizes as detectron2's test mapper (PIL bilinear on uint8 images).

    The ``coco`` task does not use it: its model resizes test images itself (same rule, see
    ``model.py``) and returns detections in the file's pixels.
    """
    return v2.Compose([ResizeShortestEdge([short_size], max_size, backend=backend)])
