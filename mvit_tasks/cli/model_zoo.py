#!/usr/bin/env python
"""Print the model-zoo table (markdown) generated from the registered variants."""
import sys


from mvit_tasks.modeling.backbone.zoo_table import model_zoo_markdown

def main() -> int:
    print(model_zoo_markdown())
    return 0


def cli() -> None:
    """Console script ``mvit-model-zoo``."""
    sys.exit(main())


if __name__ == "__main__":  # python -m mvit_tasks.cli.model_zoo
    cli()
