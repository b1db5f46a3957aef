#!/usr/bin/env python
"""Speed and memory benchmarks: the command line of :mod:`mvit_tasks.benchmark`.

``--mode backbone`` (default) times our MViT models against torchvision / timm / pytorchvideo
with identical weights; see ``--help`` or ``mvit_tasks/benchmark/`` for the details.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Sequence


from mvit_tasks.benchmark import MODES, description, register, run_benchmark
from mvit_tasks.benchmark.common import run_spec_file
from mvit_tasks.utils.cli import add_aliases


def register_project_modes() -> None:
    """Add the modes of ``projects/<name>/benchmark.py`` (``MODE_NAME``, ``add_args``, ``run``,
    ``table``; more in an optional ``EXTRA_MODES = {name: mode}``), e.g. ``ava_eval``; the
    projects stay unknown to the core."""
    from mvit_tasks.tasks import project_submodules

    for module in project_submodules("benchmark").values():
        register(module.MODE_NAME, module)
        for mode_name, mode in getattr(module, "EXTRA_MODES", {}).items():
            register(mode_name, mode)


register_project_modes()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mode", choices=sorted(MODES), default="backbone")
    # dest out / batch: the names in the report's "config"
    p.add_argument("--json", dest="out", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--batch-size", dest="batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=16, help="clip length of the video models")
    p.add_argument("--size", type=int, default=224, help="spatial size (video and images)")
    p.add_argument("--image-size", type=int, default=None,
                   help="image models' size (default: --size)")
    p.add_argument("--iters", type=int, default=2, help="timed inference forwards")
    p.add_argument("--warmup", type=int, default=1, help="untimed inference forwards first")
    p.add_argument("--train-iters", type=int, default=3,
                   help="timed training steps (default: %(default)s)")
    p.add_argument("--train-warmup", type=int, default=1,
                   help="untimed training steps first (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: one isolated measurement
    for add_args, _ in MODES.values():
        add_args(p)
    add_aliases(p, [("--out", "--json"), ("--batch", "--batch-size")])
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        return run_spec_file(args.child)
    return run_benchmark(args)


def cli() -> None:
    """Console script ``mvit-benchmark``."""
    main()  # the result (a dict) is printed by main; exit status 0


if __name__ == "__main__":  # python -m mvit_tasks.cli.benchmark
    cli()
