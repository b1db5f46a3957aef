"""Config -> model, and the timm-style one-call API (``create_model`` / ``list_models``)."""
from __future__ import annotations

import fnmatch
import logging
from typing import List, Optional, Sequence

from torch import nn

from ..registry import BACKBONE_REGISTRY
from . import necks  # noqa: F401  (registers FPN in NECK_REGISTRY)
from .backbone.mvit import MViT
from .backbone.variants import get_variant, list_variants
from .meta_arch.classifier import Classifier

logger = logging.getLogger(__name__)

BACKBONE_REGISTRY.register("MViT", MViT)


def build_backbone(cfg) -> MViT:
    """The MViT backbone a config describes (``MODEL.VARIANT`` + ``MODEL.MVIT.*`` overrides)."""
    from ..config import arch_from_cfg

    return MViT(arch_from_cfg(cfg))


def _head_pool(pool: str, cls_embed: bool) -> str:
    if pool == "auto":
        return "cls" if cls_embed else "mean"
    return pool


def build_classifier(cfg, num_classes: Optional[int] = None) -> Classifier:
    """Backbone + ``ClipClassificationHead`` from ``MODEL.*`` keys (no weights loaded)."""
    from ..config import arch_from_cfg

    arch = arch_from_cfg(cfg)
    return Classifier.from_arch(
        arch,
        num_classes if num_classes is not None else cfg.MODEL.NUM_CLASSES,
        dropout=cfg.MODEL.HEAD.DROPOUT_RATE,
        pool=_head_pool(cfg.MODEL.HEAD.POOL, arch.cls_embed),
    )


def list_models(pattern: str = "*", task: Optional[str] = None) -> List[str]:
    """Registered variant names matching a glob ``pattern``; ``task`` filters by
    ``"video"``, ``"image"`` or ``"detection-backbone"``."""
    return [n for n in list_variants(task) if fnmatch.fnmatch(n, pattern)]


def create_model(
    name: Optional[str] = None,
    *,
    config_file: Optional[str] = None,
    weights: Optional[str] = None,
    num_classes: Optional[int] = None,
    opts: Sequence[str] = (),
    weights_source: Optional[str] = None,
) -> nn.Module:
    """Build a registered variant or the model a config file describes, optionally with weights.

    Args:
        name: a name from :func:`list_models` (e.g. ``"mvitv2_s_16x4"``).
        config_file: an mvit-tasks config YAML (``_BASE_`` allowed); ``opts`` are ``KEY VALUE``
            overrides. Exactly one of ``name`` / ``config_file`` is required.
        weights: a checkpoint of any supported source (SlowFast, mvit, torchvision, timm,
            pytorchvideo, detectron2, ours), auto-detected and converted; defaults to the
            config's ``MODEL.WEIGHTS``.
        num_classes: classes of the new head. When it differs from the checkpoint's, the head is
            re-initialised (the backbone is still loaded strictly).

    Returns:
        A :class:`Classifier` (``model(x) -> B x num_classes`` logits for ``B x 3 x T x H x W``
        video or ``B x 3 x H x W`` images), or the head-less :class:`MViT` backbone for the
        ``*_coco`` detection backbones when ``num_classes`` is not given. The model is in train
        mode, like any new ``nn.Module``; call ``.eval()`` for inference.
    """
    from ..checkpoint.loader import load_weights

    if (name is None) == (config_file is None):
        raise ValueError("create_model needs exactly one of `name` or `config_file`")
    allow_missing: List[str] = []
    allow_unexpected: List[str] = []
    unsafe = False
    source = weights_source or "auto"
    if name is not None:
        variant = get_variant(name)
        classes = num_classes if num_classes is not None else variant.num_classes
        if classes == 0:
            model: nn.Module = MViT(variant.arch)
        else:
            model = Classifier.from_arch(variant.arch, classes, dropout=variant.head_dropout)
    else:
        from ..config import load_config

        cfg = load_config(config_file, list(opts))
        model = build_classifier(cfg, num_classes)
        weights = weights or cfg.MODEL.WEIGHTS or None
        allow_missing += list(cfg.MODEL.WEIGHTS_ALLOW_MISSING)
        allow_unexpected += list(cfg.MODEL.WEIGHTS_ALLOW_UNEXPECTED)
        unsafe = bool(cfg.MODEL.WEIGHTS_UNSAFE_PICKLE)
        source = weights_source or cfg.MODEL.WEIGHTS_SOURCE
    if weights:
        if num_classes is not None:
            allow_missing.append("head.")
        if isinstance(model, MViT):
            allow_unexpected.append("head.")
            report = load_weights(_Wrap(model), weights, source, allow_missing, allow_unexpected, unsafe)
        else:
            report = load_weights(model, weights, source, allow_missing, allow_unexpected, unsafe)
        logger.info(report.summary())
    return model


class _Wrap(nn.Module):
    """Gives a bare backbone the ``backbone.`` key prefix of our checkpoints."""

    def __init__(self, backbone: MViT) -> None:
        super().__init__()
        self.backbone = backbone
