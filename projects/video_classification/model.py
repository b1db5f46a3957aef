"""The classification model as the engine sees it: batch dict in, losses or logits out."""
from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn.functional as F

from mvit_tasks.modeling.meta_arch.classifier import Classifier


class ClipClassifier(Classifier):
    """:class:`Classifier` (keys ``backbone.*`` / ``head.*``) with the engine's batch I/O.

    ``forward(batch)``: ``batch["video"]`` is ``B x 3 x T x H x W`` (``B x 3 x H x W`` for
    images). Training returns ``{"loss_cls": scalar}`` (soft-target cross-entropy when the
    batch carries ``"soft_target"`` ``B x K`` from mixup, else cross-entropy with
    ``label_smoothing``); evaluation returns ``{"logits": B x K}`` (float32).
    """

    label_smoothing: float = 0.0

    def forward(self, batch: Any) -> Dict[str, torch.Tensor]:  # type: ignore[override]
        if isinstance(batch, torch.Tensor):  # plain tensor use, like the parent class
            return self.head(self.backbone(batch))
        logits = self.head(self.backbone(batch["video"]))
        if not self.training:
            return {"logits": logits.float()}
        if "soft_target" in batch:
            target = batch["soft_target"]
            loss = torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        else:
            loss = F.cross_entropy(logits.float(), batch["label"],
                                   label_smoothing=self.label_smoothing)
        return {"loss_cls": loss}
