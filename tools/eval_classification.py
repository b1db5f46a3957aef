#!/usr/bin/env python
"""``python tools/eval_classification.py ARGS`` = ``mvit-eval-classification ARGS``; the code is in
:mod:`mvit_tasks.cli.eval_classification` (``--help``)."""
from mvit_tasks.cli.eval_classification import cli

if __name__ == "__main__":
    cli()
