#!/usr/bin/env python
"""Train or evaluate any registered task: ``--task NAME --config-file F [KEY VALUE ...]``.

Examples::

    python tools/train_net.py --task classification --config-file projects/video_classification/configs/demo_moving_shapes.yaml
    python tools/train_net.py --task kinetics --config-file CFG --eval-only --weights ckpt.pth
    python tools/train_net.py --task kinetics --config-file CFG --resume          # continue `last`
    python tools/train_net.py --task kinetics --config-file CFG --num-gpus 8     # one machine
    python tools/train_net.py --task kinetics --config-file CFG SOLVER.MAX_EPOCH 5 --device cpu
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint host0:29500 tools/train_net.py ...

``--task`` takes a registered name (see ``--help``), ``package.module`` or
``package.module:TaskClass`` (third-party projects need no change here). Flags may come before
or after the ``KEY VALUE`` overrides. ``--weights FILE``: the weights ``--eval-only`` evaluates
(before ``TEST.CHECKPOINT_FILE_PATH``); for training, the initial weights (``MODEL.WEIGHTS
FILE``). ``--device cpu`` trains on the CPU (Gloo processes with ``--num-gpus N``);
``--device cuda:N`` picks one GPU of a one-process run.
"""
from __future__ import annotations

import argparse
import logging
import sys
import os
from typing import Any, Dict, Optional, Sequence


from mvit_tasks.config import load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.engine.launch import launch, select_device
from mvit_tasks.tasks import list_tasks, resolve_task
from mvit_tasks.utils.cli import add_device_argument, parse_flags_and_overrides
from mvit_tasks.utils.fileio import dumps_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__ + "\nregistered tasks: " + ", ".join(list_tasks()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="task name or package.module[:TaskClass] (required)")
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="a YAML path, or a shipped recipe's name (see --list-configs)")
    p.add_argument("--list-configs", action="store_true",
                   help="print the shipped config recipes (usable as --config-file) and exit")
    p.add_argument("--eval-only", action="store_true",
                   help="evaluate --weights / TEST.CHECKPOINT_FILE_PATH / MODEL.WEIGHTS (or "
                        "`last` with --resume)")
    p.add_argument("--weights", default="", metavar="FILE",
                   help="--eval-only: the weights to evaluate; training: the initial weights "
                        "(= MODEL.WEIGHTS FILE)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT_DIR/checkpoints/last.pth (exact: optimizer, RNG, data position)")
    p.add_argument("--num-gpus", type=int, default=1,
                   help="processes per machine (GPUs; on a CPU-only machine, Gloo CPU processes)")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0, or auto")
    add_device_argument(p)  # --cpu: its deprecated alias
    p.add_argument("--overwrite", action="store_true",
                   help="train in an OUTPUT_DIR that holds another run: its files are deleted "
                        "first (without it, such a folder is refused)")
    p.add_argument("--random-weights", action="store_true",
                   help="--eval-only without weights: evaluate the randomly initialised model "
                        "on purpose (without it, that is an error)")
    p.add_argument("--debug", action="store_true", help="show the traceback of user errors")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="KEY VALUE config overrides (flags may follow them)")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = build_parser()
    args = parse_flags_and_overrides(p, argv)
    if args.list_configs:
        from mvit_tasks.config.recipes import list_recipes

        print("\n".join(r for r in list_recipes() if not r.startswith("configs/")))
        raise SystemExit(0)
    if not args.task:
        p.error("the following arguments are required: --task")
    if args.weights and args.resume and args.eval_only:
        p.error("--eval-only: --weights or --resume (the `last` checkpoint), not both")
    return args


def config_opts(args: argparse.Namespace) -> list:
    """The ``KEY VALUE`` overrides, with ``--weights`` as ``MODEL.WEIGHTS`` when training."""
    if args.weights and not args.eval_only:
        return [*args.opts, "MODEL.WEIGHTS", args.weights]
    return list(args.opts)


def select_run_device(spec: Optional[str]) -> Any:
    """This process's device: ``--device cuda:N`` as given, else :func:`select_device` (each
    process its ``cuda:LOCAL_RANK``; without ``--device``, the CPU when there is no CUDA)."""
    import torch

    if spec and spec.startswith("cuda:"):
        device = torch.device(spec)
        torch.cuda.set_device(device)
        return device
    return select_device(use_cuda=spec != "cpu")


def check_device(args: argparse.Namespace) -> None:
    """Before any process starts: ``--device`` names a device this machine has; ``cuda:N``
    only for a one-process run."""
    from mvit_tasks.utils.cli import UserError, resolve_device

    if args.device is None or args.device == "cpu":
        return
    device = resolve_device(args.device)
    world = max(args.num_gpus * args.num_machines, int(os.environ.get("WORLD_SIZE", 1)))
    if device.index is not None and world > 1:
        raise UserError(f"--device {args.device}: one GPU for a one-process run; with "
                        "--num-gpus N each process takes its own GPU (--device cuda)")


def main_worker(args: argparse.Namespace) -> Dict[str, Any]:
    """Per-process entry: config, task, trainer; returns the final report / eval results."""
    import torch

    from mvit_tasks.engine.checkpointer import Checkpointer
    from mvit_tasks.engine.trainer import Trainer, evaluate_weights
    from mvit_tasks.utils import comm

    logging.basicConfig(level=logging.INFO if comm.is_main_process() else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    task_cls = resolve_task(args.task)
    cfg = load_config(args.config_file, config_opts(args) + ["NUM_GPUS", str(args.num_gpus)],
                      extra_config_fns=[add_engine_config, task_cls.add_config])
    device = select_run_device(args.device)
    if cfg.TRAIN.DETERMINISTIC:
        torch.use_deterministic_algorithms(True)
    task = task_cls(cfg)
    if args.eval_only or not cfg.TRAIN.ENABLE:  # SlowFast: TRAIN.ENABLE False = test only
        weights = args.weights or cfg.TEST.CHECKPOINT_FILE_PATH
        if args.resume:
            weights = Checkpointer(cfg.OUTPUT_DIR).path("last")
        if not (weights or cfg.MODEL.WEIGHTS or args.random_weights):
            from mvit_tasks.utils.cli import UserError

            raise UserError("--eval-only without --weights, TEST.CHECKPOINT_FILE_PATH or "
                            "MODEL.WEIGHTS would score a randomly initialised model: give the "
                            "weights, or --random-weights to do that on purpose")
        out = evaluate_weights(cfg, task, device, weights)
    else:
        out = Trainer(cfg, task, device).train(resume=args.resume)
    if comm.is_main_process():
        print(dumps_json(out.get("results", {}), indent=2), flush=True)
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    check_device(args)
    _claim_output_dir(args)
    return launch(main_worker, args.num_gpus, args.num_machines, args.machine_rank,
                  args.dist_url, args=(args,),
                  backend="gloo" if args.device == "cpu" else "auto")


def _claim_output_dir(args: argparse.Namespace) -> None:
    """Before any process starts: a new training run refuses another run's OUTPUT_DIR (or,
    with --overwrite, deletes that run's files)."""
    from mvit_tasks.engine.output_dir import claim_output_dir

    if args.eval_only or args.machine_rank != 0:
        return
    task_cls = resolve_task(args.task)
    cfg = load_config(args.config_file, config_opts(args),
                      extra_config_fns=[add_engine_config, task_cls.add_config])
    if not cfg.TRAIN.ENABLE:
        return
    removed = claim_output_dir(cfg.OUTPUT_DIR, args.resume or cfg.TRAIN.AUTO_RESUME,
                               args.overwrite)
    if removed:
        print(f"--overwrite: removed the earlier run's {', '.join(removed)} from "
              f"{cfg.OUTPUT_DIR}", file=sys.stderr)


def cli() -> None:
    """Console script ``mvit-train``: user errors are one line and exit 2 (``--debug``: traceback)."""
    from mvit_tasks.utils.cli import run_cli

    sys.exit(run_cli(main, sys.argv[1:]))


if __name__ == "__main__":  # python -m mvit_tasks.cli.train_net
    cli()
