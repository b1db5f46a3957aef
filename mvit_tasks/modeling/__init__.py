"""Models: the MViT backbone family, heads, necks, meta-architectures and the one-call API.

``create_model`` / ``list_models`` (also ``mvit_tasks.create_model``), ``get_variant(name)``
(a variant's weights, ``pretrained_cfg``, ``transforms()``, ``meta``) and ``create_transform``
(the eval preprocessing of a ``pretrained_cfg``).
"""
from .backbone.variants import get_variant, list_variants
from .build import create_model, list_models
from .eval_transform import EvalTransform, create_transform

__all__ = ["EvalTransform", "create_model", "create_transform", "get_variant", "list_models",
           "list_variants"]
