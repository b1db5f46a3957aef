"""The trainer of every task (classification, AVA, COCO): the config-free
:class:`~mvit_tasks.engine.train_loop.TrainLoop` assembled from ``cfg`` and a
:class:`~mvit_tasks.tasks.Task`, as detectron2's ``DefaultTrainer`` assembles ``SimpleTrainer``.

Follows PySlowFast's ``train_net.py`` schedule (per-iteration cosine LR on the fractional epoch,
global batch sizes, evaluation every ``TRAIN.EVAL_PERIOD`` epochs). The task supplies model,
data and evaluator; this module builds optimizer, scheduler, AMP scaler, EMA, sampler and
loader, the hooks (:func:`mvit_tasks.engine.defaults.build_hooks`), and owns checkpoints,
resume and evaluation.

Iteration semantics: ``iteration`` counts optimizer steps. One step consumes
``SOLVER.ACCUM_STEPS`` micro-batches of ``TRAIN.BATCH_SIZE / ACCUM_STEPS`` samples (global),
so the effective batch is ``TRAIN.BATCH_SIZE`` whatever the number of processes.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from mvit_tasks.config import CfgNode
from mvit_tasks.export import maybe_compile
from mvit_tasks.tasks.base import Task
from mvit_tasks.utils import comm
from mvit_tasks.utils.fileio import dumps_json, remove_stale_temporaries, write_json

from .checkpointer import Checkpointer
from .defaults import build_hooks
from .ema import ModelEMA
from .evaluation import TooManyFailuresError, run_inference
from .lr_scheduler import LRScheduler
from .optim import build_optimizer
from .samplers import InferenceSampler, TrainBatchSampler
from .train_loop import TrainLoop

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "TooManyFailuresError", "build_test_loader", "evaluate",
           "evaluate_weights"]


def build_test_loader(task: Task, cfg: CfgNode, split: str) -> DataLoader:
    """Unpadded, rank-sharded loader over ``split`` (every sample evaluated once)."""
    dataset = task.build_dataset(split)
    world = comm.get_world_size()
    per_rank = max(1, cfg.TEST.BATCH_SIZE // world)
    return DataLoader(dataset, batch_size=per_rank,
                      sampler=InferenceSampler(len(dataset), comm.get_rank(), world),
                      num_workers=cfg.DATA_LOADER.NUM_WORKERS, collate_fn=task.collate_fn(),
                      pin_memory=cfg.DATA_LOADER.PIN_MEMORY and torch.cuda.is_available(),
                      generator=torch.Generator().manual_seed(cfg.SEED))


def evaluate(cfg: CfgNode, task: Task, model: nn.Module, device: torch.device, tag: str
             ) -> Tuple[Dict[str, Dict[str, float]], List[Tuple[str, str]]]:
    """Evaluate ``model`` on ``TEST.SPLIT``; ``(results, skipped)``. Writes the evaluator's
    reports and ``results.json`` under ``OUTPUT_DIR/eval/<tag>/`` (main process), then raises
    :class:`TooManyFailuresError` if more than ``TRAIN.MAX_FAILED_FRACTION`` of the samples
    could not be read."""
    split = cfg.TEST.SPLIT
    loader = build_test_loader(task, cfg, split)
    evaluator = task.build_evaluator(split)
    stats: Dict[str, int] = {}
    results, skipped = run_inference(maybe_compile(model, cfg), loader, evaluator, device,
                                     cfg.TRAIN.MIXED_PRECISION, stats=stats)
    warnings = evaluator.warnings()
    if comm.is_main_process():
        out = os.path.join(cfg.OUTPUT_DIR, "eval", tag)
        os.makedirs(out, exist_ok=True)
        evaluator.write_reports(out)
        write_json(os.path.join(out, "results.json"),
                   {"results": results, "skipped": skipped, "samples": stats["samples"],
                    "input_warnings": warnings}, indent=2)
        for path, reason in skipped:
            logger.warning("evaluation skipped unreadable sample %s: %s", path, reason)
        for w in warnings:
            logger.warning("evaluation input: %s", w)
        logger.info("evaluation (%s, %s): %s", split, tag, dumps_json(results))
    limit = cfg.TRAIN.MAX_FAILED_FRACTION
    if skipped and len(skipped) > limit * stats["samples"]:
        raise TooManyFailuresError(
            f"{len(skipped)} of {stats['samples']} {split} samples could not be read (more "
            f"than TRAIN.MAX_FAILED_FRACTION={limit}); the metrics would describe the "
            "readable part only. First ones:\n  " + "\n  ".join(
                f"{p}: {r}" for p, r in skipped[:20]))
    return results, skipped


def evaluate_weights(cfg: CfgNode, task: Task, device: torch.device, weights: str = ""
                     ) -> Dict[str, Any]:
    """``--eval-only``: the task's model with ``weights`` (if given), evaluated as ``eval_only``
    (``OUTPUT_DIR/eval/eval_only/``), then ``OUTPUT_DIR/report.html`` written."""
    torch.manual_seed(cfg.SEED)
    model = task.build_model().to(device)
    if weights:
        task.load_eval_weights(model, weights)
    results, skipped = evaluate(cfg, task, model, device, "eval_only")
    if comm.is_main_process():  # OUTPUT_DIR/report.html: the evaluation's metrics and charts
        from .report import try_write_report

        try_write_report(cfg.OUTPUT_DIR)
    return {"task": task.name, "results": results, "skipped_eval": [list(s) for s in skipped]}


class Trainer(TrainLoop):
    """Trains ``task`` as ``cfg`` says: :meth:`train` (optionally resuming), :meth:`test`.

    Besides the loop's state, checkpoints keep the run's results: ``best`` (value) and
    ``best_iteration``, ``results`` of the last evaluation and its ``results_iteration``, the
    evaluation's skipped samples and the training time so far.
    """

    def __init__(self, cfg: CfgNode, task: Task, device: torch.device) -> None:
        self.cfg, self.task = cfg, task
        self.output_dir = cfg.OUTPUT_DIR
        self.is_main = comm.is_main_process()
        world = comm.get_world_size()
        torch.manual_seed(cfg.SEED)  # identical initial weights on every rank
        model = task.build_model().to(device)
        torch.manual_seed(cfg.SEED + comm.get_rank())  # per-rank dropout / drop-path streams
        s = cfg.SOLVER
        optimizer = build_optimizer(
            model, s.OPTIMIZING_METHOD, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY,
            momentum=s.MOMENTUM, nesterov=s.NESTEROV, betas=tuple(s.BETAS),
            zero_wd_1d=s.ZERO_WD_1D_PARAM, model_no_weight_decay=s.ZERO_DECAY_POS_CLS,
            layer_decay=s.LAYER_DECAY if s.LAYER_DECAY < 1.0 else None)
        self.scheduler = LRScheduler(
            optimizer, policy=s.LR_POLICY, base_lr=s.BASE_LR, max_epoch=s.MAX_EPOCH,
            cosine_end_lr=s.COSINE_END_LR, cosine_after_warmup=s.COSINE_AFTER_WARMUP,
            warmup_epochs=s.WARMUP_EPOCHS, warmup_start_lr=s.WARMUP_START_LR,
            steps=list(s.STEPS) or None, lrs=list(s.LRS) or None)
        precision = cfg.TRAIN.MIXED_PRECISION
        scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        self.ema = ModelEMA(model, decay=cfg.TRAIN.EMA.DECAY, warmup=cfg.TRAIN.EMA.WARMUP) \
            if cfg.TRAIN.EMA.ENABLE else None
        dataset = task.build_dataset("train")
        accum = s.ACCUM_STEPS
        if cfg.TRAIN.BATCH_SIZE % (accum * world):
            raise ValueError(f"TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} must be divisible by "
                             f"SOLVER.ACCUM_STEPS x processes = {accum} x {world}")
        self.sampler = TrainBatchSampler(len(dataset), cfg.TRAIN.BATCH_SIZE // accum,
                                         comm.get_rank(), world, seed=cfg.SEED)
        self.loader = DataLoader(dataset, batch_sampler=self.sampler,
                                 num_workers=cfg.DATA_LOADER.NUM_WORKERS,
                                 collate_fn=task.collate_fn(),
                                 pin_memory=cfg.DATA_LOADER.PIN_MEMORY and device.type == "cuda",
                                 # own generator: creating an iterator must not consume the
                                 # global RNG (exact resume; samples carry their own seeds)
                                 generator=torch.Generator().manual_seed(cfg.SEED))
        steps = self.sampler.batches_per_epoch() // accum
        if steps < 1:
            raise ValueError(f"the training set ({len(dataset)} samples) is smaller than one "
                             f"global batch ({cfg.TRAIN.BATCH_SIZE})")
        super().__init__(model, self._epoch_batches, optimizer, scaler=scaler,
                         precision=precision, steps_per_epoch=steps, accum_steps=accum,
                         device=device, batch_transform=task.batch_transform(train=True),
                         find_unused_parameters=task.find_unused_parameters)
        self.wrapped = maybe_compile(self.wrapped, cfg)  # MODEL.COMPILE; self.model is saved
        self.max_iter = steps * s.MAX_EPOCH
        if cfg.TRAIN.MAX_ITERS:
            self.max_iter = min(self.max_iter, cfg.TRAIN.MAX_ITERS)
        self.checkpointer = Checkpointer(self.output_dir)
        self.best: Optional[float] = None
        self.best_iteration: Optional[int] = None
        self.results: Dict[str, Dict[str, float]] = {}
        self.results_iteration: Optional[int] = None
        self.eval_skipped: List[Tuple[str, str]] = []
        self.report: Dict[str, Any] = {}
        self._seconds_before, self._started = 0.0, time.time()
        self._saved: Optional[Tuple[Any, ...]] = None
        self.register_hooks(build_hooks(self, task.build_hooks()))

    def _epoch_batches(self, epoch: int, start: int) -> Iterable[Dict[str, Any]]:
        self.sampler.set_epoch(epoch, start)
        return self.loader

    # ---------------------------------------------------------------------------- state
    def train_seconds(self) -> float:
        """Training time of the run so far (all sessions)."""
        return self._seconds_before + time.time() - self._started

    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "best": self.best, "best_iteration": self.best_iteration,
            "results": self.results, "results_iteration": self.results_iteration,
            "eval_skipped": [list(s) for s in self.eval_skipped],
            "train_seconds": self.train_seconds(),
            "world_size": comm.get_world_size(), "cfg": self.cfg.dump(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.best, self.best_iteration = state["best"], state.get("best_iteration")
        self.results = state.get("results") or {}
        self.results_iteration = state.get("results_iteration")
        self.eval_skipped = [tuple(s) for s in state.get("eval_skipped", [])]
        self._seconds_before = state.get("train_seconds", 0.0)
        world = comm.get_world_size()
        if state.get("world_size", world) != world:
            logger.warning("resuming a %d-process run with %d processes: the data order is "
                           "kept, the RNG streams are not", state["world_size"], world)

    def _save_key(self) -> Tuple[Any, ...]:
        return self.iteration, self.results_iteration, tuple(self.pending)

    def save_checkpoint(self, names: List[str]) -> None:
        """Write the training state as each of ``names`` (in order; call on every rank)."""
        self.checkpointer.save(names, self.state_dict())
        self._saved = self._save_key()

    def commit(self) -> None:
        """Save ``last`` unless the newest checkpoint already holds this state."""
        if self._saved != self._save_key():
            self.save_checkpoint(["last"])

    def resume(self) -> str:
        """Continue from ``last.pth`` (or the newest checkpoint that loads): weights, optimizer,
        scaler, EMA, RNG, position, pending epoch-end work, results; returns the file used."""
        state, path = self.checkpointer.load_latest()
        self.load_state_dict(state)
        logger.info("resumed from %s: epoch %d, iteration %d", path, self.epoch, self.iteration)
        if path != self.checkpointer.path("last"):  # replace the unreadable last.pth
            self.save_checkpoint(["last"])
        self._saved = self._save_key()
        return path

    # ---------------------------------------------------------------------------- train
    def train(self, max_iter: Optional[int] = None, resume: bool = False) -> Dict[str, Any]:
        """Run the schedule (to ``max_iter``, default ``SOLVER.MAX_EPOCH`` epochs or
        ``TRAIN.MAX_ITERS``), after resuming if asked (``resume`` / ``TRAIN.AUTO_RESUME``);
        returns the final report (also ``final_report.json``)."""
        self.max_iter = max_iter or self.max_iter
        if self.is_main:
            self._prepare_output_dir()
        if resume or self.cfg.TRAIN.AUTO_RESUME:
            if self.checkpointer.has_last():
                self.resume()
            elif resume:
                raise FileNotFoundError(f"--resume: no checkpoint at "
                                        f"{self.checkpointer.path('last')}")
        if self.iteration >= self.max_iter and not self.pending:
            logger.info("the run in %s is already finished (iteration %d of %d): nothing to "
                        "train; its results are kept", self.output_dir, self.iteration,
                        self.max_iter)
        self._started = time.time()
        try:
            super().train()
        finally:
            for w in self.writers:
                w.close()
        return self.report

    def _prepare_output_dir(self) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        eval_dir = os.path.join(self.output_dir, "eval")
        folders = [self.output_dir, self.checkpointer.dir, os.path.join(self.output_dir, "plots")]
        if os.path.isdir(eval_dir):
            folders += [os.path.join(eval_dir, d) for d in sorted(os.listdir(eval_dir))]
        for folder in folders:
            for path in remove_stale_temporaries(folder):
                logger.warning("removed %s, a temporary file left by an interrupted write", path)
        with open(os.path.join(self.output_dir, "config.yaml"), "w") as f:
            f.write(self.cfg.dump())

    # ----------------------------------------------------------------------------- eval
    def test(self, tag: str = "eval") -> Dict[str, Dict[str, float]]:
        """Evaluate the current weights on ``TEST.SPLIT`` (see :func:`evaluate`)."""
        results, self.eval_skipped = evaluate(self.cfg, self.task, self.model, self.device, tag)
        return results
