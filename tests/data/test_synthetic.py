"""Moving Shapes generator: files, manifests, determinism, reuse, and that labels are motions."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mvit_tasks.data.synthetic import (
    CLASSES,
    actor_track,
    generate_moving_shapes,
    read_labels,
    read_manifest,
    render_clip,
)
from mvit_tasks.data.video_io import read_clip

KW = dict(num_frames=8, size=32, fps=8, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("shapes"))
    info = generate_moving_shapes(root, 2, 1, **KW)
    assert info == {"root": root, "classes": list(CLASSES), "num_train": 2 * len(CLASSES),
                    "num_val": len(CLASSES), "reused": False}
    return root


def test_layout_and_manifests(dataset):
    assert len(CLASSES) >= 5  # chance <= 20 %
    assert read_labels(dataset) == list(CLASSES)
    for split, per_class in (("train", 2), ("val", 1)):
        with open(os.path.join(dataset, f"{split}.csv")) as f:
            lines = f.read().splitlines()
        assert lines[0] == "path,label"
        rel = [line.split(",")[0] for line in lines[1:]]
        assert all(not os.path.isabs(p) and p.startswith(f"{split}/") for p in rel)
        entries = read_manifest(dataset, split)
        labels = [y for _, y in entries]
        assert sorted(labels) == sorted(list(range(len(CLASSES))) * per_class)
        for path, y in entries:
            assert CLASSES[y] in path and path.endswith(".mp4")
            with open(path, "rb") as f:
                assert f.read(12)[4:8] == b"ftyp"  # a real MP4 file
    meta = json.load(open(os.path.join(dataset, "meta.json")))
    assert meta["num_frames"] == 8 and meta["size"] == 32 and meta["seed"] == 3


def test_clips_decode_to_the_rendered_frames(dataset):
    path, y = read_manifest(dataset, "train")[0]
    clip = read_clip(path, 8, start=0).numpy()
    assert clip.shape == (8, 32, 32, 3)
    rendered = render_clip(CLASSES[y], np.random.default_rng([3, 0, y, 0]), 8, 32)
    # H.264 at crf 18 with 4:2:0 chroma: close on average, not bit-exact
    assert np.abs(clip.astype(float) - rendered).mean() < 6


def test_reuse_and_regeneration(dataset, tmp_path):
    clip0 = os.path.join(dataset, "train", CLASSES[0], "00000.mp4")
    stamp = os.stat(clip0).st_mtime_ns
    assert generate_moving_shapes(dataset, 2, 1, **KW)["reused"] is True
    assert os.stat(clip0).st_mtime_ns == stamp

    root = str(tmp_path / "regen")
    generate_moving_shapes(root, 2, 1, **KW)
    old = [p for p, _ in read_manifest(root, "train")]
    info = generate_moving_shapes(root, 1, 1, **KW)  # other parameters: regenerated
    assert info["reused"] is False and info["num_train"] == len(CLASSES)
    new = [p for p, _ in read_manifest(root, "train")]
    assert all(os.path.exists(p) for p in new)
    assert not any(os.path.exists(p) for p in set(old) - set(new))  # stale clips removed
    assert json.load(open(os.path.join(root, "meta.json")))["num_per_class_train"] == 1


def test_deterministic(dataset, tmp_path):
    other = str(tmp_path / "again")
    generate_moving_shapes(other, 2, 1, **KW)
    # Same manifests and the same content. The rendered frames are exactly reproducible (below);
    # the H.264 encoder's rate control is not bit-exact from run to run here, so decoded pixels
    # are compared with a lossy-codec tolerance.
    for (a, la), (b, lb) in zip(read_manifest(dataset, "val"), read_manifest(other, "val")):
        assert la == lb and os.path.basename(a) == os.path.basename(b)
        diff = (read_clip(a, 8).float() - read_clip(b, 8).float()).abs()
        assert diff.mean() < 1.0 and diff.max() <= 32
    a = render_clip("grow", np.random.default_rng(1), 8, 32)
    assert np.array_equal(a, render_clip("grow", np.random.default_rng(1), 8, 32))
    assert not np.array_equal(a, render_clip("grow", np.random.default_rng(2), 8, 32))


@pytest.mark.parametrize(
    "backward, forward", [("move_left", "move_right"), ("move_up", "move_down"), ("shrink", "grow")]
)
def test_opposite_classes_differ_only_by_frame_order(backward, forward):
    for k in range(3):
        fwd = render_clip(forward, np.random.default_rng(k), 8, 32)
        bwd = render_clip(backward, np.random.default_rng(k), 8, 32)
        assert np.array_equal(bwd, fwd[::-1])
        assert not np.array_equal(fwd, fwd[::-1])


@pytest.mark.parametrize("size", [32, 64])
def test_actor_moves_as_labelled_and_stays_in_frame(size):
    for k in range(20):
        rng = np.random.default_rng(k)
        right, down, grow = (actor_track(m, rng, 16, size) for m in ("move_right", "move_down",
                                                                      "grow"))
        x, y, r = right
        assert np.all(np.diff(x) > 0) and np.ptp(y) == 0 and np.ptp(r) == 0
        assert x[-1] - x[0] >= 0.3 * size - 1e-6
        x, y, r = down  # image rows grow downwards
        assert np.all(np.diff(y) > 0) and np.ptp(x) == 0 and np.ptp(r) == 0
        x, y, r = grow
        assert np.all(np.diff(r) > 0) and r[-1] >= 1.5 * r[0] and np.ptp(x) == np.ptp(y) == 0
        for x, y, r in (right, down, grow):
            assert np.all((r <= x) & (x <= size - r) & (r <= y) & (y <= size - r))

def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even"):
        generate_moving_shapes(str(tmp_path), 1, 1, size=33)
    with pytest.raises(ValueError, match="num_frames"):
        generate_moving_shapes(str(tmp_path), 1, 1, num_frames=1)
