#!/usr/bin/env python
"""``python tools/download_weights.py ARGS`` = ``mvit-download-weights ARGS``; the code is in
:mod:`mvit_tasks.cli.download_weights` (``--help``)."""
from mvit_tasks.cli.download_weights import cli

if __name__ == "__main__":
    cli()
