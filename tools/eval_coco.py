#!/usr/bin/env python
"""``python tools/eval_coco.py ARGS`` = ``mvit-eval-coco ARGS``; the code is in
:mod:`mvit_tasks.cli.eval_coco` (``--help``)."""
from mvit_tasks.cli.eval_coco import cli

if __name__ == "__main__":
    cli()
