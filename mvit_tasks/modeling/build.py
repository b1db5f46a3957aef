"""Config -> model, and the timm-style one-call API (``create_model`` / ``list_models``)."""
from __future__ import annotations

import fnmatch
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Union

from torch import nn

from ..registry import BACKBONE_REGISTRY
from . import necks  # noqa: F401  (registers FPN in NECK_REGISTRY)
from .backbone.mvit import MViT
from .backbone.variants import get_variant, list_variants
from .meta_arch.classifier import Classifier

if TYPE_CHECKING:
    from ..checkpoint.loader import LoadReport

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
        ``*_coco`` detection backbones when ``num_classes`` is not given. A head-less backbone
        takes the MViT of a whole detector too (detectron2 ``model_final.pkl``, the COCO task's
        checkpoints; :func:`load_backbone_weights`), logging in one line what it left aside.
        The model is in train mode, like any new ``nn.Module``; call ``.eval()`` for
        inference.
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
            report = load_backbone_weights(model, weights, source, allow_missing,
                                           allow_unexpected, unsafe)
        else:
            report = load_weights(model, weights, source, allow_missing, allow_unexpected, unsafe)
        logger.info(report.summary())
    return model


_PATCH = "patch_embed.proj.weight"


def _nested_prefix(sd: Mapping[str, Any]) -> str:
    """Where a model that nests our MViT keeps it (e.g. ``detector.backbone.bottom_up.`` in the
    COCO task's checkpoints), or ``""`` for backbones at the root / under ``backbone.`` and for
    detectron2's ``backbone.bottom_up.`` (its converter knows that one)."""
    found = [k[: -len(_PATCH)] for k in sd if k.endswith(_PATCH)]
    if len(found) == 1 and found[0].endswith(".") and found[0] not in (
            "backbone.", "backbone.bottom_up."):
        return found[0]
    return ""


def _groups(keys: Sequence[str]) -> str:
    """``"backbone.fpn_lateral* 8, roi_heads.box_head 4"``: counts by the first two name parts
    after the parts all keys share (``detector.``), trailing level numbers as ``*``."""
    parts = [k.split(".") for k in keys]
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    counts = Counter(re.sub(r"\d+$", "*", ".".join(p[: shared + 2])) for p in parts)
    return ", ".join(f"{p} {n}" for p, n in counts.items())


def load_backbone_weights(
    backbone: MViT,
    weights: Union[str, Mapping[str, Any]],
    source: str = "auto",
    allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (),
    allow_unsafe: bool = False,
) -> "LoadReport":
    """Load the MViT of any checkpoint into a bare ``backbone``: a classifier's, or a whole
    detector's (detectron2 ``backbone.bottom_up.*``, or nested deeper as in the COCO task's
    ``detector.backbone.bottom_up.*``). The backbone is loaded strictly; every other tensor (head,
    FPN, RPN, RoI heads) is left aside, listed in ``LoadReport.unexpected`` and counted by prefix
    in one note of the report's summary."""
    from ..checkpoint.converters.base import strip_prefix
    from ..checkpoint.converters.detectron2 import NATIVE_MVIT_KEY
    from ..checkpoint.io import extract_state_dict, load_checkpoint_file
    from ..checkpoint.loader import CheckpointMismatchError, load_weights

    obj = load_checkpoint_file(weights, allow_unsafe) if isinstance(weights, str) else weights
    sd = strip_prefix(extract_state_dict(obj), "module.")
    nested = _nested_prefix(sd)
    if nested:
        sd = {"backbone." + k[len(nested):] if k.startswith(nested) else k: v
              for k, v in sd.items()}
        source = "native" if source in ("auto", "", None) else source
    aside: List[str] = []

    def keep(key: str) -> Optional[str]:
        if NATIVE_MVIT_KEY.match(key):
            return key
        aside.append(key)
        return None

    try:
        report = load_weights(_Wrap(backbone), {"model": sd}, source, allow_missing,
                              allow_unexpected, rename=keep)
    except CheckpointMismatchError as e:
        name = weights if isinstance(weights, str) else "<state dict>"
        raise CheckpointMismatchError(str(e).replace("'<state dict>'", f"'{name}'", 1)) from None
    if aside:
        report.unexpected += aside
        report.notes.append(f"{len(aside)} tensors outside the backbone left aside "
                            f"({_groups(aside)})")
    return report


class _Wrap(nn.Module):
    """Gives a bare backbone the ``backbone.`` key prefix of our checkpoints."""

    def __init__(self, backbone: MViT) -> None:
        super().__init__()
        self.backbone = backbone
