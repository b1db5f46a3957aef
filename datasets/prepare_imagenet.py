#!/usr/bin/env python
"""``python datasets/prepare_imagenet.py ARGS`` = ``mvit-prepare-imagenet ARGS``; the code is in
:mod:`mvit_tasks.cli.prepare_imagenet` (``--help``)."""
from mvit_tasks.cli.prepare_imagenet import cli

if __name__ == "__main__":
    cli()
