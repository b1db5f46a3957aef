"""Backbone contract: named multi-scale feature maps plus their geometry.

Heads and necks size themselves from :meth:`Backbone.output_shape` (channels and strides), never
from config arithmetic (detectron2's ``ShapeSpec`` idea, extended with a temporal stride).
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Dict

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureSpec:
    """Geometry of one feature map.

    Attributes:
        channels: C of the map.
        stride: spatial stride w.r.t. the input pixels (H_in / H_map).
        temporal_stride: frame stride w.r.t. the input frames (1 for images).
    """

    channels: int
    stride: int
    temporal_stride: int = 1


class Backbone(nn.Module, metaclass=ABCMeta):
    """Head-less feature extractor.

    ``forward(x)`` takes ``B x 3 x T x H x W`` video or ``B x 3 x H x W`` images and returns a
    ``Dict[str, Tensor]`` of feature maps shaped ``B x C x T' x H' x W'`` (or ``B x C x H' x W'``)
    whose names and geometry are given by :meth:`output_shape`.
    """

    @abstractmethod
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:  # pragma: no cover
        ...

    @abstractmethod
    def output_shape(self) -> Dict[str, FeatureSpec]:  # pragma: no cover
        ...

    @property
    def size_divisibility(self) -> int:
        """Input H/W must be a multiple of this (0: any size)."""
        return 0
