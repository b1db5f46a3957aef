"""Config -> model, and the timm-style one-call API (``create_model`` / ``list_models``)."""
from __future__ import annotations

import fnmatch
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Union

from torch import nn

from .backbone.mvit import MViT
from .backbone.variants import get_variant, list_variants
from .meta_arch.classifier import Classifier

if TYPE_CHECKING:
    from ..checkpoint.loader import LoadReport

logger = logging.getLogger(__name__)

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
    pretrained: Union[bool, str] = False,
    *,
    config_file: Optional[str] = None,
    weights: Union[str, bool, None] = None,
    num_classes: Optional[int] = None,
    features_only: bool = False,
    opts: Sequence[str] = (),
    weights_source: Optional[str] = None,
    task: Optional[str] = None,
    progress: bool = True,
) -> nn.Module:
    """Build a registered variant or the model a config file describes, optionally with weights.

    Args:
        name: a name from :func:`list_models` (e.g. ``"mvitv2_s_16x4"``), optionally with a
            weights tag (``"mvitv2_s_16x4.ssv2"``, see ``get_variant(name).list_weights()``).
        pretrained: load the variant's official weights (``True``: the tag of ``name`` or the
            default; a string: that tag), fetched into the torch hub cache (or found in a
            ``$MVIT_TASKS_WEIGHTS_MIRROR`` folder), hash-checked where a hash is published,
            and converted from their source format. The head is sized to the weights' classes.
        config_file: an mvit-tasks config YAML (``_BASE_`` allowed); ``opts`` are ``KEY VALUE``
            overrides. Exactly one of ``name`` / ``config_file`` is required. A task's training
            config (``AVA.*``, ``COCO.*``, ``CLS.*``, ``SOLVER.*`` keys ...) gives that task's
            model (``task=`` names the task, else it is detected; see
            :mod:`mvit_tasks.modeling.task_model`).
        weights: a checkpoint of any supported source (SlowFast, mvit, torchvision, timm,
            pytorchvideo, detectron2, ours) or a ``zoo:<variant>[.<tag>]`` spec, auto-detected
            and converted; defaults to the config's ``MODEL.WEIGHTS``; ``False``: load none.
        num_classes: classes of the new head. When it differs from the checkpoint's, the head is
            re-initialised (the backbone is still loaded strictly). ``0``: no head, the model
            returns pooled ``B x C`` features (timm's convention).
        features_only: the head-less backbone, all four stages: ``model(x)`` is the dict
            ``{"scale2".."scale5": B x C_i x [T' x] H_i x W_i}`` (+ ``"cls"``).

    Returns:
        A :class:`Classifier` (``model(x) -> B x num_classes`` logits for ``B x 3 x T x H x W``
        video or ``B x 3 x H x W`` images; ``model.pretrained_cfg`` describes its weights and
        eval preprocessing, :func:`~mvit_tasks.modeling.eval_transform.create_transform`
        builds it), or the head-less :class:`MViT` backbone for ``features_only`` and the
        ``*_coco`` detection backbones when ``num_classes`` is not given. A head-less backbone
        takes the MViT of a whole detector too (detectron2 ``model_final.pkl``, the COCO task's
        checkpoints; :func:`load_backbone_weights`), logging in one line what it left aside.
        For a task's config, whatever the task's ``build_model()`` returns. The model is in
        train mode, like any new ``nn.Module``; call ``.eval()`` for inference.
    """
    if (name is None) == (config_file is None):
        raise ValueError("create_model needs exactly one of `name` or `config_file`")
    if config_file is not None:
        if pretrained:
            raise ValueError("pretrained= applies to a variant name; for a config, set "
                             "MODEL.WEIGHTS zoo:<variant> (or weights='zoo:<variant>')")
        if features_only:
            raise ValueError("features_only= applies to a variant name")
        return _from_config(config_file, opts, weights, num_classes, weights_source, task)
    return _from_name(name, pretrained, weights, num_classes, features_only, weights_source,
                      progress)


def _from_name(name: str, pretrained: Union[bool, str], weights: Union[str, bool, None],
               num_classes: Optional[int], features_only: bool, weights_source: Optional[str],
               progress: bool) -> nn.Module:
    from ..checkpoint.loader import load_weights
    from ..hub.zoo import split_name, weights_file

    variant_name, tag = split_name(name)
    if isinstance(pretrained, str):
        if tag is not None and tag != pretrained:
            raise ValueError(f"two weights tags: '{name}' and pretrained={pretrained!r}")
        tag = pretrained
    variant = get_variant(variant_name)
    entry = variant.weights(tag) if (pretrained or tag is not None) else None
    if pretrained and weights:
        raise ValueError("give either pretrained= (official weights) or weights= (a file)")
    if features_only and num_classes:
        raise ValueError("features_only=True has no head: num_classes must be None or 0")
    classes = (entry.num_classes if entry is not None else variant.num_classes) \
        if num_classes is None else num_classes
    if features_only or (num_classes is None and variant.num_classes == 0):
        model: nn.Module = MViT(variant.arch)
        classes = 0
    else:
        model = Classifier.from_arch(variant.arch, classes, dropout=variant.head_dropout)
    model.pretrained_cfg = variant.pretrained_cfg(entry.tag if entry else None, classes)
    source = weights_source or "auto"
    path: Optional[str] = weights or None
    if pretrained:
        assert entry is not None
        path = weights_file(entry, progress)
        source = weights_source or entry.source
    if not path:
        return model
    allow_missing: List[str] = []
    allow_unexpected: List[str] = []
    if isinstance(model, MViT):
        if variant.num_classes:  # a classifier's checkpoint: only its last stage has a norm
            allow_missing += [f"backbone.{s}_norm." for s in variant.arch.stage_names()[:-1]]
        report = load_backbone_weights(model, path, source, allow_missing, allow_unexpected)
    else:
        if num_classes is not None:
            allow_missing.append("head.")
        if classes == 0:
            allow_unexpected.append("head.projection.")
        report = load_weights(model, path, source, allow_missing, allow_unexpected)
    logger.info(report.summary())
    return model


def _from_config(config_file: str, opts: Sequence[str], weights: Union[str, bool, None],
                 num_classes: Optional[int], weights_source: Optional[str],
                 task: Optional[str]) -> nn.Module:
    from ..checkpoint.loader import load_weights
    from ..config import UnknownKeyError, load_config

    opts = list(opts)
    if weights is False:
        opts += ["MODEL.WEIGHTS", ""]
    cfg = None
    if task is None:
        try:
            cfg = load_config(config_file, opts)
        except UnknownKeyError:
            cfg = None  # a task's training config
    if cfg is None:
        from .task_model import build_task_model

        if isinstance(weights, str) and weights:
            opts += ["MODEL.WEIGHTS", weights]
        if weights_source:
            opts += ["MODEL.WEIGHTS_SOURCE", weights_source]
        if num_classes is not None:
            opts += ["MODEL.NUM_CLASSES", str(num_classes)]
        return build_task_model(task, config_file, opts)[0]
    model = build_classifier(cfg, num_classes)
    path = (weights or cfg.MODEL.WEIGHTS or None) if weights is not False else None
    if not path:
        return model
    allow_missing = list(cfg.MODEL.WEIGHTS_ALLOW_MISSING)
    allow_unexpected = list(cfg.MODEL.WEIGHTS_ALLOW_UNEXPECTED)
    if num_classes is not None:
        allow_missing.append("head.")
    if num_classes == 0:
        allow_unexpected.append("head.projection.")
    report = load_weights(model, path, weights_source or cfg.MODEL.WEIGHTS_SOURCE,
                          allow_missing, allow_unexpected, bool(cfg.MODEL.WEIGHTS_UNSAFE_PICKLE))
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
    from ..checkpoint.loader import CheckpointMismatchError, load_weights, resolve_weights_path

    if isinstance(weights, str):
        weights, source = resolve_weights_path(weights, source)
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
