"""Optional detectron2 adapter: our backbone + FPN as a detectron2 ``Backbone``.

detectron2 (facebookresearch/detectron2) publishes no wheels for current torch and has no sources
on PyPI, so it is optional. When ``import detectron2`` works,
:func:`register_detectron2_backbone` adds ``build_mvit_tasks_fpn_backbone`` to detectron2's
``BACKBONE_REGISTRY`` (signature ``fn(cfg, input_shape) -> Backbone``, see
``detectron2/modeling/backbone/build.py``), so a yacs config with
``MODEL.BACKBONE.NAME: build_mvit_tasks_fpn_backbone`` builds an mvit-tasks variant (default
``mvitv2_t_coco``) + :class:`~mvit_tasks.modeling.necks.fpn.FPN`; LazyConfig users call
:func:`build_detectron2_backbone` directly. The wrapped module's outputs are detectron2's
``p2..p6`` with ``ShapeSpec(channels, stride)``. Its parameters keep our names
(``bottom_up.*``, ``fpn.inner_blocks.*``): load weights with mvit-tasks' converters
(``mvit_tasks.checkpoint.loader.load_weights``), not with detectron2's checkpointer.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Optional, Sequence

from torch import nn

from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.necks.fpn import FPNBackbone

BUILDER_NAME = "build_mvit_tasks_fpn_backbone"
NOT_INSTALLED = (
    "detectron2 is not installed: the detectron2 adapter needs `import detectron2` to work "
    "(it has no wheels for current torch and no sources on PyPI; build it from "
    "https://github.com/facebookresearch/detectron2). The torchvision-assembled detector "
    "(mvit_tasks.projects.coco_detection.modeling.build_mask_rcnn) needs no detectron2."
)


def detectron2_available() -> bool:
    """Whether ``detectron2.modeling`` imports."""
    try:
        importlib.import_module("detectron2.modeling")
    except ImportError:
        return False
    return True


def _d2() -> Any:
    try:
        return importlib.import_module("detectron2.modeling")
    except ImportError as e:
        raise ImportError(NOT_INSTALLED) from e


def _wrapper_class(d2: Any) -> type:
    """A detectron2 ``Backbone`` subclass around :class:`FPNBackbone` (made on first use, since
    its base class lives in detectron2)."""

    class MViTTasksFPN(d2.Backbone):
        """detectron2 ``Backbone``: ``forward(x) -> {"p2": ..., "p6": ...}`` (``B x C x h x w``)."""

        def __init__(self, body: FPNBackbone) -> None:
            super().__init__()
            self.body = body
            self._out_features = list(body.output_shape())

        def forward(self, x):  # type: ignore[override]
            return dict(self.body(x))

        def output_shape(self) -> Dict[str, Any]:
            return {n: d2.ShapeSpec(channels=s.channels, stride=s.stride)
                    for n, s in self.body.output_shape().items()}

        @property
        def size_divisibility(self) -> int:
            return self.body.size_divisibility

        @property
        def padding_constraints(self) -> Dict[str, int]:
            return {"size_divisibility": self.body.size_divisibility}

    return MViTTasksFPN


def build_detectron2_backbone(
    variant: str = "mvitv2_t_coco",
    in_features: Sequence[str] = ("scale2", "scale3", "scale4", "scale5"),
    out_channels: int = 256,
    norm: str = "",
    top_block: str = "maxpool",
    arch_overrides: Optional[Dict[str, Any]] = None,
    arch: Optional[MViTArch] = None,
) -> nn.Module:
    """A detectron2 ``Backbone``: the registered mvit-tasks ``variant``'s architecture (or
    ``arch``), with ``arch_overrides`` applied, + FPN.

    Raises:
        ImportError: detectron2 is not installed (the message says why and what to use).
    """
    d2 = _d2()
    arch = arch if arch is not None else get_variant(variant).arch
    if arch_overrides:
        arch = arch.replace(**arch_overrides)
    body = FPNBackbone.build(MViT(arch), in_features=tuple(in_features), out_channels=out_channels,
                             norm=norm, top_block=top_block)
    return _wrapper_class(d2)(body)


def _from_cfg(cfg: Any, input_shape: Any = None) -> nn.Module:
    """detectron2 yacs builder: ``MODEL.MVIT_TASKS.VARIANT`` and ``MODEL.FPN.*``."""
    variant = "mvitv2_t_coco"
    node = getattr(cfg.MODEL, "MVIT_TASKS", None)
    if node is not None and getattr(node, "VARIANT", ""):
        variant = node.VARIANT
    fpn = cfg.MODEL.FPN
    in_features = tuple(fpn.IN_FEATURES) or ("scale2", "scale3", "scale4", "scale5")
    return build_detectron2_backbone(variant, in_features, fpn.OUT_CHANNELS, fpn.NORM)


def register_detectron2_backbone(name: str = BUILDER_NAME) -> Callable[..., nn.Module]:
    """Register the yacs builder in detectron2's ``BACKBONE_REGISTRY`` (idempotent); returns it.

    Raises:
        ImportError: detectron2 is not installed (the message says why and what to use).
    """
    registry = _d2().BACKBONE_REGISTRY
    if name in registry:
        return registry.get(name)

    def builder(cfg: Any, input_shape: Any = None) -> nn.Module:
        return _from_cfg(cfg, input_shape)

    builder.__name__ = name  # detectron2's Registry.register(obj) keys by obj.__name__
    registry.register(builder)
    return builder


__all__ = [
    "BUILDER_NAME",
    "NOT_INSTALLED",
    "build_detectron2_backbone",
    "detectron2_available",
    "register_detectron2_backbone",
]
