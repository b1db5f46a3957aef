"""mvit-tasks: one MViT / MViTv2 backbone family for video classification, AVA action detection
and COCO detection.

Quick use::

    import mvit_tasks
    mvit_tasks.list_models()                      # registered variants
    model = mvit_tasks.create_model("mvitv2_s_16x4", weights="MViTv2_S_16x4_k400.pyth").eval()
    logits = model(clip)                          # clip: B x 3 x 16 x 224 x 224 -> B x 400
"""
from .modeling.build import create_model, list_models

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "__version__"]
