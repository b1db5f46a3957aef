"""Backbone + classification head: the model ``create_model`` returns."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from ..backbone.base import Backbone
from ..backbone.mvit import MViT
from ..backbone.arch import MViTArch
from ..heads.classification import ClipClassificationHead


class Classifier(nn.Module):
    """``forward(x)`` maps ``B x 3 x T x H x W`` video or ``B x 3 x H x W`` images to
    ``B x num_classes`` logits (train and eval mode alike; apply softmax yourself).

    State-dict keys: ``backbone.*`` and ``head.*``.
    """

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

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
