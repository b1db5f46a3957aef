#!/usr/bin/env python
"""``python tools/analyze_model.py ARGS`` = ``mvit-analyze ARGS``; the code is in
:mod:`mvit_tasks.cli.analyze_model` (``--help``)."""
from mvit_tasks.cli.analyze_model import cli

if __name__ == "__main__":
    cli()
