"""Clip (and image) augmentation on ``torchvision.transforms.v2``, seeded by a ``torch.Generator``.

Recipes follow PySlowFast (``slowfast/datasets/utils.py::spatial_sampling``, ``transform.py``,
``rand_augment.py``, ``random_erasing.py``) as used by the MViTv2 Kinetics / SSv2 configs:

* train: short-side jitter (short side uniform in ``[min, max]``, long side
  ``floor(long * s / short)``) + random ``crop x crop`` crop, OR a random resized crop (area
  fraction ``scale``, aspect ``ratio``, torchvision's 10-attempt algorithm, centre-crop
  fallback); horizontal flip with p = 0.5; RandAugment from a timm config string
  (``rand-m7-n4-mstd0.5-inc1``) with the same ops for every frame of a clip; normalisation
  ``(x / 255 - mean) / std``; random erasing (one box shared by all frames, per-pixel N(0, 1)
  noise, SlowFast ``RE_MODE: pixel`` with ``cube=True``).
* test: short side resized to ``S``, then one of ``num_spatial_crops`` crops (SlowFast
  ``uniform_crop``: index 0 / 1 / 2 = left / centre / right along the long side, or top /
  centre / bottom for portrait frames).

Geometry and the flip run on uint8 frames (channels-last uint8 resizing is the fastest path),
RandAugment runs on the crop (timm's image order; SlowFast applies it to the full frame before
cropping, which costs ~3x more), and only the crop is converted to float.

Differences from timm's RandAugment, whose config string we accept: torchvision's op set (no
``Invert`` / ``SolarizeAdd``, plus ``Identity``), every chosen op is applied (timm: p = 0.5 per
op), ``mstd`` noise is drawn once per clip (timm: per op), and rotations / shears / translations
use bilinear interpolation (bicubic is not available for tensors). torchvision's posterize and
solarize already grow stronger with the magnitude, which is what ``inc1`` selects in timm.

Randomness comes only from the ``torch.Generator`` passed to each call; v2's own sampling runs
inside ``torch.random.fork_rng`` seeded from that generator, so a sample is reproducible from
its seed regardless of the process or DataLoader worker that computes it.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

SLOWFAST_MEAN = (0.45, 0.45, 0.45)
SLOWFAST_STD = (0.225, 0.225, 0.225)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ============================================================================ RandAugment
@dataclasses.dataclass(frozen=True)
class RandAugmentConfig:
    """Parsed timm RandAugment string: ``n`` ops of magnitude ``m`` (0..``mmax``) + N(0, mstd)."""

    num_ops: int = 2
    magnitude: float = 9.0
    magnitude_std: float = 0.0
    magnitude_max: int = 10
    increasing: bool = True


def parse_rand_augment(spec: str) -> RandAugmentConfig:
    """Parse ``rand-m7-n4-mstd0.5-inc1`` (timm / SlowFast ``AUG.AA_TYPE``).

    Keys: ``m`` magnitude, ``n`` number of ops, ``mstd`` magnitude noise std, ``mmax`` top of
    the magnitude scale (default 10), ``inc`` increasing-severity ops (only ``inc1``, which is
    what torchvision's ops do). Unknown or unsupported keys raise ``ValueError``.
    """
    parts = spec.strip().split("-")
    if parts[0] != "rand":
        raise ValueError(f"RandAugment config must start with 'rand-', got {spec!r}")
    fields: Dict[str, Any] = {"increasing": False}
    for part in parts[1:]:
        m = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", part)
        if not m:
            raise ValueError(f"RandAugment config {spec!r}: cannot parse {part!r}")
        key, val = m.group(1), m.group(2)
        if key == "m":
            fields["magnitude"] = float(val)
        elif key == "n":
            fields["num_ops"] = int(float(val))
        elif key == "mstd":
            fields["magnitude_std"] = float(val)
        elif key == "mmax":
            fields["magnitude_max"] = int(float(val))
        elif key == "inc":
            fields["increasing"] = bool(int(float(val)))
        else:
            raise ValueError(f"RandAugment config {spec!r}: unsupported key {key!r} "
                             "(supported: m, n, mstd, mmax, inc)")
    if not fields["increasing"]:
        raise ValueError(f"RandAugment config {spec!r}: only the increasing ops ('inc1') are "
                         "available (torchvision's posterize / solarize)")
    cfg = RandAugmentConfig(**fields)
    if cfg.num_ops < 0 or not 0 <= cfg.magnitude <= cfg.magnitude_max:
        raise ValueError(f"RandAugment config {spec!r}: need n >= 0 and 0 <= m <= mmax")
    return cfg


class VideoRandAugment:
    """``v2.RandAugment`` applied with the same ops and magnitudes to every frame of a clip."""

    def __init__(self, config: RandAugmentConfig) -> None:
        self.config = config

    def __call__(self, video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``video``: ``T x C x H x W`` uint8; returns the same shape and dtype."""
        c = self.config
        mag = c.magnitude
        if c.magnitude_std > 0:
            mag += c.magnitude_std * float(torch.randn((), generator=generator))
        level = int(round(min(max(mag, 0.0), float(c.magnitude_max))))
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        op = v2.RandAugment(num_ops=c.num_ops, magnitude=level,
                            num_magnitude_bins=c.magnitude_max + 1,
                            interpolation=v2.InterpolationMode.BILINEAR)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = op(tv_tensors.Video(video))
        return out.as_subclass(torch.Tensor)


# =============================================================================== geometry
def short_side_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """``(new_h, new_w)`` with the short side ``size`` and the long side
    ``floor(long * size / short)`` (SlowFast ``random_short_side_scale_jitter``)."""
    if width <= height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``... x H x W`` so that the short side is ``size`` (bilinear, antialiased)."""
    h, w = video.shape[-2:]
    new = short_side_size(h, w, size)
    if new == (h, w):
        return video
    return F.resize(video, list(new), antialias=True)


def uniform_crop_offsets(height: int, width: int, size: int, spatial_idx: int) -> Tuple[int, int]:
    """``(top, left)`` of SlowFast's ``uniform_crop``: centre, and for ``spatial_idx`` 0 / 2 the
    start / end of the long side (left / right, or top / bottom for portrait frames)."""
    if size > height or size > width:
        raise ValueError(f"crop {size} larger than the frame {height}x{width}")
    if spatial_idx not in (0, 1, 2):
        raise ValueError(f"spatial_idx must be 0, 1 or 2, got {spatial_idx}")
    top, left = int(math.ceil((height - size) / 2)), int(math.ceil((width - size) / 2))
    if height > width:
        top = {0: 0, 1: top, 2: height - size}[spatial_idx]
    else:
        left = {0: 0, 1: left, 2: width - size}[spatial_idx]
    return top, left


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _rand(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen, dtype=torch.float64))


def sample_resized_crop(
    height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
    gen: torch.Generator,
) -> Tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random resized crop (torchvision / SlowFast algorithm: 10
    tries of area ``scale`` x frame area and log-uniform aspect ``ratio``; else a centre crop
    with the aspect clamped to ``ratio``)."""
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * _rand(gen))
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * _rand(gen))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return _randint(gen, 0, height - h), _randint(gen, 0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# ========================================================================= float / erasing
def to_normalized_float(video: torch.Tensor, mean: Sequence[float],
                        std: Sequence[float]) -> torch.Tensor:
    """``T x C x H x W`` uint8 -> ``C x T x H x W`` float32 ``(x / 255 - mean) / std``
    (contiguous; one pass converts the type and the layout)."""
    t, c, h, w = video.shape
    out = torch.empty((c, t, h, w), dtype=torch.float32)
    out.copy_(video.permute(1, 0, 2, 3))
    m = torch.tensor([255.0 * x for x in mean], dtype=torch.float32).view(c, 1, 1, 1)
    s = torch.tensor([1.0 / (255.0 * x) for x in std], dtype=torch.float32).view(c, 1, 1, 1)
    return out.sub_(m).mul_(s)


def random_erase_(video: torch.Tensor, gen: torch.Generator, area: Tuple[float, float] = (
        0.02, 1 / 3), min_aspect: float = 0.3, mode: str = "pixel",
        attempts: int = 100) -> Optional[Tuple[int, int, int, int]]:
    """Erase one box, the same in every frame, of a normalised ``C x T x H x W`` clip in place.

    Box: area fraction uniform in ``area``, aspect log-uniform in ``[min_aspect, 1 /
    min_aspect]``; filled with N(0, 1) noise (``mode="pixel"``) or zeros (``"const"``).
    Returns ``(top, left, h, w)``, or ``None`` when no box fitted in ``attempts`` tries.
    """
    if mode not in ("pixel", "const"):
        raise ValueError(f"random erasing mode must be 'pixel' or 'const', got {mode!r}")
    c, t, height, width = video.shape
    log_r = (math.log(min_aspect), math.log(1 / min_aspect))
    for _ in range(attempts):
        target = height * width * (area[0] + (area[1] - area[0]) * _rand(gen))
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * _rand(gen))
        h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w < width and 0 < h < height:
            top, left = _randint(gen, 0, height - h), _randint(gen, 0, width - w)
            region = video[:, :, top:top + h, left:left + w]
            if mode == "pixel":
                region.copy_(torch.randn((c, t, h, w), generator=gen))
            else:
                region.zero_()
            return top, left, h, w
    return None


# ============================================================================= pipelines
def _as_clip(x: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """``T x C x H x W`` (video) or ``C x H x W`` (image) uint8 -> (``T x C x H x W``, is_image)."""
    x = x.as_subclass(torch.Tensor) if isinstance(x, tv_tensors.TVTensor) else x
    if x.dtype != torch.uint8 or x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"expected uint8 T x 3 x H x W or 3 x H x W, got {tuple(x.shape)} "
                         f"{x.dtype}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


class ClipTrainTransform:
    """Training augmentation: uint8 ``T x 3 x H x W`` -> float ``3 x T x crop x crop`` (images:
    ``3 x H x W`` -> ``3 x crop x crop``). See the module docstring for the recipe."""

    def __init__(
        self,
        crop_size: int = 224,
        jitter_scales: Tuple[int, int] = (256, 320),
        random_resized_crop: bool = False,
        rrc_scale: Tuple[float, float] = (0.08, 1.0),
        rrc_ratio: Tuple[float, float] = (0.75, 4 / 3),
        flip: bool = True,
        rand_augment: Optional[str] = None,
        random_erasing_prob: float = 0.0,
        random_erasing_mode: str = "pixel",
        mean: Sequence[float] = SLOWFAST_MEAN,
        std: Sequence[float] = SLOWFAST_STD,
    ) -> None:
        if not random_resized_crop and not crop_size <= jitter_scales[0] <= jitter_scales[1]:
            raise ValueError(f"need crop_size <= jitter_scales[0] <= jitter_scales[1], got "
                             f"{crop_size}, {jitter_scales}")
        if not 0.0 <= random_erasing_prob <= 1.0:
            raise ValueError(f"random_erasing_prob must be in [0, 1], got {random_erasing_prob}")
        self.crop_size = crop_size
        self.jitter_scales = tuple(jitter_scales)
        self.random_resized_crop = random_resized_crop
        self.rrc_scale, self.rrc_ratio = tuple(rrc_scale), tuple(rrc_ratio)
        self.flip = flip
        self.rand_augment = (VideoRandAugment(parse_rand_augment(rand_augment))
                             if rand_augment else None)
        self.random_erasing_prob = random_erasing_prob
        self.random_erasing_mode = random_erasing_mode
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, video: torch.Tensor,
                 generator: torch.Generator) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Augment one clip.

        Args:
            video: uint8 ``T x 3 x H x W`` (or an image ``3 x H x W``); not modified.
            generator: the only source of randomness.

        Returns:
            ``(clip, params)``: float ``3 x T x crop x crop`` (images ``3 x crop x crop``) and
            ``{"flipped": bool, "crop": (top, left, h, w) in the resized frame,
            "short_side": int or None, "erased": box or None}``.
        """
        clip, is_image = _as_clip(video)
        size = self.crop_size
        params: Dict[str, Any] = {"short_side": None, "erased": None}
        if self.random_resized_crop:
            box = sample_resized_crop(clip.shape[-2], clip.shape[-1], self.rrc_scale,
                                      self.rrc_ratio, generator)
            clip = F.resized_crop(clip, *box, size=[size, size], antialias=True)
        else:
            short = _randint(generator, self.jitter_scales[0], self.jitter_scales[1])
            clip = resize_short_side(clip, short)
            h, w = clip.shape[-2:]
            box = (_randint(generator, 0, h - size), _randint(generator, 0, w - size), size, size)
            clip = clip[..., box[0]:box[0] + size, box[1]:box[1] + size]
            params["short_side"] = short
        params["crop"] = box
        params["flipped"] = bool(self.flip and _rand(generator) < 0.5)
        if params["flipped"]:
            clip = clip.flip(-1)
        if self.rand_augment is not None:
            clip = self.rand_augment(clip, generator)
        out = to_normalized_float(clip, self.mean, self.std)
        if self.random_erasing_prob > 0 and _rand(generator) < self.random_erasing_prob:
            params["erased"] = random_erase_(out, generator, mode=self.random_erasing_mode)
        return (out[:, 0] if is_image else out), params


class ClipTestTransform:
    """Test preprocessing: short side -> ``short_side`` (default ``crop_size``), then the crop
    ``spatial_idx`` (0 / 1 / 2 = start / centre / end of the long side); output float
    ``3 x T x crop x crop`` (images ``3 x crop x crop``)."""

    def __init__(self, crop_size: int = 224, short_side: Optional[int] = None,
                 mean: Sequence[float] = SLOWFAST_MEAN,
                 std: Sequence[float] = SLOWFAST_STD) -> None:
        self.crop_size = crop_size
        self.short_side = crop_size if short_side is None else short_side
        if self.short_side < crop_size:
            raise ValueError(f"test short side {self.short_side} < crop size {crop_size}")
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, video: torch.Tensor, spatial_idx: int = 1) -> torch.Tensor:
        clip, is_image = _as_clip(video)
        clip = resize_short_side(clip, self.short_side)
        top, left = uniform_crop_offsets(clip.shape[-2], clip.shape[-1], self.crop_size,
                                         spatial_idx)
        clip = clip[..., top:top + self.crop_size, left:left + self.crop_size]
        out = to_normalized_float(clip, self.mean, self.std)
        return out[:, 0] if is_image else out
