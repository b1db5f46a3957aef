"""Batch-wise MixUp / CutMix with label smoothing for clips and images.

Semantics follow PySlowFast ``slowfast/datasets/mixup.py`` (keys ``MIXUP.ALPHA``,
``MIXUP.CUTMIX_ALPHA``, ``MIXUP.PROB``, ``MIXUP.SWITCH_PROB``, ``MIXUP.LABEL_SMOOTH_VALUE``),
itself timm's ``Mixup`` in ``mode="batch"`` (Zhang et al., "mixup", ICLR 2018; Yun et al.,
"CutMix", ICCV 2019):

* with probability ``prob`` the batch is mixed, else ``lam = 1``; if both alphas are > 0,
  CutMix is chosen with probability ``switch_prob`` (else MixUp); ``lam ~ Beta(a, a)`` of the
  chosen method, one ``lam`` for the whole batch;
* every sample ``i`` is mixed with sample ``B - 1 - i`` (the batch flipped; the middle sample
  of an odd batch is mixed with itself);
* MixUp: ``x = lam * x + (1 - lam) * x.flip(0)``;
* CutMix: a box of side ``int(H * sqrt(1 - lam))`` x ``int(W * sqrt(1 - lam))`` around a
  uniform centre, clipped to the image, is pasted from the flipped batch into the *last two*
  dims (so it is the same box in every frame and channel of ``B x C x T x H x W`` clips);
  ``lam`` is then corrected to ``1 - box_area / (H * W)`` (timm's ``correct_lam``);
* targets: ``lam * smooth(y) + (1 - lam) * smooth(y.flip(0))`` with
  ``smooth(y) = onehot(y) * (1 - eps) + eps / K``.

Randomness: every call draws one 63-bit seed from ``generator`` (a ``torch.Generator``) or,
if None, from torch's global RNG (so ``torch.manual_seed`` / per-rank seeding make runs
reproducible), and uses it to seed a NumPy generator for the Beta / uniform draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def label_smoothed_targets(labels: torch.Tensor, num_classes: int, eps: float = 0.0,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``B`` int labels -> ``B x K`` targets: ``1 - eps + eps / K`` on the label, ``eps / K`` off.

    Raises:
        ValueError: labels not 1-D integers in ``[0, num_classes)``, or ``eps`` not in [0, 1].
    """
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} "
                         f"of shape {tuple(labels.shape)}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label smoothing must be in [0, 1], got {eps}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got min {int(labels.min())} "
                         f"max {int(labels.max())}")
    off = eps / num_classes
    out = torch.full((labels.shape[0], num_classes), off, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.long().view(-1, 1), 1.0 - eps + off)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                              reduction: str = "mean") -> torch.Tensor:
    """``sum_k -targets[b, k] * log_softmax(logits)[b, k]``, averaged over ``b`` by default.

    Args:
        logits: ``B x K``; targets: ``B x K`` (rows sum to 1); reduction: mean | sum | none.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cutmix_box(rng: np.random.Generator, height: int, width: int,
               lam: float) -> Tuple[Tuple[int, int, int, int], float]:
    """Random box ``(y0, y1, x0, x1)`` (end-exclusive) covering about ``1 - lam`` of the image.

    Returns the box and the corrected ``lam = 1 - (y1 - y0) * (x1 - x0) / (H * W)``.
    """
    ratio = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
    x0, x1 = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
    return (y0, y1, x0, x1), 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)


@dataclass
class MixDecision:
    """What one call did: ``lam`` (after box correction), CutMix or not, the box if any."""

    lam: float
    cutmix: bool
    box: Optional[Tuple[int, int, int, int]] = None


class MixUp:
    """Mix a batch and return soft targets (see the module docstring for the exact rules).

    Args:
        mixup_alpha: Beta parameter of MixUp; 0 disables MixUp.
        cutmix_alpha: Beta parameter of CutMix; 0 disables CutMix.
        prob: probability of mixing a batch at all.
        switch_prob: probability of CutMix when both are enabled.
        label_smoothing: ``eps`` of the smoothed one-hot targets.
        num_classes: ``K``.
        generator: source of randomness (see the module docstring); None = torch global RNG.

    ``__call__(x, labels)``: ``x`` is ``B x C x T x H x W`` or ``B x C x H x W`` (any float
    tensor whose last two dims are H, W), ``labels`` ``B`` int64. Returns the mixed batch (a new
    tensor; ``x`` itself when not mixed; ``x`` is never modified) and ``B x K`` float32 targets
    whose rows sum to 1.
    ``last`` holds the :class:`MixDecision` of the latest call.
    """

    def __init__(self, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.1, num_classes: int = 1000,
                 generator: Optional[torch.Generator] = None) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(
                f"MIXUP.ALPHA {mixup_alpha} / CUTMIX_ALPHA {cutmix_alpha} must be >= 0")
        for key, v in (("PROB", prob), ("SWITCH_PROB", switch_prob)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"MIXUP.{key} must be in [0, 1], got {v}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)
        self.generator = generator
        self.last: Optional[MixDecision] = None

    def _rng(self) -> np.random.Generator:
        seed = torch.randint(0, 2**63 - 1, (1,), generator=self.generator).item()
        return np.random.default_rng(int(seed))

    def _decide(self, rng: np.random.Generator, height: int, width: int) -> MixDecision:
        enabled = self.mixup_alpha > 0 or self.cutmix_alpha > 0
        if not enabled or rng.random() >= self.prob:
            return MixDecision(1.0, False)
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = bool(rng.random() < self.switch_prob)
        else:
            use_cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if not use_cutmix:
            return MixDecision(lam, False)
        box, lam = cutmix_box(rng, height, width, lam)
        return MixDecision(lam, True, box)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < 3 or x.shape[0] != labels.shape[0]:
            raise ValueError(f"x {tuple(x.shape)} must be B x ... x H x W with B = "
                             f"len(labels) = {labels.shape[0]}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a float tensor, got {x.dtype}")
        targets = label_smoothed_targets(labels, self.num_classes, self.label_smoothing)
        d = self._decide(self._rng(), x.shape[-2], x.shape[-1])
        self.last = d
        if d.lam == 1.0:
            return x, targets
        flipped = x.flip(0)
        if d.cutmix:
            y0, y1, x0, x1 = d.box  # type: ignore[misc]
            out = x.clone()
            out[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
        else:
            out = x * d.lam + flipped * (1.0 - d.lam)
        return out, targets * d.lam + targets.flip(0) * (1.0 - d.lam)
