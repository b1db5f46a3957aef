#!/usr/bin/env python
"""``python tools/convert_checkpoint.py ARGS`` = ``mvit-convert ARGS``; the code is in
:mod:`mvit_tasks.cli.convert_checkpoint` (``--help``)."""
from mvit_tasks.cli.convert_checkpoint import cli

if __name__ == "__main__":
    cli()
