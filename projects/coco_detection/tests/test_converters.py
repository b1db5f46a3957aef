"""COCO json converters: validation policy on tiny files with bad records, label mapping,
results writing."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from mvit_tasks.projects.coco_detection.converters import (
    CategoryMapping,
    CocoFormatError,
    decode_segmentation,
    encode_masks,
    instances_to_coco_results,
    load_coco_json,
    load_coco_results,
    predictions_to_coco_results,
    write_coco_results,
)


def _base():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60},
                   {"id": 2, "file_name": "b.jpg", "height": 40, "width": 60}],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
                       {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0,
             "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
            {"id": 11, "image_id": 2, "category_id": 90, "bbox": [0, 0, 4, 4], "iscrowd": 0},
        ],
    }


def _write(tmp_path, data, name="inst.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


def test_valid_file_loads_with_mapping_and_area(tmp_path):
    inst = load_coco_json(_write(tmp_path, _base()))
    assert inst.dropped == []
    assert inst.num_annotations == 2
    m = inst.mapping
    assert m.category_ids == (1, 3, 90) and m.names == ("person", "car", "toothbrush")
    assert m.id_to_label == {1: 1, 3: 2, 90: 3} and m.label_to_id == {1: 1, 2: 3, 3: 90}
    assert m.label_of(90) == 3 and m.category_of(2) == 3 and m.num_classes == 3
    with pytest.raises(KeyError):
        m.category_of(0)  # background has no category
    with pytest.raises(KeyError):
        m.label_of(2)
    a10, = inst.annotations[1]
    a11, = inst.annotations[2]
    assert a10["area"] == 100.0  # the 10x10 polygon's mask area (pycocotools)
    assert a11["area"] == 16.0  # no segmentation: box area
    assert a10["iscrowd"] == 0


@pytest.mark.parametrize("edit, expect", [
    (lambda d: d["annotations"][0].update(category_id=2), ["annotation 10", "category id 2"]),
    (lambda d: d["annotations"][1].update(image_id=7), ["annotation 11", "image 7"]),
    (lambda d: d["images"].append(dict(d["images"][0])), ["duplicate image ids [1]"]),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])),
     ["duplicate annotation ids [10]"]),
    (lambda d: d["categories"].append({"id": 3, "name": "x"}), ["duplicate category ids [3]"]),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), ["annotation 10", "bbox"]),
    (lambda d: d["annotations"][0].update(id=0), ["annotation 0", ">= 1"]),
    (lambda d: d["annotations"][0].update(iscrowd=2), ["annotation 10", "iscrowd"]),
    (lambda d: d["annotations"][0].update(segmentation="x"), ["annotation 10", "segmentation"]),
    (lambda d: d["annotations"][0].update(segmentation={"size": [10, 10], "counts": "ab"}),
     ["annotation 10", "RLE size [10, 10]"]),
    (lambda d: d["annotations"][0].update(segmentation={"size": [40, 60], "counts": [5, 7]}),
     ["annotation 10", "sum to 12, not 2400"]),
    (lambda d: d["images"][1].update(height=0), ["image 2", "height"]),
    (lambda d: d.pop("categories"), ["categories"]),
])
def test_structural_errors_raise_with_ids(tmp_path, edit, expect):
    data = _base()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(CocoFormatError) as e:
        load_coco_json(path)
    msg = str(e.value)
    assert path in msg
    for s in expect:
        assert s in msg


def test_not_json_names_file_and_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"images": [\n  1,,\n]}')
    with pytest.raises(CocoFormatError, match=r"bad.json: not valid JSON: line 2"):
        load_coco_json(str(p))


def test_degenerate_and_invalid_records_dropped_and_reported(tmp_path):
    data = _base()
    data["annotations"] += [
        {"id": 20, "image_id": 1, "category_id": 3, "bbox": [1, 1, 0, 5], "iscrowd": 0},
        {"id": 21, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, -2], "iscrowd": 0},
        {"id": 22, "image_id": 2, "category_id": 3, "bbox": [1, 1, float("nan"), 3]},
        {"id": 23, "image_id": 2, "category_id": 3, "bbox": [70, 1, 5, 5]},  # right of 60 px
        {"id": 24, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5],
         "segmentation": [[1, 1, 6, 1]]},  # a 2-point polygon
    ]
    inst = load_coco_json(_write(tmp_path, data))
    assert [d.id for d in inst.dropped] == [20, 21, 22, 23, 24]
    reasons = {d.id: d.reason for d in inst.dropped}
    assert "degenerate bbox" in reasons[20] and "(image 1)" in reasons[20]
    assert "degenerate bbox" in reasons[22] and "nan" in reasons[22]
    assert "outside" in reasons[23] and "invalid polygon" in reasons[24]
    assert inst.num_annotations == 2  # only the two good ones are kept
    # evaluation ground truth keeps every annotation
    kept = load_coco_json(_write(tmp_path, data), drop_invalid=False)
    assert kept.num_annotations == 7 and kept.dropped == []


def test_missing_image_files_dropped_with_their_annotations(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    inst = load_coco_json(_write(tmp_path, _base()), image_root=str(tmp_path / "img"))
    assert list(inst.images) == [1] and list(inst.annotations) == [1]
    (d,) = inst.dropped
    assert d.id == 2 and "b.jpg" in d.reason and "1 annotation(s) dropped" in d.reason


def test_rle_segmentations_decode_like_polygons(tmp_path):
    poly = [[5, 5, 15, 5, 15, 15, 5, 15]]
    m = decode_segmentation(poly, 40, 60)
    compressed = mask_util.encode(np.asfortranarray(m))
    compressed["counts"] = compressed["counts"].decode()
    # uncompressed RLE: column-major run lengths starting with zeros
    flat = m.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    uncompressed = {"size": [40, 60], "counts": runs}
    data = _base()
    data["annotations"][0]["segmentation"] = compressed
    data["annotations"][1]["segmentation"] = uncompressed
    data["annotations"][1]["image_id"] = 1
    inst = load_coco_json(_write(tmp_path, data))
    a, b = inst.annotations[1]
    assert a["area"] == b["area"] == m.sum() == 100
    assert np.array_equal(decode_segmentation(a["segmentation"], 40, 60), m)
    assert np.array_equal(decode_segmentation(b["segmentation"], 40, 60), m)
    assert m[5:15, 5:15].all() and m.sum() == 100


def test_results_records_from_outputs(tmp_path):
    mapping = CategoryMapping.from_categories(_base()["categories"])
    masks = torch.zeros(2, 1, 40, 60)
    masks[0, 0, 2:6, 3:9] = 0.9
    masks[1, 0, 10:20, 10:20] = 0.5  # exactly the threshold: not foreground
    out = {"boxes": torch.tensor([[3.0, 2.0, 9.0, 6.0], [10.0, 10.0, 20.5, 20.0]]),
           "labels": torch.tensor([3, 1]), "scores": torch.tensor([0.75, 0.25]),
           "masks": masks}
    recs = instances_to_coco_results(7, out, mapping.label_to_id)
    assert [r["category_id"] for r in recs] == [90, 1]
    assert recs[0]["bbox"] == [3.0, 2.0, 6.0, 4.0] and recs[1]["bbox"] == [10.0, 10.0, 10.5, 10.0]
    assert recs[0]["score"] == 0.75 and recs[0]["image_id"] == 7
    assert isinstance(recs[0]["segmentation"]["counts"], str)
    assert mask_util.area(recs[0]["segmentation"]) == 24
    assert mask_util.area(recs[1]["segmentation"]) == 0
    path = str(tmp_path / "res.json")
    write_coco_results(path, recs)
    assert load_coco_results(path) == json.loads(json.dumps(recs))
    no_masks = {k: v for k, v in out.items() if k != "masks"}
    both = predictions_to_coco_results({7: no_masks, 8: no_masks}.items(), mapping.label_to_id)
    assert [r["image_id"] for r in both] == [7, 7, 8, 8] and "segmentation" not in both[0]
    bad = dict(no_masks, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="image 7: label 0"):
        instances_to_coco_results(7, bad, mapping.label_to_id)
    assert encode_masks(torch.zeros(0, 1, 4, 4)) == []
    assert math.isclose(recs[1]["score"], 0.25)


def test_load_results_rejects_non_list(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"annotations": []}))
    with pytest.raises(CocoFormatError, match="r.json: a COCO results file is a list"):
        load_coco_results(str(p))


def test_base_is_not_mutated(tmp_path):
    data = _base()
    before = copy.deepcopy(data)
    from mvit_tasks.projects.coco_detection.converters import validate_coco_dict

    validate_coco_dict(data)
    assert data == before
