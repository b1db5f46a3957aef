#!/usr/bin/env python
"""``python tools/benchmark.py ARGS`` = ``mvit-benchmark ARGS``; the code is in
:mod:`mvit_tasks.cli.benchmark` (``--help``)."""
from mvit_tasks.cli.benchmark import cli

if __name__ == "__main__":
    cli()
