"""Backbone + classification head: the model ``create_model`` returns.

It follows timm's model conventions where they fit a multi-scale backbone:
``forward_features(x)`` (the backbone's dict of maps), ``forward_head(features,
pre_logits=False)``, ``reset_classifier(n)``, ``get_classifier()``, ``num_classes``,
``num_features`` and ``pretrained_cfg`` (set by ``create_model``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from ..backbone.base import Backbone
from ..backbone.mvit import MViT
from ..backbone.arch import MViTArch
from ..heads.classification import ClipClassificationHead


class Classifier(nn.Module):
    """``forward(x)`` maps ``B x 3 x T x H x W`` video or ``B x 3 x H x W`` images to
    ``B x num_classes`` logits (train and eval mode alike; apply softmax yourself); with
    ``num_classes == 0`` (``create_model(..., num_classes=0)`` / ``reset_classifier(0)``) to
    the pooled ``B x num_features`` features.

    State-dict keys: ``backbone.*`` and ``head.*``.
    """

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        #: timm-style description of the weights and their eval preprocessing
        #: (:meth:`ModelVariant.pretrained_cfg`); ``{}`` unless set by ``create_model``.
        self.pretrained_cfg: Dict[str, Any] = {}

    @property
    def default_cfg(self) -> Dict[str, Any]:  # timm's older name
        return self.pretrained_cfg

    @property
    def num_classes(self) -> int:
        return int(getattr(self.head, "num_classes", 0))

    @property
    def num_features(self) -> int:
        """Channels ``C`` of the pooled features the projection takes."""
        return int(getattr(self.head, "in_channels", 0))

    def forward_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The backbone's feature maps: ``{"scale5": B x C x [T' x] H' x W'}`` (only the last
        stage is computed) plus ``"cls"`` (``B x C``) for models with a cls token."""
        return self.backbone(x)

    def forward_head(self, features: Dict[str, torch.Tensor],
                     pre_logits: bool = False) -> torch.Tensor:
        """``B x num_classes`` logits of :meth:`forward_features`' output; ``pre_logits``:
        the pooled ``B x num_features`` embedding (before dropout and projection)."""
        if pre_logits:
            return self.head.pooled(features)
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final projection (``nn.Identity`` when ``num_classes == 0``)."""
        return self.head.projection

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the projection by a new one to ``num_classes`` outputs (0: pooled
        features out); the backbone is unchanged."""
        self.head.reset(num_classes)
        if self.pretrained_cfg:
            self.pretrained_cfg = dict(self.pretrained_cfg, num_classes=num_classes,
                                       label_names=None)

    @classmethod
    def from_arch(
        cls,
        arch: MViTArch,
        num_classes: int,
        dropout: float = 0.0,
        pool: Optional[str] = None,
    ) -> "Classifier":
        """Build an MViT classifier; only the last stage is computed as an output.

        ``pool`` defaults to ``"cls"`` when the architecture has a cls token, else ``"mean"``.
        """
        last = arch.stage_names()[-1]
        backbone = MViT(arch.replace(out_features=(last,)))
        pool = pool or ("cls" if arch.cls_embed else "mean")
        head = ClipClassificationHead(backbone.output_shape(), num_classes, dropout, pool)
        return cls(backbone, head)
