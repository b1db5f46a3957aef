"""mvit-tasks: one MViT / MViTv2 backbone family for video classification, AVA action detection
and COCO detection.

Quick use::

    import mvit_tasks
    mvit_tasks.list_models()                      # registered variants
    model = mvit_tasks.create_model("mvitv2_s_16x4", pretrained=True).eval()
    logits = model(clip)                          # clip: B x 3 x 16 x 224 x 224 -> B x 400

``create_model`` and ``list_models`` are imported on first use, so that tools which need no
model (``mvit-eval-ava``) do not load torch.
"""
from typing import Any

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("create_model", "list_models"):
        from mvit_tasks.modeling import build

        return getattr(build, name)
    raise AttributeError(f"module 'mvit_tasks' has no attribute {name!r}")
