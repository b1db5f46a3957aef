#!/usr/bin/env python
"""``python tools/model_zoo.py ARGS`` = ``mvit-model-zoo ARGS``; the code is in
:mod:`mvit_tasks.cli.model_zoo` (``--help``)."""
from mvit_tasks.cli.model_zoo import cli

if __name__ == "__main__":
    cli()
