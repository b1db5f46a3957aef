"""Clip / image classification head on a backbone's last stage."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from ..backbone.base import FeatureSpec


class ClipClassificationHead(nn.Module):
    """Pool the last feature map (or take the cls token), dropout, linear projection.

    Args:
        input_shapes: the backbone's ``output_shape()``; the last entry is classified.
        num_classes: number of outputs; 0: no projection, ``forward`` returns the pooled
            ``B x C`` features (timm's ``num_classes=0``).
        dropout: dropout before the projection.
        pool: ``"cls"`` (uses ``features["cls"]``, ``B x C``) or ``"mean"`` (average of the
            normalised map ``B x C x [T x] H x W``, i.e. LayerNorm then mean, as in
            facebookresearch/mvit and timm).

    ``forward(features) -> B x num_classes`` logits. The parameter is named ``projection``
    (SlowFast's ``head.projection``); :meth:`reset` replaces it.
    """

    def __init__(
        self,
        input_shapes: Dict[str, FeatureSpec],
        num_classes: int,
        dropout: float = 0.0,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.in_feature = list(input_shapes)[-1]
        self.pool = pool
        self.in_channels = input_shapes[self.in_feature].channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """A new, freshly initialised projection to ``num_classes`` outputs (0: none)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = int(num_classes)
        if num_classes == 0:
            self.projection: nn.Module = nn.Identity()
            return
        device = None
        old = getattr(self, "projection", None)
        if isinstance(old, nn.Linear):
            device = old.weight.device
        self.projection = nn.Linear(self.in_channels, num_classes, device=device)
        nn.init.trunc_normal_(self.projection.weight, std=0.02)
        nn.init.zeros_(self.projection.bias)

    def pooled(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``B x C`` clip embedding before dropout and projection."""
        if self.pool == "cls":
            if "cls" not in features:
                raise KeyError("pool='cls' needs a backbone with a cls token (features['cls'])")
            return features["cls"]
        return features[self.in_feature].flatten(2).mean(-1)

    def forward(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.projection(self.dropout(self.pooled(features)))
