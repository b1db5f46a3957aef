"""AVA keyframe dataset: clip timing, box-aware transforms, frame folders, skips, collate."""
import numpy as np
import pytest
import torch
from PIL import Image

from mvit_tasks.data.video_io import write_video
from mvit_tasks.projects.ava.collate import ava_collate
from mvit_tasks.projects.ava.converters import KeyframeRecord
from mvit_tasks.projects.ava.dataset import (
    AvaKeyframeDataset, clip_indices, crop_clip_and_boxes, hflip_clip_and_boxes,
    resize_clip_and_boxes,
)


def _rec(vid, ts, boxes, labels):
    return KeyframeRecord(vid, ts, np.asarray(boxes, np.float32), labels,
                          np.ones(len(boxes), np.float32), "mem")


def test_clip_indices_centre_and_clamp():
    assert clip_indices(60, 4, 2, 1000) == [56, 58, 60, 62]  # keyframe at position T // 2
    assert clip_indices(2, 4, 2, 1000) == [0, 0, 2, 4]
    assert clip_indices(9, 4, 2, 10) == [5, 7, 9, 9]


def test_flip_crop_resize_keep_boxes_on_the_object():
    video = torch.zeros(2, 3, 20, 30, dtype=torch.uint8)
    video[:, :, 4:10, 3:9] = 255  # object at x 3..9, y 4..10
    boxes = torch.tensor([[3.0, 4.0, 9.0, 10.0]])
    v, b = hflip_clip_and_boxes(video, boxes)
    assert b.tolist() == [[21.0, 4.0, 27.0, 10.0]]
    x1, y1, x2, y2 = b[0].int().tolist()
    assert (v[:, :, y1:y2, x1:x2] == 255).all() and int(v.sum()) == int(video.sum())
    v, b = crop_clip_and_boxes(video, boxes, top=2, left=5, size=16)
    assert b.tolist() == [[0.0, 2.0, 4.0, 8.0]] and (v[:, :, 2:8, 0:4] == 255).all()
    v, b = resize_clip_and_boxes(video, boxes, 40)  # x2 in both directions
    assert v.shape[-2:] == (40, 60) and b.tolist() == [[6.0, 8.0, 18.0, 20.0]]
    assert (v[:, :, 9:19, 7:17] == 255).all()


def _keyframe_video(path, n=60, fps=10, size=(32, 48)):
    """Frame i has brightness 4 * i (so the decoded frame index is readable)."""
    frames = np.zeros((n, *size, 3), np.uint8)
    for i in range(n):
        frames[i] = 4 * i
    write_video(path, frames, fps=fps, crf=0, options={"g": "5"})


def test_video_keyframe_clip_timing_and_test_resize(tmp_path):
    path = str(tmp_path / "v.mp4")
    _keyframe_video(path)
    rec = _rec("v", 903, [[0.25, 0.5, 0.5, 1.0]], [[2]])
    ds = AvaKeyframeDataset([rec], {"v": path}, "test", num_frames=4, sampling_rate=2,
                            num_classes=3, fps=10, start_sec=900, test_short_side=64,
                            mean=(0.0,) * 3, std=(1.0,) * 3)
    clip = ds.read_clip(rec)  # keyframe 903 s -> frame 30; clip frames 26, 28, 30, 32
    np.testing.assert_allclose(clip[:, 10, 10, 0].float().numpy() / 4, [26, 28, 30, 32], atol=1)
    s = ds[0]
    assert s["video"].shape == (3, 4, 64, 96)  # short side 64, full frame
    # y2 = 1.0 is row 32 of the 32-row frame: clipped to 31 as SlowFast's clip_boxes_to_image
    # does (x <= W - 1, y <= H - 1), then scaled by 2
    assert s["boxes"].tolist() == [[24.0, 32.0, 48.0, 62.0]]
    assert s["labels"].tolist() == [[0.0, 1.0, 0.0]]
    assert s["norm_boxes"].tolist() == [[0.25, 0.5, 0.5, 1.0]]


def _frame_folder(tmp_path, vid, n, size=(24, 40)):
    folder = tmp_path / "frames" / vid
    folder.mkdir(parents=True)
    files = []
    for i in range(n):
        img = np.zeros((*size, 3), np.uint8)
        img[6:18, 4:14] = (255, 0, 0)  # a red "person"
        p = folder / f"{vid}_{i + 1:06d}.png"
        Image.fromarray(img).save(p)
        files.append(str(p))
    return files


def test_train_sample_boxes_follow_the_person(tmp_path):
    files = _frame_folder(tmp_path, "f", 12)
    rec = _rec("f", 900, [[4 / 40, 6 / 24, 14 / 40, 18 / 24]], [[1, 3]])
    ds = AvaKeyframeDataset([rec], {"f": files}, "train", num_frames=2, sampling_rate=1,
                            num_classes=3, fps=10, start_sec=899.5, train_jitter_scales=(24, 30),
                            train_crop_size=24, flip=True, mean=(0.0,) * 3, std=(1.0,) * 3)
    flips = checked = 0
    for seed in range(8):
        s = ds[(0, seed)]
        assert s["video"].shape == (3, 2, 24, 24)
        x1, y1, x2, y2 = s["boxes"][0].tolist()
        red = s["video"][0] > 0.5  # T x H x W
        if x2 - x1 >= 3:  # the crop kept the person: the box is exactly its red pixels (+-1)
            ys, xs = red[0].nonzero(as_tuple=True)
            assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
            assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
            checked += 1
        else:  # cut out by the crop: the box is clipped to a border, no red left in the crop
            assert int(red.sum()) <= 2 * 24
        assert s["labels"].tolist() == [[1.0, 0.0, 1.0]]
        flips += x1 > 12  # the person starts on the left; flipped clips put it right
        assert torch.equal(ds[(0, seed)]["video"], s["video"])  # same seed, same sample
    assert 0 < flips < 8 and checked >= 4


def test_missing_media_is_skipped_and_counted(tmp_path):
    files = _frame_folder(tmp_path, "f", 4)
    recs = [_rec("f", 900, [[0.1, 0.1, 0.5, 0.5]], [[1]]),
            _rec("gone", 900, [[0.1, 0.1, 0.5, 0.5]], [[1]]),
            _rec("f", 900, [[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]], [[1], []])]
    media = {"f": files, "gone": str(tmp_path / "gone.mp4")}
    ds = AvaKeyframeDataset(recs, media, "test", num_frames=2, sampling_rate=1, num_classes=2,
                            fps=1, start_sec=900, test_short_side=24)
    batch = ava_collate([ds[i] for i in range(3)])
    assert batch["num_samples"] == 2 and len(batch["skipped"]) == 1
    assert batch["skipped"][0][0].endswith("gone.mp4") and "gone,900" in batch["skipped"][0][1]
    assert batch["boxes"][:, 0].tolist() == [0.0, 1.0, 1.0]
    assert batch["labels"].tolist() == [[1, 0], [1, 0], [0, 0]]
    with pytest.raises(ValueError, match="without boxes"):
        AvaKeyframeDataset([_rec("f", 900, np.zeros((0, 4)), [])], media, "test", 2, 1, 2)


def test_collate_pads_different_frame_sizes():
    def sample(h, w):
        return {"video": torch.ones(3, 2, h, w), "boxes": torch.tensor([[1.0, 1.0, 4.0, 4.0]]),
                "labels": torch.zeros(1, 2), "norm_boxes": torch.zeros(1, 4),
                "video_id": "v", "timestamp": 902}

    batch = ava_collate([sample(8, 12), sample(10, 8)])
    assert batch["video"].shape == (2, 3, 2, 10, 12)
    assert batch["video"][0, :, :, 8:].abs().sum() == 0 and batch["video"][1, :, :, :, 8:].sum() == 0
    assert batch["timestamp"].tolist() == [902, 902] and batch["video_id"] == ["v", "v"]


def test_boxes_outside_the_frame_are_clipped_and_kept_as_read(tmp_path):
    path = str(tmp_path / "v.mp4")
    _keyframe_video(path)
    rec = _rec("v", 903, [[-0.25, 0.5, 1.5, 1.0]], [[2]])  # outside [0, 1]: read, kept
    ds = AvaKeyframeDataset([rec], {"v": path}, "test", num_frames=4, sampling_rate=2,
                            num_classes=3, fps=10, start_sec=900, test_short_side=32)
    s = ds[0]
    assert s["boxes"].tolist() == [[0.0, 16.0, 47.0, 31.0]]  # the 32 x 48 frame
    assert s["norm_boxes"].tolist() == [[-0.25, 0.5, 1.5, 1.0]]  # evaluated as in the file
