"""Speed and memory benchmarks; one module per mode (``tools/benchmark.py --mode <name>``).

Output: a table on stdout and, with ``--json``, a JSON file with the machine, the config, the
mode's results (``"results": [...]``) and the total time. Do not read much into CPU numbers
measured on a busy machine; the run records the load average for that reason.

Examples::

    python tools/benchmark.py --json bench.json                    # 1 x 3 x 16 x 224 x 224, CPU
    python tools/benchmark.py --device cuda --batch-size 8 --iters 20 --warmup 5 --json gpu.json
    python tools/benchmark.py --pairs timm_v2_t --size 64 --frames 4 --iters 1 --warmup 0

Adding a mode: write a module with ``add_args(parser)`` (its own argument group),
``run(args) -> dict`` returning ``{"results": [...], ...}`` and ``table(results) -> [lines]``,
then ``register("<mode>", module)`` below. ``common`` has the shared timing, memory,
isolation and output helpers.
"""
from __future__ import annotations

import argparse
import sys
import time
from types import ModuleType
from typing import Any, Callable, Dict, Tuple

from . import backbone
from .common import machine_info, write_json

AddArgs = Callable[[argparse.ArgumentParser], None]
Runner = Callable[[argparse.Namespace], Dict[str, Any]]

# mode -> (argument hook, runner)
MODES: Dict[str, Tuple[AddArgs, Runner]] = {}
_MODULES: Dict[str, ModuleType] = {}


def register(name: str, module: ModuleType) -> None:
    """Make ``module`` (``add_args``, ``run``, ``table``) available as ``--mode name``."""
    MODES[name] = (module.add_args, module.run)
    _MODULES[name] = module


register("backbone", backbone)


def description() -> str:
    """The ``--help`` text: this package's docstring and each mode module's."""
    return "\n\n".join([__doc__ or ""] + [m.__doc__ or "" for m in _MODULES.values()])


def format_table(report: Dict[str, Any]) -> str:
    """The final table: machine and config lines, then the mode's own lines."""
    m, c = report["machine"], report["config"]
    lines = [
        f"mode {report['mode']} | torch {m['torch']} | device {m['device']} ({m['device_name']}) | "
        f"threads {c['threads'] or m['torch_threads']} | load {m.get('loadavg')}",
        f"batch {c['batch']}, video {c['frames']}x{c['size']}x{c['size']}, images "
        f"{c['image_size'] or c['size']}^2, forward warmup {c['warmup']} + iters {c['iters']}, "
        f"train warmup {c['train_warmup']} + iters {c['train_iters']}",
    ]
    lines += _MODULES[report["mode"]].table(report.get("results", []))
    return "\n".join(lines)


def run_benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Run ``args.mode``, print the table, write ``args.out`` (``--json``); returns the report."""
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k not in ("child", "out", "verbose")}
    t0 = time.time()
    print(f"mode {args.mode}: " + ", ".join(f"{k}={v}" for k, v in config.items() if k != "mode"),
          flush=True)
    _, runner = MODES[args.mode]
    body = runner(args)
    report = {"mode": args.mode, "machine": machine_info(args.device), "config": config, **body,
              "total_time_s": time.time() - t0}
    print()
    print(format_table(report))
    print(f"total {report['total_time_s']:.0f} s")
    if args.out:
        write_json(args.out, report)
        print(f"wrote {args.out}")
    sys.stdout.flush()
    return report
