#!/usr/bin/env python
"""``python tools/export.py ARGS`` = ``mvit-export ARGS``; the code is in
:mod:`mvit_tasks.cli.export` (``--help``)."""
from mvit_tasks.cli.export import cli

if __name__ == "__main__":
    cli()
