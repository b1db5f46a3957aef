#!/usr/bin/env python
"""``python datasets/prepare_ava.py ARGS`` = ``mvit-prepare-ava ARGS``; the code is in
:mod:`mvit_tasks.cli.prepare_ava` (``--help``)."""
from mvit_tasks.cli.prepare_ava import cli

if __name__ == "__main__":
    cli()
