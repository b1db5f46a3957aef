"""ClipClassificationDataset on real files written on the fly: view order, temporal sampling
(frame t of the test videos is a flat grey of level 5 t + 5, so a decoded clip tells its frame
indices), seeded augmentation, label swap on flips, skip markers, repeated augmentation."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from mvit_tasks.data.collate import collate_samples
from mvit_tasks.data.manifest import ClipRecord
from mvit_tasks.data.video_io import write_video
from mvit_tasks.projects.video_classification.dataset import ClipClassificationDataset

N, H, W, FPS = 48, 48, 64, 12
SMALL = dict(train_crop_size=32, test_crop_size=32, train_jitter_scales=(36, 40),
             mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _grey_levels(n: int, step: int = 5) -> np.ndarray:
    lv = step * np.arange(n) + 5
    return np.broadcast_to(lv[:, None, None, None], (n, H, W, 3)).astype(np.uint8).copy()


def _indices(video: torch.Tensor, step: int = 5) -> list:
    """Frame indices of a normalised ``3 x T x h x w`` clip (mean 0, std 1)."""
    return [int(round((float(video[:, t].mean()) * 255 - 5) / step))
            for t in range(video.shape[1])]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("media")
    f = {k: str(root / k) for k in ("a.mp4", "b.mp4", "asym.mp4", "tex.mp4", "cut.mp4",
                                     "zero.mp4", "missing.mp4", "frames", "image.png")}
    write_video(f["a.mp4"], _grey_levels(N), fps=FPS, options={"g": "6"})
    write_video(f["b.mp4"], _grey_levels(N)[::-1].copy(), fps=FPS, options={"g": "6"})
    asym = np.full((N, H, W, 3), 30, np.uint8)
    asym[:, :, W // 2:] = 220  # bright right half: tells whether a clip was flipped
    write_video(f["asym.mp4"], asym, fps=FPS)
    tex = np.random.default_rng(0).integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    write_video(f["tex.mp4"], np.repeat(tex, 16, axis=0), fps=FPS)
    data = open(f["a.mp4"], "rb").read()
    open(f["cut.mp4"], "wb").write(data[: len(data) // 2])
    open(f["zero.mp4"], "wb").close()
    os.makedirs(f["frames"])
    for t, img in enumerate(_grey_levels(33, step=7)):
        Image.fromarray(img).save(os.path.join(f["frames"], f"{t + 1:05d}.png"))
    ramp = np.broadcast_to(np.arange(60, dtype=np.uint8)[None, :, None] * 4, (40, 60, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(f["image.png"])
    return f


def _rec(path: str, label: int = 0, **kw) -> ClipRecord:
    return ClipRecord(path, label, os.path.basename(path), line=kw.pop("line", 2), **kw)


def _ds(records, mode="train", **kw) -> ClipClassificationDataset:
    args = dict(num_frames=4, sampling_rate=2, sampling="random", decode_threads=None, **SMALL)
    args.update(kw)
    return ClipClassificationDataset(records, mode, **args)


def test_length_and_view_order(files):
    ds = _ds([_rec(files["a.mp4"], 0), _rec(files["b.mp4"], 1)], "test",
             num_ensemble_views=2, num_spatial_crops=3)
    assert len(ds) == 12 and ds.num_videos == 2
    s = ds[7]  # record 7 // 6 = 1, view 1 = temporal 0, spatial crop 1
    assert (s["index"], s["view"], s["label"], s["video_id"]) == (1, 1, 1, "b.mp4")
    assert s["video"].shape == (3, 4, 32, 32) and s["video"].dtype == torch.float32
    assert len(_ds([_rec(files["a.mp4"])] * 3)) == 3
    with pytest.raises(IndexError):
        ds[12]


def test_test_views_follow_slowfast_starts(files):
    ds = _ds([_rec(files["a.mp4"])], "test", num_ensemble_views=2)
    # 48 frames, clip size 4 * 2 = 8, delta 40; offset sampling: starts 0 and 40
    assert _indices(ds[0]["video"]) == [0, 2, 4, 6]
    assert _indices(ds[1]["video"]) == [40, 42, 44, 46]
    ds = _ds([_rec(files["a.mp4"])], "test", num_ensemble_views=2, use_offset_sampling=False)
    assert _indices(ds[1]["video"]) == [20, 22, 24, 26]  # delta * 1 / 2
    # target fps 6 on a 12-fps video: step 2 source frames for tau 1; centre clip start 20
    ds = _ds([_rec(files["a.mp4"])], "test", sampling_rate=1, target_fps=6)
    assert _indices(ds[0]["video"]) == [20, 22, 24, 26]


def test_train_sampling_is_seeded(files):
    ds = _ds([_rec(files["a.mp4"]), _rec(files["b.mp4"], 1)])
    a, b, c = ds[(0, 5)], ds[(0, 5)], ds[(0, 6)]
    assert torch.equal(a["video"], b["video"]) and not torch.equal(a["video"], c["video"])
    assert a["view"] == 0 and a["index"] == 0
    starts = set()
    for seed in range(20):
        idx = _indices(ds[(0, seed)]["video"])
        assert np.diff(idx).tolist() == [2, 2, 2] and 0 <= idx[0] <= N - 7
        starts.add(idx[0])
    assert len(starts) > 5
    # plain integer indices: the epoch is the sample seed
    assert torch.equal(ds[1]["video"], ds[(1, 0)]["video"])
    ds.set_epoch(3)
    assert torch.equal(ds[1]["video"], ds[(1, 3)]["video"])


def test_same_samples_whatever_the_worker_count(files):
    ds = _ds([_rec(files["a.mp4"]), _rec(files["b.mp4"], 1)])
    order = [(i % 2, 100 + i) for i in range(4)]

    def batches(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, sampler=order,
                                             num_workers=workers, collate_fn=collate_samples)
        return [b["video"] for b in loader]

    for x, y in zip(batches(0), batches(2)):
        assert torch.equal(x, y)


def test_flip_swaps_left_right_labels(files):
    ds = _ds([_rec(files["asym.mp4"], 0)], sampling="segment", flip=True,
             flip_label_map={0: 1, 1: 0})
    seen = set()
    for seed in range(16):
        s = ds[(0, seed)]
        v = s["video"]
        flipped = float(v[..., :8].mean()) > float(v[..., -8:].mean())
        assert s["label"] == (1 if flipped else 0)
        seen.add(flipped)
    assert seen == {True, False}
    no_flip = _ds([_rec(files["asym.mp4"], 0)], flip=False, flip_label_map={0: 1})
    assert all(no_flip[(0, s)]["label"] == 0 for s in range(6))


def test_unreadable_files_become_skip_markers(files):
    recs = [_rec(files["a.mp4"], 0), _rec(files["cut.mp4"], line=3),
            _rec(files["zero.mp4"], line=4), _rec(files["missing.mp4"], line=5),
            _rec(files["b.mp4"], 1)]
    for mode in ("train", "test"):
        ds = _ds(recs, mode)
        items = [ds[i] for i in range(5)]
        for i, name in [(1, "cut.mp4"), (2, "zero.mp4"), (3, "missing.mp4")]:
            path, reason = items[i]["skipped"]
            assert path == files[name] and f"manifest line {i + 2}" in reason
        assert "not found" in items[3]["skipped"][1]
        batch = collate_samples(items)
        assert batch["num_samples"] == 2 and batch["label"].tolist() == [0, 1]
        assert [p for p, _ in batch["skipped"]] == [files["cut.mp4"], files["zero.mp4"],
                                                    files["missing.mp4"]]
    loader = torch.utils.data.DataLoader(_ds(recs[1:4]), batch_size=3,
                                         collate_fn=collate_samples)
    only = next(iter(loader))
    assert only["num_samples"] == 0 and len(only["skipped"]) == 3 and "video" not in only


def test_repeated_samples_share_one_decode(files):
    ds = _ds([_rec(files["a.mp4"], 0), _rec(files["tex.mp4"], 1)], num_repeated_samples=3)
    clips = ds[(0, 7)]
    assert len({tuple(_indices(s["video"])) for s in clips}) == 1  # same temporal clip
    out = ds[(1, 7)]
    assert isinstance(out, list) and len(out) == 3
    assert {s["label"] for s in out} == {1} and {s["index"] for s in out} == {1}
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.equal(out[i]["video"], out[j]["video"])
    batch = collate_samples([ds[(0, 1)], out])
    assert batch["num_samples"] == 6 and batch["video"].shape == (6, 3, 4, 32, 32)
    with pytest.raises(ValueError, match="num_repeated_samples"):
        _ds([_rec(files["a.mp4"])], "test", num_repeated_samples=2)


def test_time_segments(files):
    rec = _rec(files["a.mp4"], start_sec=2.0, end_sec=3.0)  # frames 24..35 at 12 fps
    ds = _ds([rec], "test")
    # 12 frames, clip size 8: delta 4, centre start 2 -> 26..32
    assert _indices(ds[0]["video"]) == [26, 28, 30, 32]
    train = _ds([rec])
    for seed in range(8):
        idx = _indices(train[(0, seed)]["video"])
        assert 24 <= idx[0] and idx[-1] <= 35
    outside = _ds([_rec(files["a.mp4"], start_sec=10.0, end_sec=11.0)], "test")[0]
    assert outside["skipped"][0] == files["a.mp4"] and "no frame" in outside["skipped"][1]


def test_segment_sampling_on_a_frame_folder(files):
    ds = _ds([_rec(files["frames"])], "test", sampling="segment")
    # 33 frames, 4 segments: middles 4, 12, 20, 28 (frames are PNG: exact levels)
    assert _indices(ds[0]["video"], step=7) == [4, 12, 20, 28]
    train = _ds([_rec(files["frames"])], sampling="segment", flip=False)
    idx = _indices(train[(0, 1)]["video"], step=7)
    assert all(lo <= i <= hi for i, (lo, hi) in zip(idx, [(0, 8), (8, 16), (16, 24), (24, 32)]))


def test_image_mode(files):
    train = _ds([_rec(files["image.png"], 2)], sampling="image", random_resized_crop=True)
    s = train[(0, 0)]
    assert s["video"].shape == (3, 32, 32) and s["label"] == 2
    test = _ds([_rec(files["image.png"], 2)], "test", sampling="image", num_spatial_crops=3)
    crops = [test[i]["video"] for i in range(len(test))]
    assert len(crops) == 3 and all(c.shape == (3, 32, 32) for c in crops)
    left = [float(c[0, :, 0].mean()) for c in crops]  # ramp: left edge grows left -> right
    assert left[0] < left[1] < left[2]


def test_cache_gives_the_same_samples(files):
    plain = _ds([_rec(files["a.mp4"]), _rec(files["frames"])])
    cached = _ds([_rec(files["a.mp4"]), _rec(files["frames"])])
    cached.enable_cache()
    for idx in [(0, 3), (1, 4), (0, 3)]:
        assert torch.equal(plain[idx]["video"], cached[idx]["video"])
    assert len(cached._cache) == 2


def test_bad_arguments(files):
    recs = [_rec(files["a.mp4"])]
    for kw, msg in [(dict(mode="val"), "mode"), (dict(sampling="dense"), "sampling"),
                    (dict(num_spatial_crops=2), "num_spatial_crops"),
                    (dict(sampling="image", num_ensemble_views=2), "temporal views")]:
        mode = kw.pop("mode", "train")
        with pytest.raises(ValueError, match=msg):
            _ds(recs, mode, **kw)
