"""The training loop: a small step loop without configuration; hooks carry everything else.

The shape is detectron2's ``SimpleTrainer`` + ``HookBase`` (``detectron2/engine/train_loop.py``)
with epochs: :class:`TrainLoop` owns the position (``iteration`` = optimizer steps done,
``epoch``, ``batch_in_epoch``) and :meth:`TrainLoop.run_step`; LR schedule, checkpoints,
evaluation, writers, EMA and the failure budget are hooks (:mod:`mvit_tasks.engine.hooks`),
called in order at ``before_train``, ``before_step``, ``after_backward``, ``after_step``,
``after_epoch``, ``after_train`` (see :class:`mvit_tasks.tasks.base.HookBase`).

One step consumes ``accum_steps`` micro-batches. Each micro-batch's loss is weighted by this
rank's share of the micro-batch's readable samples (all ranks), so that N processes give the
gradient of one process on the same samples, also when some samples could not be read. Every
rank takes part in every collective of a step: a rank whose micro-batch has no readable sample
back-propagates a zero loss over all parameters (DDP's reducer sees every parameter), and a
micro-batch without any readable sample on any rank is skipped by all ranks alike.

Epoch end is a lifecycle that survives a kill: the hooks whose ``after_epoch`` has not
returned yet are ``pending`` (saved in every checkpoint); after a resume, :meth:`train` first
calls the pending ones.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mvit_tasks.tasks.base import HookBase
from mvit_tasks.utils import comm

from .evaluation import autocast, to_device

logger = logging.getLogger(__name__)

EVENTS = ("before_train", "before_step", "after_backward", "after_step", "after_epoch",
          "after_train")  # what a hook may implement (mvit_tasks.tasks.base.HookBase)


@dataclass
class StepStats:
    """What the last step read: this rank's mean loss terms (``{name: float}``), and the
    readable / unreadable sample counts of all ranks; ``skipped_here`` lists this rank's
    unreadable ``(path, reason)``."""

    losses: Dict[str, float] = field(default_factory=dict)
    samples: int = 0
    skipped: int = 0
    skipped_here: List[Tuple[str, str]] = field(default_factory=list)


class ZeroLossWhenEmpty(nn.Module):
    """The module DDP wraps: ``model(batch)``, or for ``batch=None`` (this rank read no sample)
    ``{"loss_no_samples": 0 * sum of all trainable parameters}``, which gives every parameter a
    zero gradient and so keeps DDP's all-reduces (and buffer broadcast) in step with the other
    ranks. Collectives inside the model's own forward (``SyncBatchNorm``) are not run on that
    path: such models need a readable sample on every rank."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Optional[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        if batch is not None:
            return self.model(batch)
        zero = sum(p.sum() * 0.0 for p in self.model.parameters() if p.requires_grad)
        return {"loss_no_samples": zero}


def hook_keys(hooks: Sequence[Any]) -> List[str]:
    """Names of the hooks in checkpoints: the class name, ``#2``, ``#3`` ... for repeats."""
    keys: List[str] = []
    seen: Dict[str, int] = {}
    for h in hooks:
        name = type(h).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


class TrainLoop:
    """Steps of forward / backward / optimizer update over ``data``, with hooks.

    Args:
        model: the model (unwrapped); in train mode ``model(batch)`` returns a dict of losses.
        data: ``data(epoch, start)`` -> this rank's micro-batches of ``epoch`` from micro-batch
            ``start`` on (batch dicts with ``num_samples`` and ``skipped``, see
            :class:`mvit_tasks.tasks.base.Task`).
        optimizer: optimizer over ``model``'s parameters.
        scaler: ``torch.amp.GradScaler`` (fp16) or None.
        precision: autocast of the forward pass: ``none`` | ``bf16`` | ``fp16``.
        steps_per_epoch: optimizer steps in one epoch.
        accum_steps: micro-batches per optimizer step.
        device: where batches go (default: the device of the model's first parameter).
        batch_transform: applied to each batch on the device (e.g. mixup), or None.
        find_unused_parameters: passed to DDP (used with more than one process).
    """

    def __init__(self, model: nn.Module, data: Callable[[int, int], Iterable[Dict[str, Any]]],
                 optimizer: torch.optim.Optimizer, scaler: Optional[Any] = None,
                 precision: str = "none", steps_per_epoch: int = 1, accum_steps: int = 1,
                 device: Optional[torch.device] = None,
                 batch_transform: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
                 find_unused_parameters: bool = False) -> None:
        self.model, self.data, self.optimizer, self.scaler = model, data, optimizer, scaler
        self.precision, self.batch_transform = precision, batch_transform
        self.steps_per_epoch, self.accum_steps = steps_per_epoch, accum_steps
        self.device = device or next(model.parameters()).device
        self.world = comm.get_world_size()
        self.wrapped: nn.Module = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(ZeroLossWhenEmpty(model), device_ids=ids,
                                                   find_unused_parameters=find_unused_parameters)
        self.iteration, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.max_iter = 0
        self.pending: List[str] = []  # keys of the hooks whose after_epoch is not done
        self.last_step = StepStats()
        # samples tried and unreadable so far (all ranks); this rank's unreadable ones
        self.seen, self.num_skipped = 0, 0
        self.skipped: List[Tuple[str, str]] = []
        self.hooks: List[Any] = []
        self.writers: List[Any] = []  # objects with write(record): see log()
        self._keys: List[str] = []

    # ------------------------------------------------------------------------------ hooks
    def register_hooks(self, hooks: Sequence[Optional[Any]]) -> None:
        """Append ``hooks`` (None entries are left out); they run in this order."""
        self.hooks += [h for h in hooks if h is not None]
        self._keys = hook_keys(self.hooks)

    def call_hooks(self, event: str) -> None:
        """Call ``event`` (one of :data:`EVENTS`) of every hook that has it, in order."""
        if event not in EVENTS:
            raise ValueError(f"unknown hook event {event!r}; expected one of {EVENTS}")
        for h in self.hooks:
            method = getattr(h, event, None)
            if method is not None:
                method(self)

    def log(self, record: Dict[str, Any]) -> None:
        """Hand a metrics record (``{"iteration": int, ...}``) to every writer."""
        for w in self.writers:
            w.write(record)

    def mark_done(self, hook: Any) -> None:
        """Record that ``hook``'s epoch-end work is done (before its ``after_epoch`` returns,
        for a hook that writes a checkpoint which should not list it as pending)."""
        key = self._keys[self.hooks.index(hook)]
        if key in self.pending:
            self.pending.remove(key)

    def _epoch_hooks(self) -> List[str]:
        return [k for k, h in zip(self._keys, self.hooks)
                if callable(getattr(h, "after_epoch", None))
                and getattr(type(h), "after_epoch", None) is not HookBase.after_epoch]

    # ------------------------------------------------------------------------------- loop
    def epoch_float(self) -> float:
        """Epochs done, fractional: ``epoch + batch_in_epoch / steps_per_epoch``."""
        return self.epoch + self.batch_in_epoch / self.steps_per_epoch

    def train(self, max_iter: Optional[int] = None) -> Any:
        """Train from the current position until ``iteration == max_iter`` (default: the
        ``max_iter`` attribute)."""
        self.max_iter = max_iter or self.max_iter
        self.call_hooks("before_train")
        if self.pending:  # an interrupted epoch end: finish it first
            logger.info("finishing the end of epoch %d: %s", self.epoch, ", ".join(self.pending))
            self._end_epoch()
        while self.iteration < self.max_iter:
            self._train_epoch()
        self.call_hooks("after_train")

    def _train_epoch(self) -> None:
        self.wrapped.train()
        batches = iter(self.data(self.epoch, self.batch_in_epoch * self.accum_steps))
        while self.batch_in_epoch < self.steps_per_epoch and self.iteration < self.max_iter:
            self.call_hooks("before_step")
            self.run_step(batches)
            self.iteration += 1
            self.batch_in_epoch += 1
            self.call_hooks("after_step")
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self.pending = self._epoch_hooks()
            self._end_epoch()

    def _end_epoch(self) -> None:
        for key, h in zip(self._keys, self.hooks):
            if key in self.pending:
                h.after_epoch(self)
                self.mark_done(h)

    def run_step(self, batches: Iterator[Dict[str, Any]]) -> None:
        """``accum_steps`` micro-batches forward + backward, ``after_backward``, one update."""
        stats = StepStats()
        for _ in range(self.accum_steps):
            self._micro_step(next(batches), stats)
        self.last_step = stats
        self.seen += stats.samples + stats.skipped
        self.num_skipped += stats.skipped
        self.skipped += stats.skipped_here
        self.call_hooks("after_backward")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _micro_step(self, batch: Dict[str, Any], stats: StepStats) -> None:
        here, total = self._count(batch, stats)
        if total == 0:  # no rank has a sample: all skip (no collective to keep in step)
            return
        loss = self._loss(batch, stats) if here else self.wrapped(None)["loss_no_samples"]
        weight = here * self.world / total  # this rank's share; exactly 1 when even
        if weight != 1.0:
            loss = loss * weight
        loss = loss / self.accum_steps
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _count(self, batch: Dict[str, Any], stats: StepStats) -> Tuple[int, int]:
        """Adds the micro-batch's counts (all ranks) to ``stats``; returns this rank's and all
        ranks' readable samples (a collate without ``num_samples`` counts as 1 for both)."""
        skipped = [tuple(s) for s in batch.get("skipped", [])]
        readable = batch.get("num_samples")
        here = 1 if readable is None else int(readable)
        counts = [here, int(readable or 0), len(skipped)]
        if self.world > 1:  # every rank, every micro-batch
            t = torch.tensor(counts, dtype=torch.int64, device=self.device)
            torch.distributed.all_reduce(t)
            counts = t.tolist()
        stats.samples, stats.skipped = stats.samples + counts[1], stats.skipped + counts[2]
        stats.skipped_here += skipped
        return here, counts[0]

    def _loss(self, batch: Dict[str, Any], stats: StepStats) -> torch.Tensor:
        loss_dict = self._forward(batch)
        loss = sum(loss_dict.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at iteration {self.iteration} "
                                     f"(epoch {self.epoch}): {loss_dict}")
        for k, v in loss_dict.items():
            stats.losses[k] = stats.losses.get(k, 0.0) + float(v.detach()) / self.accum_steps
        return loss

    def _forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        batch = to_device(batch, self.device, non_blocking=True)
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        with autocast(self.device, self.precision):
            return self.wrapped(batch)

    # ---------------------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        """Weights, optimizer, scaler, position, pending epoch-end work, sample counts, hooks'
        state (call on every rank: the skipped lists are gathered)."""
        hooks = {k: h.state_dict() for k, h in zip(self._keys, self.hooks)
                 if callable(getattr(h, "state_dict", None))}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "iteration": self.iteration, "pending": list(self.pending),
                "seen": self.seen, "skipped": comm.gather_list(self.skipped),
                "hooks": {k: v for k, v in hooks.items() if v}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (pending work of hooks that no longer exist is
        dropped with a warning)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.iteration = state["epoch"], state["iteration"]
        self.batch_in_epoch = state["batch_in_epoch"]
        # the skipped files so far are kept once (on rank 0), so that gathering lists each once
        skipped = [tuple(s) for s in state.get("skipped", [])]
        self.skipped = skipped if comm.is_main_process() else []
        self.seen, self.num_skipped = state.get("seen", 0), len(skipped)
        self.pending = [k for k in state.get("pending", []) if k in self._keys]
        lost = [k for k in state.get("pending", []) if k not in self._keys]
        if lost:
            logger.warning("the checkpoint's pending epoch-end work %s has no hook here; "
                           "skipped", lost)
        saved = state.get("hooks", {})
        for k, h in zip(self._keys, self.hooks):
            if k in saved and callable(getattr(h, "load_state_dict", None)):
                h.load_state_dict(saved[k])
