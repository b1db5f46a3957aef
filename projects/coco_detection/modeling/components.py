"""torchvision detection parts with detectron2's geometry, for detectron2-trained weights.

Two small subclasses of torchvision modules; everything else in the detector is torchvision's.

* :class:`FixedStrideAnchorGenerator` (a torchvision ``AnchorGenerator``): detectron2's
  ``DefaultAnchorGenerator`` (``offset=0``) places the anchors of level ``k`` every ``stride_k``
  pixels with cell anchors that are *not* rounded. torchvision rounds the cell anchors to whole
  pixels and infers each stride as ``padded_size // grid_size``, which is wrong for ``p6`` when the
  padded size is not a multiple of 64 (an 800-px side gives stride 61 instead of 64).
* :class:`FixedScaleRoIAlign` (a torchvision ``MultiScaleRoIAlign``): detectron2's ``ROIPooler``
  with ``ROIAlignV2`` (``aligned=True``: pixel centres at +0.5, no 1-pixel minimum RoI size) and
  scales ``1 / stride`` taken from the FPN's ``output_shape()``; torchvision's pooler always
  uses ``aligned=False`` and infers its scales from the first batch it sees. The level of a box
  is torchvision's ``LevelMapper`` (FPN paper eq. 1, canonical 224 px at level 4, as detectron2).
"""
from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import LevelMapper


class FixedStrideAnchorGenerator(AnchorGenerator):
    """Anchors on fixed per-level strides (detectron2 ``DefaultAnchorGenerator``, offset 0).

    Args:
        sizes: anchor sizes per level, e.g. ``((32,), (64,), (128,), (256,), (512,))``.
        aspect_ratios: height / width ratios per level (the same for all levels if flat).
        strides: pixel stride of every level (the FPN's ``output_shape()`` strides).
        round_cell_anchors: round the zero-centred cell anchors to whole pixels (torchvision's
            behaviour); ``False`` is detectron2's.

    ``forward(image_list, feature_maps)`` returns one ``sum_k(H_k * W_k * A) x 4`` tensor of
    ``(x1, y1, x2, y2)`` anchors per image, ordered level, row, column, cell anchor (the order of
    the ``RPNHead`` outputs, in torchvision and detectron2 alike).
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[int]],
        aspect_ratios: Sequence[Sequence[float]],
        strides: Sequence[int],
        round_cell_anchors: bool = False,
    ) -> None:
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(a) for a in aspect_ratios))
        if len(strides) != len(self.sizes):
            raise ValueError(f"{len(strides)} strides for {len(self.sizes)} anchor levels")
        self.strides = [int(s) for s in strides]
        self.round_cell_anchors = round_cell_anchors
        self.cell_anchors = [
            self._cell_anchors(s, a) for s, a in zip(self.sizes, self.aspect_ratios)
        ]

    def _cell_anchors(self, sizes: Sequence[int], ratios: Sequence[float]) -> Tensor:
        """``A x 4`` zero-centred anchors in detectron2's order (size-major, then ratio; the same
        as torchvision's when a level has one size), computed in float64 like detectron2
        (``w = sqrt(size^2 / ratio)``, ``h = ratio * w``)."""
        rows = []
        for size in sizes:
            for ratio in ratios:
                w = math.sqrt(size * size / ratio)
                h = ratio * w
                rows.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        anchors = torch.tensor(rows, dtype=torch.float64)
        return (anchors.round() if self.round_cell_anchors else anchors).float()

    def forward(self, image_list: ImageList, feature_maps: List[Tensor]) -> List[Tensor]:
        if len(feature_maps) != len(self.strides):
            raise ValueError(
                f"anchor generator has {len(self.strides)} levels but got {len(feature_maps)} maps"
            )
        grid_sizes = [list(f.shape[-2:]) for f in feature_maps]
        device = feature_maps[0].device
        strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in self.strides]
        self.set_cell_anchors(feature_maps[0].dtype, device)
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides))
        return [anchors for _ in image_list.image_sizes]


class FixedScaleRoIAlign(MultiScaleRoIAlign):
    """Multi-level RoIAlign with fixed ``1 / stride`` scales (detectron2 ``ROIPooler``).

    Args:
        featmap_names: the pyramid levels to pool from, finest first (``["p2", ..., "p5"]``).
        strides: their strides (``[4, 8, 16, 32]``).
        output_size: pooled size (7 for boxes, 14 for masks).
        sampling_ratio: sampling points per bin; ``<= 0`` is adaptive (detectron2's 0).
        aligned: ``True`` = detectron2 ``ROIAlignV2``; ``False`` = torchvision's default.

    ``forward(features, boxes, image_shapes)``: ``boxes`` is a list of ``N_i x 4`` ``(x1, y1, x2,
    y2)`` tensors in padded-image pixels; returns ``sum(N_i) x C x out x out``.
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        strides: Sequence[int],
        output_size: int,
        sampling_ratio: int = 0,
        aligned: bool = True,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__(list(featmap_names), output_size, sampling_ratio,
                         canonical_scale=canonical_scale, canonical_level=canonical_level)
        if len(strides) != len(featmap_names):
            raise ValueError(f"{len(strides)} strides for feature maps {list(featmap_names)}")
        levels = [int(round(math.log2(s))) for s in strides]
        if any(2**k != s for k, s in zip(levels, strides)) or levels != list(
            range(levels[0], levels[0] + len(levels))
        ):
            raise ValueError(f"strides must be consecutive powers of two, got {list(strides)}")
        self.aligned = aligned
        self.scales = [1.0 / s for s in strides]
        self.map_levels = LevelMapper(levels[0], levels[-1], canonical_scale, canonical_level)

    def forward(self, x, boxes: List[Tensor], image_shapes) -> Tensor:  # type: ignore[override]
        feats = [x[name] for name in self.featmap_names]
        rois = torch.cat(
            [torch.cat((torch.full_like(b[:, :1], i), b), dim=1) for i, b in enumerate(boxes)]
        )
        levels = self.map_levels(boxes)
        out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1]) + self.output_size)
        for level, (feat, scale) in enumerate(zip(feats, self.scales)):
            idx = torch.where(levels == level)[0]
            pooled = roi_align(feat, rois[idx], self.output_size, scale, self.sampling_ratio,
                               self.aligned)
            out[idx] = pooled.to(out.dtype)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
                f"scales={self.scales}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})")
