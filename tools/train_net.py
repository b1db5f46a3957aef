#!/usr/bin/env python
"""Train or evaluate any registered task: ``--task NAME --config-file F [KEY VALUE ...]``.

Examples::

    python tools/train_net.py --task classification --config-file projects/video_classification/configs/demo_moving_shapes.yaml
    python tools/train_net.py --task kinetics --config-file CFG --eval-only MODEL.WEIGHTS ckpt.pth
    python tools/train_net.py --task kinetics --config-file CFG --resume          # continue `last`
    python tools/train_net.py --task kinetics --config-file CFG --num-gpus 8     # one machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint host0:29500 tools/train_net.py ...

``--task`` takes a registered name (see ``--help``), ``package.module`` or
``package.module:TaskClass`` (third-party projects need no change here).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Dict, Optional, Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep (shared CPUs)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mvit_tasks.config import load_config  # noqa: E402
from mvit_tasks.engine.defaults import add_engine_config  # noqa: E402
from mvit_tasks.engine.launch import launch, select_device  # noqa: E402
from mvit_tasks.tasks import list_tasks, resolve_task  # noqa: E402
from mvit_tasks.utils.fileio import dumps_json  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__ + "\nregistered tasks: " + ", ".join(list_tasks()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="task name or package.module[:TaskClass]")
    p.add_argument("--config-file", default="", metavar="FILE")
    p.add_argument("--eval-only", action="store_true",
                   help="evaluate TEST.CHECKPOINT_FILE_PATH / MODEL.WEIGHTS (or `last` with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT_DIR/checkpoints/last.pth (exact: optimizer, RNG, data position)")
    p.add_argument("--num-gpus", type=int, default=1,
                   help="processes per machine (GPUs; on a CPU-only machine, Gloo CPU processes)")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0, or auto")
    p.add_argument("--cpu", action="store_true", help="do not use CUDA even if available")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(argv)


def main_worker(args: argparse.Namespace) -> Dict[str, Any]:
    """Per-process entry: config, task, trainer; returns the final report / eval results."""
    import torch

    from mvit_tasks.engine.checkpointer import Checkpointer
    from mvit_tasks.engine.trainer import Trainer, evaluate_weights
    from mvit_tasks.utils import comm

    logging.basicConfig(level=logging.INFO if comm.is_main_process() else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    task_cls = resolve_task(args.task)
    cfg = load_config(args.config_file, list(args.opts) + ["NUM_GPUS", str(args.num_gpus)],
                      extra_config_fns=[add_engine_config, task_cls.add_config])
    device = select_device(use_cuda=not args.cpu)
    if cfg.TRAIN.DETERMINISTIC:
        torch.use_deterministic_algorithms(True)
    task = task_cls(cfg)
    if args.eval_only or not cfg.TRAIN.ENABLE:  # SlowFast: TRAIN.ENABLE False = test only
        weights = cfg.TEST.CHECKPOINT_FILE_PATH
        if args.resume:
            weights = Checkpointer(cfg.OUTPUT_DIR).path("last")
        out = evaluate_weights(cfg, task, device, weights)
    else:
        out = Trainer(cfg, task, device).train(resume=args.resume)
    if comm.is_main_process():
        print(dumps_json(out.get("results", {}), indent=2), flush=True)
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    return launch(main_worker, args.num_gpus, args.num_machines, args.machine_rank,
                  args.dist_url, args=(args,))


if __name__ == "__main__":
    from mvit_tasks.engine.trainer import TooManyFailuresError

    try:
        main()
    except TooManyFailuresError as e:  # unreadable data: the numbers, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
