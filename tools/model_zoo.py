#!/usr/bin/env python
"""Print the model-zoo table (markdown) generated from the registered variants."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mvit_tasks.modeling.backbone.zoo_table import model_zoo_markdown  # noqa: E402

if __name__ == "__main__":
    print(model_zoo_markdown())
