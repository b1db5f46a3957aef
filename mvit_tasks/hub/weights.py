"""What one published weights file is: its address, how to check it, what it was trained for.

The entries themselves live next to the variants
(:mod:`mvit_tasks.modeling.backbone.pretrained`); this module knows no model.
"""
from __future__ import annotations

import os
import posixpath
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class PretrainedWeights:
    """One official weights file of a registered variant.

    Attributes:
        tag: name of these weights for the variant (``create_model("mvitv2_s_16x4.ssv2")``).
        url: the address, verbatim as the ``page`` publishes it.
        page: where the address is published (the citation).
        source: converter that reads the file (``slowfast``, ``mvit``, ``torchvision``,
            ``timm``, ``pytorchvideo``, ``detectron2``).
        dataset: what the weights were trained / fine-tuned on.
        num_classes: rows of the file's classification head (0: no classification head).
        class_names: a list of :mod:`mvit_tasks.data.classnames` (``""``: none shipped).
        sha256: the full published sha256, or None where the page publishes none.
        hash_prefix: a published sha256 prefix (torchvision's ``name-<prefix>.pth`` file names,
            checked like ``torch.hub``'s ``check_hash``), or None.
        size_mb: published file size in MB (torchvision's ``_file_size``), or None.
        metrics: the page's numbers for these weights.
        resize_size / crop_size: eval preprocessing: short side, then a centre crop (pixels).
        interpolation: ``"bilinear"`` or ``"bicubic"``; ``antialias``: antialiased resize.
        crop_rounding: ``"ceil"`` (SlowFast ``uniform_crop``) or ``"round"`` (torchvision /
            PIL ``center_crop``) for the crop offset of an odd margin.
        mean / std: normalisation (RGB, 0-1); None: the variant's.
        test_views: the published test views ("spatial crops x temporal clips").
        direct: False when ``url`` is a page (Google Drive) that no tool can download.
        file: cache / mirror file name (default: the last part of ``url``).
        notes: anything a user must know (unverified architecture, converted copy, ...).
    """

    tag: str
    url: str
    page: str
    source: str
    dataset: str
    num_classes: int
    class_names: str = ""
    sha256: Optional[str] = None
    hash_prefix: Optional[str] = None
    size_mb: Optional[float] = None
    metrics: Dict[str, float] = field(default_factory=dict)
    resize_size: int = 256
    crop_size: int = 224
    interpolation: str = "bilinear"
    antialias: bool = False
    crop_rounding: str = "ceil"
    mean: Optional[Tuple[float, float, float]] = None
    std: Optional[Tuple[float, float, float]] = None
    test_views: str = ""
    direct: bool = True
    file: str = ""
    notes: str = ""

    @property
    def file_name(self) -> str:
        """Name of the file in the cache and in a mirror folder."""
        return self.file or url_basename(self.url)

    @property
    def verified(self) -> bool:
        """Whether a published hash is checked on download."""
        return bool(self.sha256 or self.hash_prefix)

    @property
    def crop_pct(self) -> float:
        return self.crop_size / self.resize_size


def url_basename(url: str) -> str:
    """Last part of the path of ``url`` (``file://`` and plain paths included)."""
    path = urllib.parse.urlparse(url).path if "://" in url else url
    return posixpath.basename(path) or os.path.basename(url)
