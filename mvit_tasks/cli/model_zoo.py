#!/usr/bin/env python
"""Print the model-zoo table (markdown) generated from the registered variants."""
import argparse
import sys
from typing import Optional, Sequence


from mvit_tasks.modeling.backbone.zoo_table import model_zoo_markdown


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=__doc__)  # no options: --help only


def main(argv: Optional[Sequence[str]] = None) -> int:
    build_parser().parse_args(argv)
    print(model_zoo_markdown())
    return 0


def cli() -> None:
    """Console script ``mvit-model-zoo``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.model_zoo
    cli()
