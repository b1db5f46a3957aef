#!/usr/bin/env python
"""``python tools/eval_ava.py ARGS`` = ``mvit-eval-ava ARGS``; the code is in
:mod:`mvit_tasks.cli.eval_ava` (``--help``)."""
from mvit_tasks.cli.eval_ava import cli

if __name__ == "__main__":
    cli()
