#!/usr/bin/env python
"""``python tools/demo.py ARGS`` = ``mvit-demo ARGS``; the code is in
:mod:`mvit_tasks.cli.demo` (``--help``)."""
from mvit_tasks.cli.demo import cli

if __name__ == "__main__":
    cli()
