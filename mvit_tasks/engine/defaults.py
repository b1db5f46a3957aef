"""Engine config keys (optimiser, schedule, training loop, data loading, logging), and the
hooks built from them (:func:`build_hooks`).

Names follow PySlowFast's ``defaults.py`` where a key exists there (``SOLVER.BASE_LR``,
``SOLVER.COSINE_END_LR``, ``TRAIN.MIXED_PRECISION``, ``DATA_LOADER.NUM_WORKERS`` ...), so
recipes read the same. ``TRAIN.BATCH_SIZE`` / ``TEST.BATCH_SIZE`` are GLOBAL batch sizes (all
processes together), as in SlowFast; each process takes ``BATCH_SIZE / world_size``.
"""
from __future__ import annotations

from typing import Any, List, Sequence

from mvit_tasks.config.config import CfgNode


def add_engine_config(cfg: CfgNode) -> None:
    """Add the engine's keys to ``cfg`` in place."""
    cfg.SOLVER = CfgNode()
    cfg.SOLVER.OPTIMIZING_METHOD = "adamw"  # adamw | sgd
    cfg.SOLVER.BASE_LR = 1e-4  # for TRAIN.BATCH_SIZE (no implicit scaling)
    cfg.SOLVER.LR_POLICY = "cosine"  # cosine | steps_with_relative_lrs | constant
    cfg.SOLVER.COSINE_END_LR = 1e-6
    cfg.SOLVER.COSINE_AFTER_WARMUP = False  # cosine starts after the warm-up (MViT recipes: True)
    cfg.SOLVER.WARMUP_EPOCHS = 0.0
    cfg.SOLVER.WARMUP_START_LR = 1e-6
    cfg.SOLVER.STEPS = []  # epochs where a step of steps_with_relative_lrs starts
    cfg.SOLVER.LRS = []  # relative LR of each step
    cfg.SOLVER.MAX_EPOCH = 10
    cfg.SOLVER.WEIGHT_DECAY = 0.05
    cfg.SOLVER.ZERO_WD_1D_PARAM = True  # no weight decay on norms, biases (and no_weight_decay())
    # no weight decay on the tables named by the model's no_weight_decay() (cls token, position
    # tables); SlowFast's MVIT.ZERO_DECAY_POS_CLS (the MViTv2 video recipes set it False)
    cfg.SOLVER.ZERO_DECAY_POS_CLS = True
    cfg.SOLVER.LAYER_DECAY = 1.0  # < 1: layer-wise lr decay (fine-tuning), 1 = off
    cfg.SOLVER.MOMENTUM = 0.9
    cfg.SOLVER.NESTEROV = True
    cfg.SOLVER.BETAS = [0.9, 0.999]
    cfg.SOLVER.CLIP_GRAD_L2NORM = 0.0  # 0 = no clipping
    cfg.SOLVER.ACCUM_STEPS = 1  # gradient accumulation: optimizer step every N batches

    cfg.TRAIN = CfgNode()
    cfg.TRAIN.ENABLE = True  # False: evaluate only (same as --eval-only)
    cfg.TRAIN.BATCH_SIZE = 64  # global, all processes
    cfg.TRAIN.EVAL_PERIOD = 1  # epochs between evaluations (0 = only at the end)
    cfg.TRAIN.CHECKPOINT_PERIOD = 1  # epochs between kept checkpoints (`last` is always kept)
    cfg.TRAIN.CHECKPOINT_ITER_PERIOD = 0  # also write `last` every N iterations (0 = off)
    cfg.TRAIN.AUTO_RESUME = False  # resume from OUTPUT_DIR/checkpoints/last.pth when it exists
    cfg.TRAIN.MIXED_PRECISION = "none"  # none | bf16 | fp16 (fp16 only on GPU, with a scaler)
    cfg.TRAIN.EMA = CfgNode()
    cfg.TRAIN.EMA.ENABLE = False
    cfg.TRAIN.EMA.DECAY = 0.9999
    cfg.TRAIN.EMA.WARMUP = False  # decay min(DECAY, (1 + n) / (10 + n)) for the first updates
    cfg.TRAIN.EMA.EVAL = True  # evaluate (and select `best` with) the EMA weights
    cfg.TRAIN.MAX_ITERS = 0  # stop after this many iterations (0 = SOLVER.MAX_EPOCH epochs)
    cfg.TRAIN.BEST_METRIC = ""  # "task/metric" or "metric" maximised for `best` ("" = task's)
    cfg.TRAIN.MAX_FAILED_FRACTION = 0.05  # stop when more than this share of samples fails
    cfg.TRAIN.DETERMINISTIC = False  # torch.use_deterministic_algorithms

    cfg.TEST = CfgNode()
    cfg.TEST.ENABLE = True
    cfg.TEST.BATCH_SIZE = 8  # global
    cfg.TEST.SPLIT = "val"
    cfg.TEST.CHECKPOINT_FILE_PATH = ""  # --eval-only: weights to evaluate ("" = MODEL.WEIGHTS)

    cfg.DATA_LOADER = CfgNode()
    cfg.DATA_LOADER.NUM_WORKERS = 2
    cfg.DATA_LOADER.PIN_MEMORY = True

    cfg.LOG_PERIOD = 20  # iterations between metric lines
    cfg.TENSORBOARD = CfgNode()
    cfg.TENSORBOARD.ENABLE = True
    cfg.NUM_GPUS = 1  # processes per machine; set from --num-gpus (recorded in config.yaml)


def build_hooks(trainer: Any, extra: Sequence[Any] = ()) -> List[Any]:
    """The engine's hooks for ``trainer`` (a :class:`~mvit_tasks.engine.trainer.Trainer`),
    from its ``cfg``, with the task's ``extra`` hooks, in calling order::

        LRSchedule, GradClip, EMAUpdate, MetricsWriter, Evaluation, Plots,
        <extra>, Checkpoints, FinalReport, FailureBudget

    (absent: ``GradClip`` when ``SOLVER.CLIP_GRAD_L2NORM`` is 0, ``EMAUpdate`` without
    ``TRAIN.EMA.ENABLE``, ``Evaluation`` without ``TEST.ENABLE``). At an epoch end this
    logs, evaluates (after saving ``last`` with the rest pending), plots, runs the task's
    hooks, then writes the epoch's checkpoints; at the end of the run the report is written
    before the failure budget's final check.
    """
    from . import hooks as H

    cfg = trainer.cfg
    ema = trainer.ema
    evaluation = None
    if cfg.TEST.ENABLE:
        metric = cfg.TRAIN.BEST_METRIC or trainer.task.default_metric
        evaluation = H.Evaluation(cfg.TRAIN.EVAL_PERIOD, metric,
                                  ema if cfg.TRAIN.EMA.EVAL else None)
    clip = cfg.SOLVER.CLIP_GRAD_L2NORM
    return [h for h in [
        H.LRSchedule(trainer.scheduler),
        H.GradClip(clip) if clip > 0 else None,
        H.EMAUpdate(ema) if ema is not None else None,
        H.MetricsWriter(cfg.OUTPUT_DIR, cfg.LOG_PERIOD, tensorboard=cfg.TENSORBOARD.ENABLE),
        evaluation,
        H.Plots(cfg.OUTPUT_DIR),
        *extra,
        H.Checkpoints(cfg.TRAIN.CHECKPOINT_PERIOD, cfg.TRAIN.CHECKPOINT_ITER_PERIOD),
        H.FinalReport(cfg.OUTPUT_DIR, trainer.task.name),
        H.FailureBudget(cfg.TRAIN.MAX_FAILED_FRACTION),
    ] if h is not None]
