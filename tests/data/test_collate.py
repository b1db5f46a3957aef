"""collate_samples: stacking, repeated-augmentation lists, skip markers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mvit_tasks.data.collate import collate_samples, is_skipped, skip_marker


def _sample(i: int, label: int = 0) -> dict:
    return {"video": torch.full((3, 2, 4, 4), float(i)), "label": label, "video_id": f"v{i}",
            "view": 0, "index": i, "weight": 0.5, "flipped": bool(i % 2),
            "mask": np.ones(2, np.float32)}


def test_stack_types():
    batch = collate_samples([_sample(0, 3), _sample(1, 5)])
    assert batch["num_samples"] == 2 and batch["skipped"] == []
    assert batch["video"].shape == (2, 3, 2, 4, 4)
    assert float(batch["video"][1].mean()) == 1.0
    assert batch["label"].dtype == torch.long and batch["label"].tolist() == [3, 5]
    assert batch["index"].tolist() == [0, 1]
    assert batch["video_id"] == ["v0", "v1"]
    assert batch["weight"].dtype == torch.float32
    assert batch["flipped"].dtype == torch.bool and batch["flipped"].tolist() == [False, True]
    assert batch["mask"].shape == (2, 2)


def test_repeated_samples_are_flattened_in_order():
    batch = collate_samples([[_sample(0), _sample(1)], [_sample(2), _sample(3)]])
    assert batch["num_samples"] == 4 and batch["index"].tolist() == [0, 1, 2, 3]
    assert batch["video"].shape[0] == 4


def test_skip_markers_are_removed_and_reported():
    items = [_sample(0), skip_marker("/d/a.mp4", "truncated"), [_sample(1), _sample(2)],
             skip_marker("/d/b.mp4", "file not found")]
    assert is_skipped(items[1]) and not is_skipped(items[0])
    batch = collate_samples(items)
    assert batch["num_samples"] == 3 and batch["video"].shape[0] == 3
    assert batch["skipped"] == [("/d/a.mp4", "truncated"), ("/d/b.mp4", "file not found")]


def test_all_skipped_gives_no_tensors():
    batch = collate_samples([skip_marker("a", "x"), skip_marker("b", "y")])
    assert batch == {"num_samples": 0, "skipped": [("a", "x"), ("b", "y")]}
    assert collate_samples([]) == {"num_samples": 0, "skipped": []}


def test_inconsistent_samples_raise():
    other = _sample(1)
    del other["view"]
    with pytest.raises(ValueError, match="keys"):
        collate_samples([_sample(0), other])
    bad = _sample(1)
    bad["video"] = torch.zeros(3, 2, 5, 4)
    with pytest.raises(ValueError, match="'video'.*shapes"):
        collate_samples([_sample(0), bad])
    with pytest.raises(ValueError, match="reserved"):
        collate_samples([{"num_samples": 1}])
