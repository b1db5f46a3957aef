"""The engine's hooks: LR schedule, gradient clipping, EMA, metrics writers, evaluation + best,
plots, checkpoints, final report, failure budget.

Shapes follow detectron2's ``detectron2/engine/hooks.py`` (``LRScheduler``,
``PeriodicCheckpointer``, ``EvalHook``, ``BestCheckpointer``, ``PeriodicWriter``); each hook takes
plain arguments (no config: :func:`mvit_tasks.engine.defaults.build_hooks` maps ``cfg`` to
them) and works on a :class:`~mvit_tasks.engine.train_loop.TrainLoop` (the
:class:`~mvit_tasks.engine.trainer.Trainer` adds ``save_checkpoint``, ``commit``, ``test`` and
the run's results).

Epoch-end order (see ``build_hooks``): ``MetricsWriter`` logs the epoch record,
``Evaluation`` saves ``last.pth`` with the rest of the epoch-end work pending, evaluates and
updates ``best``, ``Plots`` and the task's hooks run, ``Checkpoints`` writes
``epoch_NNNN.pth``, ``best.pth`` and ``last.pth`` with nothing pending. A kill anywhere in
between is finished by ``--resume`` (the pending hooks are called again).
"""
from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import statistics
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

import torch

from mvit_tasks.evaluation import primary_metric
from mvit_tasks.tasks.base import HookBase
from mvit_tasks.utils import comm
from mvit_tasks.utils.fileio import atomic_write_text, dumps_json

from .ema import ModelEMA
from .evaluation import TooManyFailuresError
from .events import (ITERATIONS_FILE, SMOOTHING_WINDOW, JSONLWriter, TensorBoardWriter,
                     plot_metrics, read_iterations)
from .lr_scheduler import LRScheduler
from .progress import ProgressBar

logger = logging.getLogger(__name__)

__all__ = ["HookBase", "LRSchedule", "GradClip", "EMAUpdate", "MetricsWriter", "Evaluation",
           "Plots", "Checkpoints", "FinalReport", "FailureBudget"]


class LRSchedule(HookBase):
    """Sets the LR of the coming step from the fractional epoch (PySlowFast: per iteration)."""

    def __init__(self, scheduler: LRScheduler) -> None:
        self.scheduler = scheduler

    def before_step(self, trainer: Any) -> None:
        self.scheduler.step(trainer.epoch_float())


class GradClip(HookBase):
    """Clips the gradients' global L2 norm to ``max_norm`` (after unscaling fp16 gradients)."""

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def after_backward(self, trainer: Any) -> None:
        if trainer.scaler is not None:
            trainer.scaler.unscale_(trainer.optimizer)
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), self.max_norm)


class EMAUpdate(HookBase):
    """Updates the EMA of the weights after every optimizer step."""

    def __init__(self, ema: ModelEMA) -> None:
        self.ema = ema

    def after_step(self, trainer: Any) -> None:
        self.ema.update(trainer.model)


class MetricsWriter(HookBase):
    """``metrics.jsonl`` + ``iterations.jsonl`` + TensorBoard + the progress line (main
    process).

    Logs ``{"iteration", "epoch", "lr", "loss", <loss terms>, "time_per_iter"}`` every
    ``log_period`` steps (and at the last one), ``{"iteration", "epoch", "skipped_total"}`` at
    each epoch end, and whatever ``trainer.log`` receives. As detectron2's ``metrics.json``,
    ``loss`` and the loss terms are the medians of the last ``window`` iterations' values
    (``SmoothedValue``; 6 significant digits), ``lr`` is the step's. ``iterations.jsonl``
    keeps every iteration's values compactly, one line per log period (and epoch end):
    ``{"iteration": last, "start": first, "lr": [...], "loss": [...], <term>: [...]}``
    (null where a step had no loss), for the plots of :mod:`.events`.

    Checkpoints record how many records ``metrics.jsonl`` holds (and the values not yet in
    ``iterations.jsonl``); on resume the later ones are dropped (``iterations.jsonl``: the
    lines after the checkpoint's iteration) and the window is rebuilt from the files, so a
    resumed run writes what an uninterrupted one does; a new run starts new files.
    """

    def __init__(self, output_dir: str, log_period: int, tensorboard: bool = True,
                 window: int = SMOOTHING_WINDOW) -> None:
        self.path = os.path.join(output_dir, "metrics.jsonl")
        self.iter_path = os.path.join(output_dir, ITERATIONS_FILE)
        self.tb_dir = os.path.join(output_dir, "tensorboard") if tensorboard else None
        self.log_period = max(1, log_period)
        self.window = max(1, window)
        self.jsonl: Optional[JSONLWriter] = None
        self.iters: Optional[JSONLWriter] = None
        self.tb: Optional[TensorBoardWriter] = None
        self.progress: Optional[ProgressBar] = None
        self._resume_records: Optional[int] = None
        self._pending: List[Tuple[int, Dict[str, float]]] = []  # (iteration, values) unwritten
        self._recent: Dict[str, Deque[float]] = {}  # the window of each loss
        self._t_last = 0.0

    def before_train(self, trainer: Any) -> None:
        if self not in trainer.writers:
            trainer.writers.append(self)
        if not comm.is_main_process():
            return
        it = trainer.iteration
        self.jsonl = JSONLWriter(self.path)
        if self._resume_records is not None:
            self.jsonl.truncate_to(self._resume_records)
        elif it:  # a checkpoint that did not count the records
            self.jsonl.truncate_after(it)
        elif self.jsonl.truncate_to(0):
            logger.info("a new run: %s of an earlier one started afresh", self.path)
        self.iters = JSONLWriter(self.iter_path)
        if it:
            self.iters.truncate_after(it)
        else:
            self.iters.truncate_to(0)
            self._pending = []
        self._rebuild_window()
        if self.tb_dir is not None:
            # purge_step hides events an interrupted run logged after its last checkpoint
            self.tb = TensorBoardWriter(self.tb_dir, purge_step=it + 1 if it else None)
        self.progress = ProgressBar(max(trainer.max_iter, 1),
                                    start_iter=min(it, max(trainer.max_iter, 1)),
                                    log_period=self.log_period)
        self._t_last = time.time()

    def _rebuild_window(self) -> None:
        """The last ``window`` values of each loss, from ``iterations.jsonl`` and the values
        not yet written (a resumed run continues the medians of the interrupted one)."""
        self._recent = {}
        series = read_iterations(self.iter_path) if self.iters and self.iters.num_records else {}
        for key, (_, ys) in series.items():
            if key != "lr":
                self._recent[key] = collections.deque(ys[-self.window:], maxlen=self.window)
        for _, values in self._pending:
            self._push(values)

    def _push(self, values: Dict[str, float]) -> None:
        for key, v in values.items():
            if key != "lr":
                self._recent.setdefault(
                    key, collections.deque(maxlen=self.window)).append(v)

    def after_step(self, trainer: Any) -> None:
        if self.progress is None:
            return
        now, it = time.time(), trainer.iteration
        losses = trainer.last_step.losses
        lr = trainer.optimizer.param_groups[0]["lr"]
        self.progress.update(it, epoch=trainer.epoch, **losses, lr=lr)
        values = {"lr": lr}
        if losses:  # a step whose samples were all unreadable here has none
            values.update(loss=sum(losses.values()), **losses)
        values = {k: float(f"{float(v):.6g}") for k, v in values.items()}
        self._pending.append((it, values))
        self._push(values)
        if it % self.log_period == 0 or it == trainer.max_iter:
            self._write_iterations()
            smoothed = {k: statistics.median(self._recent[k]) if self._recent.get(k) else 0.0
                        for k in ["loss", *losses]}
            trainer.log({"iteration": it, "epoch": trainer.epoch_float(), "lr": lr,
                         **smoothed, "time_per_iter": now - self._t_last})
        self._t_last = now

    def _write_iterations(self) -> None:
        """One ``iterations.jsonl`` line with the values of the steps not written yet."""
        if not self._pending or self.iters is None:
            return
        keys = list(dict.fromkeys(k for _, values in self._pending for k in values))
        self.iters.write({"iteration": self._pending[-1][0], "start": self._pending[0][0],
                          **{k: [values.get(k) for _, values in self._pending] for k in keys}})
        self._pending = []

    def after_epoch(self, trainer: Any) -> None:
        self._write_iterations()
        trainer.log({"iteration": trainer.iteration, "epoch": float(trainer.epoch),
                     "skipped_total": trainer.num_skipped})

    def write(self, record: Dict[str, Any]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(record)
        if self.tb is not None:
            self.tb.write(record)

    def close(self) -> None:
        for w in (self.progress, self.tb, self.jsonl, self.iters):
            if w is not None:
                w.close()
        self.progress = self.tb = self.jsonl = self.iters = None

    def state_dict(self) -> Dict[str, Any]:
        if self.jsonl is None:
            return {}
        state: Dict[str, Any] = {"records": self.jsonl.num_records}
        if self._pending:  # a checkpoint inside a log period
            state["iterations_pending"] = [[it, dict(v)] for it, v in self._pending]
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._resume_records = state.get("records")
        self._pending = [(int(it), dict(v)) for it, v in state.get("iterations_pending", [])]


class Evaluation(HookBase):
    """Evaluates every ``period`` epochs (0: only at the end) and at the last step; keeps the
    results and the best value of ``metric`` (maximised) on the trainer.

    Before evaluating it saves ``last.pth`` (``trainer.commit()``) with the epoch's remaining
    work pending, so a kill during the evaluation loses no training. ``ema``: evaluate its
    weights (swapped in and back).
    """

    def __init__(self, period: int, metric: str, ema: Optional[ModelEMA] = None) -> None:
        self.period, self.metric, self.ema = period, metric, ema

    def after_epoch(self, trainer: Any) -> None:
        last = trainer.iteration >= trainer.max_iter
        if not (last or (self.period and trainer.epoch % self.period == 0)):
            return
        trainer.commit()
        results = self.evaluate(trainer, f"epoch_{trainer.epoch:04d}")
        value = primary_metric(results, self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        if trainer.best is None or value > trainer.best:
            trainer.best, trainer.best_iteration = value, trainer.iteration

    def after_train(self, trainer: Any) -> None:
        # stopped inside an epoch (TRAIN.MAX_ITERS): evaluate once (not again on resume)
        if trainer.batch_in_epoch and trainer.results_iteration != trainer.iteration:
            trainer.commit()
            self.evaluate(trainer, "final")

    def evaluate(self, trainer: Any, tag: str) -> Dict[str, Dict[str, float]]:
        """``trainer.test(tag)`` (with the EMA weights), logged and kept as the results."""
        swap = self.ema.apply_to(trainer.model) if self.ema is not None else \
            contextlib.nullcontext()
        with swap:
            results = trainer.test(tag)
        trainer.log({"iteration": trainer.iteration, "epoch": trainer.epoch_float(),
                     "eval": results})
        trainer.results, trainer.results_iteration = results, trainer.iteration
        return results


class Plots(HookBase):
    """PNG plots of ``metrics.jsonl`` in ``plots/`` and ``report.html`` (see
    :mod:`.report`) after each epoch and at the end (main process).

    The report is written last when the trainer closes its writers (``Trainer.train`` does,
    after every hook's ``after_train``, so it shows ``final_report.json``): the hook joins
    ``trainer.writers`` for that (its ``write`` ignores the records).
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.jsonl = os.path.join(output_dir, "metrics.jsonl")
        self.out = os.path.join(output_dir, "plots")

    def _plot(self) -> None:
        if comm.is_main_process() and os.path.isfile(self.jsonl):
            plot_metrics(self.jsonl, self.out)

    def _report(self) -> None:
        if not comm.is_main_process():
            return
        from .report import try_write_report

        try_write_report(self.output_dir)

    def before_train(self, trainer: Any) -> None:
        if self not in trainer.writers:
            trainer.writers.append(self)

    def after_epoch(self, trainer: Any) -> None:
        self._plot()
        self._report()

    def after_train(self, trainer: Any) -> None:
        self._plot()

    def write(self, record: Dict[str, Any]) -> None:
        """Records are read back from ``metrics.jsonl``; nothing to do here."""

    def close(self) -> None:
        """The final ``report.html`` (after the final report, also of an interrupted run)."""
        self._report()


class Checkpoints(HookBase):
    """``last.pth`` every ``iter_period`` steps inside an epoch (0: never) and at every epoch
    end, with ``epoch_NNNN.pth`` every ``epoch_period`` epochs (0: never) and ``best.pth``
    when the epoch's evaluation set a new best; the last file written is ``last.pth``."""

    def __init__(self, epoch_period: int, iter_period: int = 0) -> None:
        self.epoch_period, self.iter_period = epoch_period, iter_period

    def after_step(self, trainer: Any) -> None:
        p = self.iter_period
        if p and trainer.iteration % p == 0 and trainer.batch_in_epoch < trainer.steps_per_epoch:
            trainer.save_checkpoint(["last"])

    def after_epoch(self, trainer: Any) -> None:
        names = []
        if self.epoch_period and trainer.epoch % self.epoch_period == 0:
            names.append(f"epoch_{trainer.epoch:04d}")
        if trainer.best_iteration == trainer.iteration:
            names.append("best")
        trainer.mark_done(self)
        trainer.save_checkpoint(names + ["last"])

    def after_train(self, trainer: Any) -> None:
        if trainer.batch_in_epoch:  # stopped inside an epoch: keep its position and results
            trainer.commit()


def summarise_skipped(skipped: List[Tuple[str, str]]) -> List[Dict[str, Any]]:
    """``[{"path", "reason", "count"}]``: each skipped file once, with how often it failed."""
    out: Dict[str, Dict[str, Any]] = {}
    for path, reason in skipped:
        row = out.setdefault(path, {"path": path, "reason": reason, "count": 0})
        row["count"] += 1
    return list(out.values())


class FinalReport(HookBase):
    """``final_report.json`` (and ``trainer.report``) from the run's state: results of the last
    evaluation, best, position, samples seen and skipped; ``finished`` once the schedule is
    done. Built from what checkpoints keep, so resuming a finished run writes it again as it
    was."""

    def __init__(self, output_dir: str, task_name: str) -> None:
        self.path = os.path.join(output_dir, "final_report.json")
        self.task_name = task_name

    def after_train(self, trainer: Any) -> None:
        skipped = comm.gather_list(trainer.skipped)
        trainer.report = {
            "task": self.task_name, "iterations": trainer.iteration,
            "epochs": trainer.epoch_float(), "finished": trainer.iteration >= trainer.max_iter,
            "results": trainer.results, "best": trainer.best,
            "train_seconds": trainer.train_seconds(),
            "train_samples_seen": trainer.seen, "skipped_train_count": len(skipped),
            "skipped_train": summarise_skipped(skipped),
            "skipped_eval": summarise_skipped(trainer.eval_skipped),
        }
        if comm.is_main_process():
            atomic_write_text(self.path, dumps_json(trainer.report, indent=2))  # NaN -> null


class FailureBudget(HookBase):
    """Stops training when more than ``max_fraction`` of the training samples tried so far (all
    ranks; once at least ``min_seen`` were) could not be read, and at the end of the run (after
    the report) on the whole count. Every rank decides on the same counts, so all stop."""

    def __init__(self, max_fraction: float, min_seen: int = 20) -> None:
        self.max_fraction, self.min_seen = max_fraction, min_seen

    def after_backward(self, trainer: Any) -> None:
        step = trainer.last_step
        for path, reason in step.skipped_here:
            logger.warning("skipped unreadable sample %s: %s", path, reason)
        if step.skipped and trainer.seen >= self.min_seen and self._over(trainer):
            self._stop(trainer)

    def after_train(self, trainer: Any) -> None:
        if trainer.num_skipped and trainer.seen and self._over(trainer):
            self._stop(trainer)

    def _over(self, trainer: Any) -> bool:
        return trainer.num_skipped > self.max_fraction * trainer.seen

    def _stop(self, trainer: Any) -> None:
        listed = "\n  ".join(f"{p}: {r}" for p, r in comm.gather_list(trainer.skipped)[:20])
        raise TooManyFailuresError(
            f"{trainer.num_skipped} of {trainer.seen} training samples could not be read (more "
            f"than TRAIN.MAX_FAILED_FRACTION={self.max_fraction}); first ones:\n  {listed}")
