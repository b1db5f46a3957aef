"""``pretrained_cfg`` (timm) and ``meta`` (torchvision) of a variant with one of its weights."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    from ...hub.weights import PretrainedWeights
    from .variants import ModelVariant


def _weights(v: "ModelVariant", tag: Optional[str]) -> Optional["PretrainedWeights"]:
    if tag is None and not v.list_weights():
        return None
    return v.weights(tag)


def _labels(name: str, num_classes: int) -> Optional[List[str]]:
    """The names of list ``name`` if it has ``num_classes`` entries (a new head has none)."""
    if not name:
        return None
    from ...data.classnames import CLASS_LISTS, load_class_names

    return load_class_names(name) if CLASS_LISTS[name][1] == num_classes else None


def pretrained_cfg(v: "ModelVariant", tag: Optional[str] = None,
                   num_classes: Optional[int] = None) -> Dict[str, Any]:
    """See :meth:`ModelVariant.pretrained_cfg`."""
    w = _weights(v, tag)
    crop = w.crop_size if w is not None else v.crop_size
    video = v.arch.video
    if w is not None:
        resize = w.resize_size
    else:  # the recipes' single-view test: short side 256 for a 224 crop
        resize = crop if v.task == "detection-backbone" else int(round(crop / 0.875))
    published = w.num_classes if w is not None else v.num_classes
    classes = published if num_classes is None else num_classes
    names = w.class_names if w is not None else v.class_names
    return {
        "architecture": v.name,
        "tag": w.tag if w is not None else "",
        "task": v.task,
        "url": w.url if w is not None else "",
        "file": w.file_name if w is not None else "",
        "page": w.page if w is not None else "",
        "source": w.source if w is not None else "",
        "sha256": w.sha256 if w is not None else None,
        "hash_prefix": w.hash_prefix if w is not None else None,
        "num_classes": classes,
        "class_names": names,
        "label_names": _labels(names, classes),
        "input_size": (3, v.num_frames, crop, crop) if video else (3, crop, crop),
        "num_frames": v.num_frames if video else 1,
        "sampling_rate": v.sampling_rate if video else 1,
        "resize_size": resize,
        "crop_pct": crop / resize,
        "interpolation": w.interpolation if w is not None else ("bilinear" if video else
                                                                  "bicubic"),
        "antialias": w.antialias if w is not None else not video,
        "crop_rounding": w.crop_rounding if w is not None else ("ceil" if video else "round"),
        "mean": tuple(w.mean if w is not None and w.mean else v.mean),
        "std": tuple(w.std if w is not None and w.std else v.std),
        "test_views": (w.test_views if w is not None else "") or v.views,
        "dataset": w.dataset if w is not None else v.dataset,
        "metrics": dict(w.metrics if w is not None else v.metrics),
    }


def meta(v: "ModelVariant", tag: Optional[str] = None) -> Dict[str, Any]:
    """See :meth:`ModelVariant.meta`."""
    from .zoo_table import count_parameters

    cfg = pretrained_cfg(v, tag)
    crop = cfg["input_size"][-1]
    w = _weights(v, tag)
    out: Dict[str, Any] = {
        "categories": cfg["label_names"],
        "num_params": count_parameters(
            v.name, None if v.task == "detection-backbone" else cfg["num_classes"]),
        "min_size": (crop, crop),
        "recipe": v.source,
        "_metrics": {cfg["dataset"]: cfg["metrics"]} if cfg["metrics"] else {},
        "_ops": v.gflops,
        "_file_size": w.size_mb if w is not None else None,
        "url": cfg["url"],
        "page": cfg["page"],
        "verified": bool(w is not None and w.verified),
        "notes": w.notes if w is not None else "",
    }
    if v.arch.video:
        out["min_temporal_size"] = v.num_frames
    return out
