#!/usr/bin/env python
"""``python datasets/prepare_kinetics.py ARGS`` = ``mvit-prepare-kinetics ARGS``; the code is in
:mod:`mvit_tasks.cli.prepare_kinetics` (``--help``)."""
from mvit_tasks.cli.prepare_kinetics import cli

if __name__ == "__main__":
    cli()
