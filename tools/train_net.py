#!/usr/bin/env python
"""``python tools/train_net.py ARGS`` = ``mvit-train ARGS``; the code is in
:mod:`mvit_tasks.cli.train_net` (``--help``)."""
from mvit_tasks.cli.train_net import cli

if __name__ == "__main__":
    cli()
