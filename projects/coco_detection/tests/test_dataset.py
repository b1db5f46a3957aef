"""COCO dataset + transforms on tiny PNG files made on the fly: targets, crowd handling, skip
markers, and boxes / masks / pixels kept in sync by resize, flip, crop and LSJ."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from torchvision.io import write_png

from mvit_tasks.projects.coco_detection.converters import decode_segmentation
from mvit_tasks.projects.coco_detection.dataset import CocoDetectionDataset, collate_detection, is_skipped
from mvit_tasks.projects.coco_detection.evaluator import CocoEvaluator
from mvit_tasks.projects.coco_detection.transforms import (
    RandomHorizontalFlip,
    ResizeShortestEdge,
    build_test_transforms,
    build_train_transforms,
    masks_to_boxes,
    shortest_edge_size,
)
from torchvision.transforms import v2

H, W = 100, 200


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def _rle(x, y, s):
    r = mask_util.encode(np.asfortranarray(decode_segmentation(_square(x, y, s), H, W)))
    r["counts"] = r["counts"].decode()
    return r


@pytest.fixture
def coco(tmp_path):
    """4 images: 1 with a polygon, an RLE and a crowd annotation; 2 empty; 3 corrupt file;
    4 missing on disk."""
    root = tmp_path / "img"
    root.mkdir()
    img = torch.zeros(3, H, W, dtype=torch.uint8)
    img[0, 20:40, 10:30] = 255  # red where annotation 1 is
    img[1, 50:80, 120:150] = 255  # green where annotation 2 is
    write_png(img, str(root / "1.png"))
    write_png(torch.zeros(3, H, W, dtype=torch.uint8), str(root / "2.png"))
    (root / "3.png").write_bytes(b"not a png")
    anns = [
        {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 20, 20, 20], "iscrowd": 0,
         "segmentation": _square(10, 20, 20)},
        {"id": 2, "image_id": 1, "category_id": 9, "bbox": [120, 50, 30, 30], "iscrowd": 0,
         "segmentation": _rle(120, 50, 30)},
        {"id": 3, "image_id": 1, "category_id": 5, "bbox": [150, 5, 40, 40], "iscrowd": 1,
         "segmentation": _rle(150, 5, 40)},
        {"id": 4, "image_id": 3, "category_id": 5, "bbox": [1, 1, 10, 10], "iscrowd": 0,
         "segmentation": _square(1, 1, 10)},
        {"id": 5, "image_id": 4, "category_id": 5, "bbox": [1, 1, 10, 10], "iscrowd": 0,
         "segmentation": _square(1, 1, 10)},
    ]
    data = {"images": [{"id": i, "file_name": f"{i}.png", "height": H, "width": W}
                       for i in (1, 2, 3, 4)],
            "categories": [{"id": 9, "name": "b"}, {"id": 5, "name": "a"}], "annotations": anns}
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(data))
    return str(path), str(root)


def test_train_targets_exclude_crowd_and_empty_images(coco):
    ds = CocoDetectionDataset(*coco, train=True)
    # image 4's file is missing: kept, so reading it gives a skip marker the engine counts
    assert ds.image_ids == [1, 3, 4] and ds.num_filtered_empty == 1 and ds.dropped == []
    gone = ds[2]
    assert is_skipped(gone) and gone["skipped"][0].endswith("4.png")
    assert gone["skipped"][1] == "image 4: file missing on disk"
    image, t = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, H, W)
    assert float(image[0, 30, 20]) == 1.0 and float(image[0, 60, 130]) == 0.0
    assert torch.equal(t["boxes"], torch.tensor([[10.0, 20, 30, 40], [120, 50, 150, 80]]))
    assert t["labels"].tolist() == [1, 2]  # sorted ids: category 5 -> label 1, 9 -> label 2
    assert t["iscrowd"].tolist() == [0, 0] and t["image_id"] == 1
    assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (2, H, W)
    assert t["masks"].flatten(1).sum(1).tolist() == [400, 900] == t["area"].int().tolist()
    assert torch.equal(masks_to_boxes(t["masks"]), t["boxes"])
    assert t["orig_size"].tolist() == [H, W] == t["size"].tolist()
    skipped = ds[1]
    assert is_skipped(skipped) and skipped["skipped"][0].endswith("3.png")
    assert "cannot decode image 3" in skipped["skipped"][1]


def test_test_mode_keeps_crowd_and_empty_images(coco):
    ds = CocoDetectionDataset(*coco, train=False, to_float=False)
    assert ds.image_ids == [1, 2, 3, 4] and ds.num_filtered_empty == 0
    image, t = ds[0]
    assert image.dtype == torch.uint8
    assert t["iscrowd"].tolist() == [0, 0, 1] and t["masks"].shape == (3, H, W)
    _, t2 = ds[1]
    assert t2["boxes"].shape == (0, 4) and t2["masks"].shape == (0, H, W)


def test_resize_and_flip_keep_boxes_masks_and_pixels_in_sync(coco):
    tf = v2.Compose([ResizeShortestEdge([50], 1333), RandomHorizontalFlip(p=1.0)])
    image, t = CocoDetectionDataset(*coco, transforms=tf)[0]
    assert image.shape == (3, 50, 100) and t["size"].tolist() == [50, 100]
    # (10, 20, 30, 40) -> x0.5 -> (5, 10, 15, 20) -> flip in 100 px -> (85, 10, 95, 20)
    assert torch.equal(t["boxes"], torch.tensor([[85.0, 10, 95, 20], [25, 25, 40, 40]]))
    assert torch.equal(masks_to_boxes(t["masks"]), t["boxes"])
    # the pixels moved the same way (antialiased resize: threshold at half intensity)
    assert torch.equal(masks_to_boxes(image[:2] > 0.5), t["boxes"])
    assert t["orig_size"].tolist() == [H, W]


def test_shortest_edge_size_caps_the_long_side():
    assert shortest_edge_size(100, 200, 50, 1333) == (50, 100)
    assert shortest_edge_size(100, 200, 800, 1333) == (667, 1333)  # capped by max_size
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)


def _mask_inside_box(t, tol=1.0):
    for m, b in zip(t["masks"], t["boxes"]):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert len(xs) > 0
        assert xs.min() >= b[0] - tol and xs.max() + 1 <= b[2] + tol
        assert ys.min() >= b[1] - tol and ys.max() + 1 <= b[3] + tol


def test_lsj_gives_fixed_square_with_boxes_from_masks_and_is_reproducible(coco):
    outs = []
    for seed in (3, 3):
        ds = CocoDetectionDataset(*coco, transforms=build_train_transforms(
            lsj=True, lsj_size=64, seed=seed))
        outs.append([ds[0] for _ in range(4)])
    sizes = set()
    for (image, t), (image2, t2) in zip(*outs):
        assert image.shape == (3, 64, 64) and t["size"].tolist() == [64, 64]
        assert torch.equal(image, image2) and torch.equal(t["boxes"], t2["boxes"])
        assert torch.equal(t["boxes"], masks_to_boxes(t["masks"]))
        n = t["boxes"].shape[0]
        assert t["labels"].shape == (n,) and t["area"].shape == (n,) and t["masks"].shape[0] == n
        sizes.add(float(image.sum()))
    assert len(sizes) > 1  # the 4 draws differ


def test_multiscale_crop_keeps_masks_inside_boxes(coco):
    tf = build_train_transforms(short_sizes=(40, 48, 56), max_size=120, crop_prob=1.0, seed=0)
    ds = CocoDetectionDataset(*coco, transforms=tf)
    seen = set()
    for _ in range(6):
        image, t = ds[0]
        h, w = image.shape[-2:]
        assert min(h, w) in (40, 48, 56) and max(h, w) <= 120
        assert t["boxes"].shape[0] == t["masks"].shape[0] == t["labels"].shape[0]
        assert bool((t["boxes"][:, 2:] > t["boxes"][:, :2]).all())
        assert bool((t["boxes"][:, 2] <= w).all() and (t["boxes"][:, 3] <= h).all())
        _mask_inside_box(t, tol=1.0)
        seen.add(t["boxes"].shape[0])
    assert seen - {2}  # some crops lost an instance


def test_test_transforms_and_mask_requirement(coco, tmp_path):
    image, t = CocoDetectionDataset(*coco, transforms=build_test_transforms(80, 1333),
                                    train=False)[0]
    assert image.shape == (3, 80, 160)
    assert torch.equal(t["boxes"][0], torch.tensor([8.0, 16, 24, 32]))
    data = json.loads(open(coco[0]).read())
    del data["annotations"][1]["segmentation"]
    p = tmp_path / "nomask.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotation\(s\) \[2\] have no segmentation"):
        CocoDetectionDataset(str(p), coco[1])
    assert len(CocoDetectionDataset(str(p), coco[1], with_masks=False)) == 3


def test_collated_batch_through_evaluator_rescales_to_original_frame(coco):
    ds = CocoDetectionDataset(*coco, transforms=build_test_transforms(50, 1333), train=False)
    batch = collate_detection([ds[i] for i in range(len(ds))])
    assert batch["num_samples"] == 2
    assert [os.path.basename(p) for p, _ in batch["skipped"]] == ["3.png", "4.png"]
    assert [tuple(im.shape) for im in batch["images"]] == [(3, 50, 100), (3, 50, 100)]
    outputs = []  # a perfect "model": its outputs are the non-crowd targets, in the 50x100 frame
    for t in batch["targets"]:
        keep = t["iscrowd"] == 0
        outputs.append({"boxes": t["boxes"][keep], "labels": t["labels"][keep],
                        "scores": torch.linspace(0.9, 0.5, int(keep.sum())),
                        "masks": t["masks"][keep, None].float()})
    ev = CocoEvaluator(coco[0])
    ev.process(batch, outputs)
    r = ev.evaluate()
    for t in ("bbox", "segm"):
        assert r[t]["AP"] == pytest.approx(100.0, abs=1e-9), t
    assert r["segm"]["APs"] == pytest.approx(100.0, abs=1e-9)  # mask areas 400 and 900 px
