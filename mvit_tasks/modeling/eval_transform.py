"""The eval preprocessing of a pretrained model (torchvision's ``weights.transforms()`` habit).

``create_transform(model.pretrained_cfg)`` or ``get_variant(name).transforms()`` gives an
:class:`EvalTransform`: values to float in [0, 1], short side resized to ``resize_size``, a
centre crop of ``crop_size``, then ``(x - mean) / std``. It reproduces the single-view test
preprocessing of the page the weights come from (SlowFast: bilinear without antialias and
``ceil`` crop offsets; torchvision: the same resize, ``round`` offsets; facebookresearch/mvit
and timm: bicubic, antialiased, ``round``). Multi-view testing (several clips x 3 crops) is the
evaluation protocol's job; this is its centre view.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, Tuple

import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

_MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


class EvalTransform(nn.Module):
    """Eval preprocessing of frames or images.

    Video (``video=True``): ``T x C x H x W`` or ``B x T x C x H x W`` (the layout of
    ``torchvision.io.read_video(..., output_format="TCHW")`` / decoded frames, frames already
    sampled every ``sampling_rate`` frames) -> ``C x T x crop x crop`` or
    ``B x C x T x crop x crop``, the model's input layout.

    Images (``video=False``): ``C x H x W`` or ``B x C x H x W`` -> ``[B x] C x crop x crop``.

    Inputs are uint8 (0-255) or float (0-1); ``C`` is 3 (RGB).
    """

    def __init__(self, crop_size: int, resize_size: int, mean: Sequence[float],
                 std: Sequence[float], interpolation: str = "bilinear", antialias: bool = False,
                 crop_rounding: str = "ceil", video: bool = True) -> None:
        super().__init__()
        if interpolation not in _MODES:
            raise ValueError(f"interpolation must be one of {sorted(_MODES)}, got "
                             f"{interpolation!r}")
        if crop_rounding not in ("ceil", "round"):
            raise ValueError(f"crop_rounding must be 'ceil' or 'round', got {crop_rounding!r}")
        if resize_size < crop_size:
            raise ValueError(f"resize_size {resize_size} < crop_size {crop_size}")
        self.crop_size, self.resize_size = int(crop_size), int(resize_size)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.interpolation, self.antialias = interpolation, bool(antialias)
        self.crop_rounding, self.video = crop_rounding, bool(video)

    def _offsets(self, h: int, w: int) -> Tuple[int, int]:
        c = self.crop_size
        if self.crop_rounding == "ceil":  # SlowFast uniform_crop(spatial_idx=1)
            return int(math.ceil((h - c) / 2)), int(math.ceil((w - c) / 2))
        return int(round((h - c) / 2.0)), int(round((w - c) / 2.0))  # torchvision center_crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (4, 5) if self.video else (3, 4)
        if x.ndim not in expected or x.shape[-3] != 3:
            layout = "[B x] T x 3 x H x W" if self.video else "[B x] 3 x H x W"
            raise ValueError(f"expected {layout}, got {tuple(x.shape)}")
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = F.resize(x, [self.resize_size], interpolation=_MODES[self.interpolation],
                     antialias=self.antialias)
        h, w = x.shape[-2:]
        if min(h, w) < self.crop_size:
            raise ValueError(f"resized frames {h} x {w} are smaller than the crop "
                             f"{self.crop_size}")
        top, left = self._offsets(h, w)
        x = x[..., top:top + self.crop_size, left:left + self.crop_size]
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        x = ((x - mean) / std).reshape(*lead, 3, self.crop_size, self.crop_size)
        if self.video:  # [B x] T x C x H x W -> [B x] C x T x H x W
            x = x.transpose(-4, -3).contiguous()
        return x

    def extra_repr(self) -> str:
        return (f"resize_size={self.resize_size}, crop_size={self.crop_size}, "
                f"interpolation={self.interpolation}, antialias={self.antialias}, "
                f"crop_rounding={self.crop_rounding}, mean={self.mean}, std={self.std}, "
                f"video={self.video}")


def create_transform(pretrained_cfg: Mapping[str, Any]) -> EvalTransform:
    """The :class:`EvalTransform` of a ``pretrained_cfg`` (``model.pretrained_cfg`` or
    ``get_variant(name).pretrained_cfg(tag)``)."""
    cfg = pretrained_cfg
    if cfg.get("task") == "detection-backbone":
        raise ValueError("detection backbones have no classification eval transform: the COCO "
                         "task's model resizes its inputs itself (COCO.INPUT.TEST_*)")
    size = cfg["input_size"]
    return EvalTransform(
        crop_size=int(size[-1]), resize_size=int(cfg["resize_size"]), mean=cfg["mean"],
        std=cfg["std"], interpolation=cfg.get("interpolation", "bilinear"),
        antialias=bool(cfg.get("antialias", False)),
        crop_rounding=cfg.get("crop_rounding", "ceil"), video=len(size) == 4)
