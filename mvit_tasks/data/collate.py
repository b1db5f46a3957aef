"""Batch collation for sample dicts, with repeated augmentation and skipped samples.

A dataset item is a sample dict, a list of sample dicts (repeated augmentation: several
augmented views of one decoded clip, as PySlowFast's ``AUG.NUM_SAMPLE`` / pytorchvideo's
``multiple_samples_collate``; the lists are flattened), or a skip marker
``{"skipped": (path, reason)}`` for a sample whose file could not be read. Skip markers leave
the batch and are reported in ``batch["skipped"]`` so that the engine counts them instead of
losing them silently.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch

Sample = Mapping[str, Any]
Item = Union[Sample, Sequence[Sample]]


def is_skipped(sample: Sample) -> bool:
    """True for a skip marker ``{"skipped": (path, reason)}``."""
    return "skipped" in sample


def skip_marker(path: str, reason: str) -> Dict[str, Tuple[str, str]]:
    """The marker a dataset returns instead of a sample it could not read."""
    return {"skipped": (str(path), str(reason))}


def _collate_values(key: str, values: List[Any]) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"collate: key {key!r} has tensors of different shapes {shapes}")
        return torch.stack(values)
    if isinstance(first, np.ndarray):
        return _collate_values(key, [torch.as_tensor(v) for v in values])
    if isinstance(first, bool):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, numbers.Integral):
        return torch.tensor(values, dtype=torch.long)
    if isinstance(first, numbers.Real):
        return torch.tensor(values, dtype=torch.float32)
    if isinstance(first, Mapping):
        return {k: _collate_values(f"{key}.{k}", [v[k] for v in values]) for k in first}
    return list(values)  # str, None, tuples, anything else: kept as a list


def collate_samples(items: Sequence[Item]) -> Dict[str, Any]:
    """Collate dataset items into one batch dict.

    Args:
        items: sample dicts, lists of sample dicts (flattened in order) or skip markers.

    Returns:
        ``{key: stacked}`` for every sample key (tensors stacked on a new dim 0, e.g. ``video``
        ``B x C x T x H x W``; ints -> ``LongTensor``, floats -> ``FloatTensor``, bools ->
        ``BoolTensor``, strings and other values -> lists), plus ``"num_samples"`` (int, the
        samples kept) and ``"skipped"`` (list of ``(path, reason)``). When every item was
        skipped, only ``num_samples`` (0) and ``skipped`` are present.

    Raises:
        ValueError: samples with different keys or tensor shapes under one key.
    """
    kept: List[Sample] = []
    skipped: List[Tuple[str, str]] = []
    for item in items:
        for sample in ([item] if isinstance(item, Mapping) else item):
            if is_skipped(sample):
                path, reason = sample["skipped"]
                skipped.append((path, reason))
            else:
                kept.append(sample)
    batch: Dict[str, Any] = {"num_samples": len(kept), "skipped": skipped}
    if not kept:
        return batch
    keys = list(kept[0].keys())
    for i, s in enumerate(kept[1:], start=1):
        if set(s.keys()) != set(keys):
            raise ValueError(f"collate: sample {i} has keys {sorted(s)}, sample 0 has "
                             f"{sorted(keys)}")
    for k in keys:
        if k in ("num_samples", "skipped"):
            raise ValueError(f"collate: sample key {k!r} is reserved for the batch")
        batch[k] = _collate_values(k, [s[k] for s in kept])
    return batch
