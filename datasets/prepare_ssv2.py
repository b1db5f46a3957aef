#!/usr/bin/env python
"""``python datasets/prepare_ssv2.py ARGS`` = ``mvit-prepare-ssv2 ARGS``; the code is in
:mod:`mvit_tasks.cli.prepare_ssv2` (``--help``)."""
from mvit_tasks.cli.prepare_ssv2 import cli

if __name__ == "__main__":
    cli()
