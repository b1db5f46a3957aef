"""Per-iteration learning-rate schedules with PySlowFast semantics.

Follows ``slowfast/utils/lr_policy.py`` (``get_lr_at_epoch``; keys ``SOLVER.LR_POLICY``,
``BASE_LR``, ``COSINE_END_LR``, ``COSINE_AFTER_WARMUP``, ``MAX_EPOCH``, ``STEPS``, ``LRS``,
``WARMUP_EPOCHS``, ``WARMUP_START_LR``): the schedule is a function of the *fractional* epoch
``epoch + iter / iters_per_epoch``. During warm-up (``epoch < warmup_epochs``) the lr rises
linearly from ``warmup_start_lr`` to the policy's value *at* ``warmup_epochs``, so the curve is
continuous where warm-up ends. Policies:

* ``"cosine"``: ``end + (base - end) * (1 + cos(pi * (e - o) / (max_epoch - o))) / 2`` with
  ``o = warmup_epochs`` if ``cosine_after_warmup`` else 0 (SlowFast's MViT recipes use True).
* ``"steps_with_relative_lrs"``: ``base * lrs[i]`` for ``steps[i] <= e < steps[i + 1]``;
  ``steps`` starts at 0 (SlowFast's ``STEPS: [0, 94, 154, 196]``, ``LRS: [1, .1, .01, .001]``).
* ``"constant"``: ``base`` (after the warm-up); not in SlowFast, added for fine-tuning/debugging.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import torch

POLICIES = ("cosine", "steps_with_relative_lrs", "constant")


def _policy_lr(
    epoch: float,
    policy: str,
    base_lr: float,
    max_epoch: float,
    cosine_end_lr: float,
    cosine_after_warmup: bool,
    warmup_epochs: float,
    steps: Optional[Sequence[float]],
    lrs: Optional[Sequence[float]],
) -> float:
    if policy == "cosine":
        offset = warmup_epochs if cosine_after_warmup else 0.0
        t = (epoch - offset) / (max_epoch - offset)
        return cosine_end_lr + (base_lr - cosine_end_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
    if policy == "steps_with_relative_lrs":
        assert steps is not None and lrs is not None
        idx = 0
        for i, s in enumerate(steps):
            if epoch >= s:
                idx = i
        return base_lr * lrs[idx]
    return base_lr  # constant


def lr_at(
    epoch: float,
    policy: str,
    base_lr: float,
    max_epoch: float,
    cosine_end_lr: float = 0.0,
    cosine_after_warmup: bool = False,
    warmup_epochs: float = 0.0,
    warmup_start_lr: float = 0.0,
    steps: Optional[Sequence[float]] = None,
    lrs: Optional[Sequence[float]] = None,
) -> float:
    """Learning rate at fractional epoch ``epoch`` in ``[0, max_epoch]`` (SlowFast semantics).

    Args:
        epoch: ``cur_epoch + cur_iter / iters_per_epoch``.
        policy: ``"cosine"`` | ``"steps_with_relative_lrs"`` | ``"constant"``.
        base_lr: ``SOLVER.BASE_LR`` (already scaled by the number of shards if wanted).
        max_epoch: ``SOLVER.MAX_EPOCH``.
        cosine_end_lr / cosine_after_warmup: cosine policy settings.
        warmup_epochs / warmup_start_lr: linear warm-up (none when ``warmup_epochs`` is 0).
        steps / lrs: step policy: epochs where each stage starts (first 0) and relative lrs.

    Raises:
        ValueError: unknown policy, inconsistent settings or ``epoch`` outside the schedule.
    """
    validate_schedule(policy, base_lr, max_epoch, cosine_end_lr, cosine_after_warmup,
                      warmup_epochs, steps, lrs)
    if not 0.0 <= epoch <= max_epoch * (1 + 1e-9):
        raise ValueError(f"epoch {epoch} is outside the schedule [0, {max_epoch}]")
    args = (policy, base_lr, max_epoch, cosine_end_lr, cosine_after_warmup, warmup_epochs,
            steps, lrs)
    if epoch < warmup_epochs:
        lr_end = _policy_lr(warmup_epochs, *args)
        return warmup_start_lr + epoch * (lr_end - warmup_start_lr) / warmup_epochs
    return _policy_lr(epoch, *args)


def validate_schedule(
    policy: str,
    base_lr: float,
    max_epoch: float,
    cosine_end_lr: float = 0.0,
    cosine_after_warmup: bool = False,
    warmup_epochs: float = 0.0,
    steps: Optional[Sequence[float]] = None,
    lrs: Optional[Sequence[float]] = None,
) -> None:
    """Raise ``ValueError`` naming the offending setting (SOLVER.* key) if the schedule is bad."""
    if policy not in POLICIES:
        raise ValueError(f"SOLVER.LR_POLICY {policy!r} unknown; expected one of {POLICIES}")
    if max_epoch <= 0:
        raise ValueError(f"SOLVER.MAX_EPOCH must be > 0, got {max_epoch}")
    if not 0 <= warmup_epochs <= max_epoch:
        raise ValueError(f"SOLVER.WARMUP_EPOCHS {warmup_epochs} must be in [0, {max_epoch}]")
    if policy == "cosine":
        if cosine_end_lr > base_lr:
            raise ValueError(f"SOLVER.COSINE_END_LR {cosine_end_lr} > SOLVER.BASE_LR {base_lr}")
        if cosine_after_warmup and warmup_epochs >= max_epoch:
            raise ValueError("COSINE_AFTER_WARMUP needs SOLVER.WARMUP_EPOCHS < SOLVER.MAX_EPOCH")
    if policy == "steps_with_relative_lrs":
        if not steps or lrs is None or len(steps) != len(lrs):
            raise ValueError(f"SOLVER.STEPS {steps} and SOLVER.LRS {lrs} must have equal length")
        if steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"SOLVER.STEPS {list(steps)} must start at 0 and increase")


class LRScheduler:
    """Sets ``group["lr"] = lr_at(epoch) * group.get("lr_scale", 1.0)`` on every param group.

    Call :meth:`step` with the fractional epoch *before* each optimizer step. The lr depends
    only on that position, so resuming needs no state: :meth:`load_state_dict` only restores
    the last position (and re-applies its lr); the schedule settings come from the config
    given to the constructor (a resumed run may change them).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, policy: str, base_lr: float,
                 max_epoch: float, **schedule: Any) -> None:
        self.optimizer = optimizer
        self.schedule: Dict[str, Any] = dict(policy=policy, base_lr=base_lr, max_epoch=max_epoch,
                                             **schedule)
        self.last_epoch: Optional[float] = None
        self.last_lr: Optional[float] = None
        lr_at(0.0, **self.schedule)  # validate settings now, not at the first iteration

    def lr_at(self, epoch: float) -> float:
        """The base (unscaled) lr at fractional epoch ``epoch``."""
        return lr_at(epoch, **self.schedule)

    def step(self, epoch: float) -> float:
        """Apply the lr for fractional epoch ``epoch`` to all groups; returns the base lr."""
        lr = self.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.last_epoch, self.last_lr = float(epoch), lr
        return lr

    def get_last_lr(self) -> list:
        """Current lr of every param group (torch scheduler API)."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"last_epoch": self.last_epoch, "schedule": dict(self.schedule)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get("last_epoch") is not None:
            self.step(float(state["last_epoch"]))
