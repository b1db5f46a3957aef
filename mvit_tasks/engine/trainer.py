"""The training loop: one engine for every task (classification, AVA, COCO).

Follows PySlowFast's ``train_net.py`` loop (per-iteration cosine LR on the fractional epoch,
global batch sizes, evaluation every ``TRAIN.EVAL_PERIOD`` epochs) with detectron2's
separation of concerns: the :class:`~mvit_tasks.tasks.Task` supplies model, data, evaluator;
this module owns optimisation, AMP, accumulation, EMA, DDP, checkpoints and logging.

Iteration semantics: ``iteration`` counts optimizer steps. One step consumes
``SOLVER.ACCUM_STEPS`` micro-batches of ``TRAIN.BATCH_SIZE / ACCUM_STEPS`` samples (global),
so the effective batch is ``TRAIN.BATCH_SIZE`` whatever the number of processes.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mvit_tasks.config import CfgNode
from mvit_tasks.evaluation import primary_metric
from mvit_tasks.tasks.base import Task
from mvit_tasks.utils import comm

from .checkpointer import Checkpointer
from .ema import ModelEMA
from .evaluation import autocast, run_inference, to_device
from .events import JSONLWriter, TensorBoardWriter, plot_metrics
from .lr_scheduler import LRScheduler
from .optim import build_optimizer
from .progress import ProgressBar
from .samplers import InferenceSampler, TrainBatchSampler

logger = logging.getLogger(__name__)


class TooManyFailuresError(RuntimeError):
    """More than ``TRAIN.MAX_FAILED_FRACTION`` of the samples could not be read."""


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


class Trainer:
    """Trains and evaluates ``task`` as ``cfg`` says; see :meth:`train` and :meth:`test`."""

    def __init__(self, cfg: CfgNode, task: Task, device: torch.device) -> None:
        self.cfg, self.task, self.device = cfg, task, device
        self.output_dir = cfg.OUTPUT_DIR
        self.is_main = comm.is_main_process()
        self.world = comm.get_world_size()
        torch.manual_seed(cfg.SEED)  # identical initial weights on every rank
        self.model: nn.Module = task.build_model().to(device)
        self.wrapped: nn.Module = self.model
        if self.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=task.find_unused_parameters)
        torch.manual_seed(cfg.SEED + comm.get_rank())  # per-rank dropout / drop-path streams
        self.precision = cfg.TRAIN.MIXED_PRECISION
        self.epoch, self.iteration, self.batch_in_epoch = 0, 0, 0
        self.best: Optional[float] = None
        self.skipped: List[Tuple[str, str]] = []  # this rank's skipped training samples
        self.seen = 0  # training samples this rank tried (read + skipped)
        self.history: List[Dict[str, Any]] = []
        self.checkpointer = Checkpointer(self.output_dir)
        self.hooks = task.build_hooks()
        self.jsonl: Optional[JSONLWriter] = None
        self.tb: Optional[TensorBoardWriter] = None

    # ------------------------------------------------------------------------------ setup
    def _setup_training(self) -> None:
        cfg = self.cfg
        s = cfg.SOLVER
        self.optimizer = build_optimizer(
            self.model, s.OPTIMIZING_METHOD, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY,
            momentum=s.MOMENTUM, nesterov=s.NESTEROV, betas=tuple(s.BETAS),
            zero_wd_1d=s.ZERO_WD_1D_PARAM, model_no_weight_decay=s.ZERO_DECAY_POS_CLS,
            layer_decay=s.LAYER_DECAY if s.LAYER_DECAY < 1.0 else None)
        self.scheduler = LRScheduler(
            self.optimizer, policy=s.LR_POLICY, base_lr=s.BASE_LR, max_epoch=s.MAX_EPOCH,
            cosine_end_lr=s.COSINE_END_LR, cosine_after_warmup=s.COSINE_AFTER_WARMUP,
            warmup_epochs=s.WARMUP_EPOCHS, warmup_start_lr=s.WARMUP_START_LR,
            steps=list(s.STEPS) or None, lrs=list(s.LRS) or None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.ema = ModelEMA(self.model, decay=cfg.TRAIN.EMA.DECAY, warmup=cfg.TRAIN.EMA.WARMUP) \
            if cfg.TRAIN.EMA.ENABLE else None
        dataset = self.task.build_dataset("train")
        self.dataset_size = len(dataset)
        accum = s.ACCUM_STEPS
        if cfg.TRAIN.BATCH_SIZE % (accum * self.world):
            raise ValueError(f"TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} must be divisible by "
                             f"SOLVER.ACCUM_STEPS x processes = {accum} x {self.world}")
        self.sampler = TrainBatchSampler(len(dataset), cfg.TRAIN.BATCH_SIZE // accum,
                                         comm.get_rank(), self.world, seed=cfg.SEED)
        self.loader = DataLoader(dataset, batch_sampler=self.sampler,
                                 num_workers=cfg.DATA_LOADER.NUM_WORKERS,
                                 collate_fn=self.task.collate_fn(),
                                 pin_memory=cfg.DATA_LOADER.PIN_MEMORY
                                 and self.device.type == "cuda",
                                 # own generator: creating an iterator must not consume the
                                 # global RNG (exact resume; samples carry their own seeds)
                                 generator=torch.Generator().manual_seed(cfg.SEED))
        self.steps_per_epoch = self.sampler.batches_per_epoch() // accum
        if self.steps_per_epoch < 1:
            raise ValueError(f"the training set ({len(dataset)} samples) is smaller than one "
                             f"global batch ({cfg.TRAIN.BATCH_SIZE})")
        self.max_iter = self.steps_per_epoch * s.MAX_EPOCH
        if cfg.TRAIN.MAX_ITERS:
            self.max_iter = min(self.max_iter, cfg.TRAIN.MAX_ITERS)
        self.batch_transform = self.task.batch_transform(train=True)
        if self.is_main:
            os.makedirs(self.output_dir, exist_ok=True)
            with open(os.path.join(self.output_dir, "config.yaml"), "w") as f:
                f.write(cfg.dump())
            self.jsonl = JSONLWriter(os.path.join(self.output_dir, "metrics.jsonl"))

    def state_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "iteration": self.iteration, "best": self.best,
            "skipped": comm.gather_list(self.skipped), "seen": sum(comm.all_gather(self.seen)),
            "world_size": self.world, "cfg": self.cfg.dump(),
        }

    def resume(self, path: Optional[str] = None) -> None:
        """Continue from ``path`` (default ``last.pth``): weights, optimizer, scaler, EMA, RNG,
        epoch and position inside it."""
        state = self.checkpointer.load(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.epoch, self.iteration = state["epoch"], state["iteration"]
        self.batch_in_epoch, self.best = state["batch_in_epoch"], state["best"]
        # Skips so far are kept once (on rank 0) so the final report lists each of them.
        self.skipped = [tuple(x) for x in state.get("skipped", [])] if self.is_main else []
        self.seen = state.get("seen", 0) if self.is_main else 0
        if state.get("world_size", self.world) != self.world:
            logger.warning("resuming a %d-process run with %d processes: the data order is "
                           "kept, the RNG streams are not", state["world_size"], self.world)
        if self.jsonl is not None:
            self.jsonl.truncate_after(self.iteration)
        logger.info("resumed from epoch %d, iteration %d", self.epoch, self.iteration)

    def log(self, record: Dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl`` and TensorBoard (main process)."""
        if not self.is_main:
            return
        self.history.append(record)
        if self.jsonl is not None:
            self.jsonl.write(record)
        if self.tb is not None:
            self.tb.write(record)

    # ------------------------------------------------------------------------------- train
    def train(self, resume: bool = False) -> Dict[str, Any]:
        """Run the schedule; returns the final report (also ``final_report.json``)."""
        self._setup_training()
        if resume or self.cfg.TRAIN.AUTO_RESUME:
            if self.checkpointer.has_last():
                self.resume()
            elif resume:
                raise FileNotFoundError(f"--resume: no checkpoint at "
                                        f"{self.checkpointer.path('last')}")
        if self.is_main and self.cfg.TENSORBOARD.ENABLE:
            # purge_step hides events an interrupted run logged after its last checkpoint
            self.tb = TensorBoardWriter(os.path.join(self.output_dir, "tensorboard"),
                                        purge_step=self.iteration + 1 if self.iteration else None)
        for h in self.hooks:
            h.before_train(self)
        start_time = time.time()
        progress = ProgressBar(self.max_iter, start_iter=self.iteration,
                               log_period=self.cfg.LOG_PERIOD) if self.is_main else None
        results: Dict[str, Dict[str, float]] = {}
        while self.iteration < self.max_iter:
            stopped_mid_epoch = self._train_epoch(progress)
            if stopped_mid_epoch:
                break
            results = self._end_of_epoch()
        if self.iteration >= self.max_iter and self.batch_in_epoch:  # stopped by MAX_ITERS
            self.checkpointer.save(["last"], self.state_dict())
            results = self._evaluate(tag="final") if self.cfg.TEST.ENABLE else results
        for h in self.hooks:
            h.after_train(self)
        return self._final_report(results, time.time() - start_time)

    def _train_epoch(self, progress: Optional[ProgressBar]) -> bool:
        """One epoch from ``batch_in_epoch``; True if ``max_iter`` stopped it mid-epoch."""
        cfg, accum = self.cfg, self.cfg.SOLVER.ACCUM_STEPS
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch * accum)
        self.wrapped.train()
        losses: Dict[str, float] = {}
        micro, t_last = 0, time.time()
        for batch in self.loader:
            self._count_skips(batch)
            micro += 1
            if batch.get("num_samples", 1) > 0:
                for k, v in self._forward_backward(batch, accum).items():
                    losses[k] = losses.get(k, 0.0) + v / accum
            if micro < accum:
                continue
            micro = 0
            self._optimizer_step()
            self.iteration += 1
            self.batch_in_epoch += 1
            if progress is not None:
                now = time.time()
                progress.update(self.iteration, epoch=self.epoch, **{k: v for k, v in losses.items()},
                                lr=self.optimizer.param_groups[0]["lr"])
                if self.iteration % cfg.LOG_PERIOD == 0 or self.iteration == self.max_iter:
                    self.log({"iteration": self.iteration, "epoch": self._epoch_float(),
                              "lr": self.optimizer.param_groups[0]["lr"],
                              "loss": sum(losses.values()), **losses,
                              "time_per_iter": now - t_last})
                t_last = now
            losses = {}
            for h in self.hooks:
                h.after_step(self)
            period = cfg.TRAIN.CHECKPOINT_ITER_PERIOD
            if period and self.iteration % period == 0 and self.batch_in_epoch < self.steps_per_epoch:
                self.checkpointer.save(["last"], self.state_dict())
            if self.iteration >= self.max_iter and self.batch_in_epoch < self.steps_per_epoch:
                return True
            if self.batch_in_epoch >= self.steps_per_epoch:
                break
        return False

    def _epoch_float(self) -> float:
        return self.epoch + self.batch_in_epoch / self.steps_per_epoch

    def _forward_backward(self, batch: Dict[str, Any], accum: int) -> Dict[str, float]:
        batch = to_device(batch, self.device, non_blocking=True)
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        with autocast(self.device, self.precision):
            loss_dict = self.wrapped(batch)
        total = sum(loss_dict.values())
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {total.item()} at iteration {self.iteration} "
                                     f"(epoch {self.epoch}): {loss_dict}")
        self.scaler.scale(total / accum).backward()
        return {k: float(v.detach()) for k, v in loss_dict.items()}

    def _optimizer_step(self) -> None:
        self.scheduler.step(self._epoch_float())  # LR at the start of this step
        if self.cfg.SOLVER.CLIP_GRAD_L2NORM > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.SOLVER.CLIP_GRAD_L2NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    def _count_skips(self, batch: Dict[str, Any]) -> None:
        skipped = list(batch.get("skipped", []))
        for path, reason in skipped:
            logger.warning("skipped unreadable sample %s: %s", path, reason)
        self.skipped += [tuple(s) for s in skipped]
        self.seen += batch.get("num_samples", 0) + len(skipped)
        limit = self.cfg.TRAIN.MAX_FAILED_FRACTION
        if skipped and self.seen >= 20 and len(self.skipped) > limit * self.seen:
            self._raise_failures(len(self.skipped), self.seen)

    def _raise_failures(self, failed: int, seen: int) -> None:
        listed = "\n  ".join(f"{p}: {r}" for p, r in self.skipped[:20])
        raise TooManyFailuresError(
            f"{failed} of {seen} training samples could not be read (more than "
            f"TRAIN.MAX_FAILED_FRACTION={self.cfg.TRAIN.MAX_FAILED_FRACTION}); first ones:\n  "
            f"{listed}")

    def _end_of_epoch(self) -> Dict[str, Dict[str, float]]:
        cfg = self.cfg
        self.epoch += 1
        self.batch_in_epoch = 0
        all_skipped = comm.gather_list(self.skipped)
        if self.is_main:
            self.log({"iteration": self.iteration, "epoch": float(self.epoch),
                      "skipped_total": len(all_skipped)})
        results: Dict[str, Dict[str, float]] = {}
        last_epoch = self.iteration >= self.max_iter
        period = cfg.TRAIN.EVAL_PERIOD
        if cfg.TEST.ENABLE and (last_epoch or (period and self.epoch % period == 0)):
            try:
                results = self._evaluate(tag=f"epoch_{self.epoch:04d}")
            except TooManyFailuresError:
                self.checkpointer.save(["last"], self.state_dict())  # the epoch is not lost
                raise
        names = ["last"]
        if cfg.TRAIN.CHECKPOINT_PERIOD and self.epoch % cfg.TRAIN.CHECKPOINT_PERIOD == 0:
            names.append(f"epoch_{self.epoch:04d}")
        if results and self._is_best(results):
            names.append("best")
        self.checkpointer.save(names, self.state_dict())
        for h in self.hooks:
            h.after_epoch(self)
        if self.is_main:
            plot_metrics(os.path.join(self.output_dir, "metrics.jsonl"),
                         os.path.join(self.output_dir, "plots"))
        return results

    def _is_best(self, results: Dict[str, Dict[str, float]]) -> bool:
        name = self.cfg.TRAIN.BEST_METRIC or self.task.default_metric
        value = primary_metric(results, name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.best is None or value > self.best:
            self.best = value
            return True
        return False

    # ------------------------------------------------------------------------------- eval
    def _evaluate(self, tag: str) -> Dict[str, Dict[str, float]]:
        use_ema = self.ema is not None and self.cfg.TRAIN.EMA.EVAL
        if use_ema:
            with self.ema.apply_to(self.model):
                results = self.test(tag)
        else:
            results = self.test(tag)
        self.log({"iteration": self.iteration, "epoch": self._epoch_float(), "eval": results})
        return results

    def test(self, tag: str = "eval") -> Dict[str, Dict[str, float]]:
        """Evaluate the current weights on ``TEST.SPLIT``; writes reports under
        ``OUTPUT_DIR/eval/<tag>/`` (main process)."""
        split = self.cfg.TEST.SPLIT
        loader = build_test_loader(self.task, self.cfg, split)
        evaluator = self.task.build_evaluator(split)
        stats: Dict[str, int] = {}
        results, skipped = run_inference(self.model, loader, evaluator, self.device,
                                         self.precision, stats=stats)
        warnings = evaluator.warnings()
        if self.is_main:
            out = os.path.join(self.output_dir, "eval", tag)
            os.makedirs(out, exist_ok=True)
            evaluator.write_reports(out)
            with open(os.path.join(out, "results.json"), "w") as f:
                json.dump({"results": results, "skipped": skipped, "samples": stats["samples"],
                           "input_warnings": warnings}, f, indent=2)
            for path, reason in skipped:
                logger.warning("evaluation skipped unreadable sample %s: %s", path, reason)
            for w in warnings:
                logger.warning("evaluation input: %s", w)
            logger.info("evaluation (%s, %s): %s", split, tag, json.dumps(results))
        self.last_eval_skipped = skipped
        limit = self.cfg.TRAIN.MAX_FAILED_FRACTION
        if skipped and len(skipped) > limit * stats["samples"]:
            raise TooManyFailuresError(
                f"{len(skipped)} of {stats['samples']} {split} samples could not be read (more "
                f"than TRAIN.MAX_FAILED_FRACTION={limit}); the metrics would describe the "
                "readable part only. First ones:\n  " + "\n  ".join(
                    f"{p}: {r}" for p, r in skipped[:20]))
        return results

    def _final_report(self, results: Dict[str, Dict[str, float]], seconds: float) -> Dict[str, Any]:
        skipped = comm.gather_list(self.skipped)
        seen = sum(comm.all_gather(self.seen))
        report = {
            "task": self.task.name, "iterations": self.iteration, "epochs": self._epoch_float(),
            "results": results, "best": self.best, "train_seconds": seconds,
            "train_samples_seen": seen,
            "skipped_train_count": len(skipped),
            "skipped_train": _summarise(skipped),
            "skipped_eval": _summarise(getattr(self, "last_eval_skipped", [])),
        }
        if self.is_main:
            with open(os.path.join(self.output_dir, "final_report.json"), "w") as f:
                json.dump(report, f, indent=2)
            if self.tb is not None:
                self.tb.close()
            plot_metrics(os.path.join(self.output_dir, "metrics.jsonl"),
                         os.path.join(self.output_dir, "plots"))
        if skipped and seen and len(skipped) > self.cfg.TRAIN.MAX_FAILED_FRACTION * seen:
            self._raise_failures(len(skipped), seen)
        return report


def _summarise(skipped: List[Tuple[str, str]]) -> List[Dict[str, Any]]:
    """``[{"path", "reason", "count"}]``: each skipped file once, with how often it failed."""
    out: Dict[str, Dict[str, Any]] = {}
    for path, reason in skipped:
        row = out.setdefault(path, {"path": path, "reason": reason, "count": 0})
        row["count"] += 1
    return list(out.values())
