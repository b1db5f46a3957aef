"""``zoo:<variant>[.<tag>]`` -> a local weights file (downloaded and checked if needed).

``zoo:mvitv2_s_16x4`` names the variant's default weights (the first downloadable entry of
:data:`mvit_tasks.modeling.backbone.pretrained.PRETRAINED`), ``zoo:mvitv2_s_16x4.ssv2`` a
tagged one. The spec is accepted wherever a weights path is: ``MODEL.WEIGHTS``,
``COCO.BACKBONE_WEIGHTS``, ``create_model(weights=...)``.
"""
from __future__ import annotations

import logging
import os
from typing import List, Optional, Tuple

from .download import MIRROR_ENV, WeightsDownloadError, cache_dir, fetch, find_local, mirror_dirs
from .weights import PretrainedWeights

logger = logging.getLogger(__name__)

ZOO_PREFIX = "zoo:"


def is_zoo_spec(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ZOO_PREFIX)


def split_name(name: str) -> Tuple[str, Optional[str]]:
    """``"mvitv2_s_16x4.ssv2"`` -> ``("mvitv2_s_16x4", "ssv2")``; no tag -> ``(name, None)``."""
    variant, _, tag = name.partition(".")
    return variant, (tag or None)


def list_weights(variant: str) -> List[PretrainedWeights]:
    """Official weights of a registered ``variant`` (KeyError for an unknown name)."""
    from ..modeling.backbone.pretrained import weights_of
    from ..modeling.backbone.variants import get_variant

    get_variant(variant)
    return list(weights_of(variant))


def get_weights(variant: str, tag: Optional[str] = None) -> PretrainedWeights:
    """The weights ``tag`` of ``variant`` (default: its first downloadable entry)."""
    entries = list_weights(variant)
    if not entries:
        raise KeyError(f"variant '{variant}' has no published official weights; pass "
                       "weights=PATH (any supported checkpoint)")
    if tag is None:
        return next((w for w in entries if w.direct), entries[0])
    for w in entries:
        if w.tag == tag:
            return w
    raise KeyError(f"variant '{variant}' has no weights tagged '{tag}'; tags: "
                   f"{[w.tag for w in entries]}")


def weights_file(weights: PretrainedWeights, progress: bool = True) -> str:
    """Local path of ``weights``: mirror, cache or download (see :mod:`.download`)."""
    if not weights.direct:
        local = find_local([weights.file_name], mirror_dirs() + [cache_dir()])
        if local is None:
            raise WeightsDownloadError(
                f"'{weights.file_name}' is published as a page, not a file: {weights.url} "
                f"({weights.page}). Download it in a browser, then put it as "
                f"'{weights.file_name}' in a ${MIRROR_ENV} folder or in {cache_dir()}, or "
                "pass its path as weights=PATH")
        logger.warning("weights '%s' (%s): UNVERIFIED - its page publishes no hash",
                       weights.file_name, os.path.dirname(local))
        return local
    return fetch(weights.url, weights.file_name, weights.sha256, weights.hash_prefix, progress)


def resolve_zoo(spec: str, progress: bool = True) -> Tuple[str, PretrainedWeights]:
    """``zoo:<variant>[.<tag>]`` -> ``(local path, weights entry)``."""
    if not is_zoo_spec(spec):
        raise ValueError(f"not a zoo spec: {spec!r} (expected '{ZOO_PREFIX}<variant>[.<tag>]')")
    variant, tag = split_name(spec[len(ZOO_PREFIX):])
    weights = get_weights(variant, tag)
    return weights_file(weights, progress), weights
