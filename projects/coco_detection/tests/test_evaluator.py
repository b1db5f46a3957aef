"""COCO evaluator against hand-made ground truth / detections with known AP, the results json
round trip, the faster-coco-eval backend and tools/eval_coco.py."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

import mvit_tasks.projects.coco_detection.evaluator as ev_mod
from mvit_tasks.projects.coco_detection.converters import (
    CocoFormatError,
    decode_segmentation,
    validate_coco_dict,
    write_coco_results,
)
from mvit_tasks.projects.coco_detection.evaluator import (
    METRICS,
    CocoEvaluator,
    available_backends,
    evaluate_files,
    format_results_table,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
ONE_OF_TWO = 100 * 51 / 101  # recall 0.5 reached at precision 1: 51 of 101 recall points
FULL = pytest.approx(100.0, abs=1e-9)  # pycocotools' precision is tp / (tp + fp + eps)
CATS = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]  # labels 1, 2


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def _ann(aid, img, cat, x, y, s, crowd=0, rle=False, hw=(100, 100)):
    segm = _square(x, y, s)
    if rle:  # compressed (crowd: uncompressed, like COCO's crowd regions)
        m = decode_segmentation(segm, *hw)
        if crowd:
            flat = m.flatten(order="F")
            change = np.flatnonzero(np.diff(flat)) + 1
            segm = {"size": list(hw), "counts": np.diff(
                np.concatenate([[0], change, [flat.size]])).tolist()}
        else:
            segm = mask_util.encode(np.asfortranarray(m))
            segm["counts"] = segm["counts"].decode()
    return {"id": aid, "image_id": img, "category_id": cat, "bbox": [x, y, s, s],
            "iscrowd": crowd, "segmentation": segm}


def _gt(anns, n_images=1):
    return validate_coco_dict({
        "images": [{"id": i + 1, "file_name": f"{i}.jpg", "height": 100, "width": 100}
                   for i in range(n_images)],
        "categories": CATS, "annotations": anns}, drop_invalid=False)


def _out(dets, hw=(100, 100)):
    """dets: (x, y, s, label, score) squares -> an output dict with boxes and masks."""
    masks = torch.zeros(len(dets), 1, *hw)
    for i, (x, y, s, _, _) in enumerate(dets):
        masks[i, 0, y:y + s, x:x + s] = 1.0
    return {"boxes": torch.tensor([[x, y, x + s, y + s] for x, y, s, _, _ in dets],
                                  dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([d[3] for d in dets], dtype=torch.int64),
            "scores": torch.tensor([d[4] for d in dets]), "masks": masks}


def _eval(gt, outs, iou_types=("bbox", "segm"), sizes=None, **kw):
    ev = CocoEvaluator(gt, iou_types, **kw)
    ids = sorted(outs)
    inputs = [{"image_id": i} if sizes is None else {"image_id": i, "size": sizes[i]} for i in ids]
    ev.process(inputs, [outs[i] for i in ids])
    return ev.evaluate()


def test_perfect_detections_give_100_with_polygon_and_rle_gt():
    gt = _gt([_ann(1, 1, 3, 10, 10, 40), _ann(2, 1, 7, 55, 50, 40, rle=True)])
    r = _eval(gt, {1: _out([(10, 10, 40, 1, 0.9), (55, 50, 40, 2, 0.8)])})
    for t in ("bbox", "segm"):
        for k in ("AP", "AP50", "AP75", "APm", "AP-cat", "AP-dog"):
            assert r[t][k] == FULL, (t, k)
        assert math.isnan(r[t]["APs"]) and math.isnan(r[t]["APl"])  # no small/large objects
    assert set(r["bbox"]) == set(METRICS) | {"AP-cat", "AP-dog"}


@pytest.mark.parametrize("tp_first", [True, False])
def test_one_of_two_found_depends_on_score_order(tp_first):
    gt = _gt([_ann(1, 1, 3, 10, 10, 40), _ann(2, 1, 3, 55, 55, 40), _ann(3, 1, 7, 5, 60, 35)])
    tp, fp = (10, 10, 40, 1), (0, 55, 40, 1)  # fp overlaps nothing of category cat
    s_tp, s_fp = (0.9, 0.8) if tp_first else (0.8, 0.9)
    dets = [tp + (s_tp,), fp + (s_fp,), (5, 60, 35, 2, 0.5)]
    r = _eval(gt, {1: _out(dets)})["bbox"]
    # TP first: precision 1 up to recall 0.5. FP first: precision 0.5 up to recall 0.5.
    cat = ONE_OF_TWO if tp_first else ONE_OF_TWO / 2
    assert r["AP-cat"] == pytest.approx(cat, abs=1e-9)
    assert r["AP-dog"] == FULL
    assert r["AP"] == pytest.approx((cat + 100) / 2, abs=1e-9)
    assert r["AP50"] == pytest.approx(r["AP"], abs=1e-9)


def test_empty_detections_give_zero_not_a_crash(tmp_path):
    gt = _gt([_ann(1, 1, 3, 10, 10, 40)])
    r = _eval(gt, {1: _out([])})
    for t in ("bbox", "segm"):
        assert r[t]["AP"] == 0.0 and r[t]["AP50"] == 0.0 and r[t]["AP-cat"] == 0.0
        assert math.isnan(r[t]["AP-dog"])  # no ground truth for dog
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt.to_coco_dict()))
    dt_path.write_text("[]")
    assert evaluate_files(str(gt_path), str(dt_path), ["bbox"])["bbox"]["AP"] == 0.0
    assert all(math.isnan(v) for v in CocoEvaluator(gt).evaluate()["bbox"].values())


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_detections_in_crowd_regions_are_ignored(iou_type):
    anns = [_ann(1, 1, 3, 10, 10, 30), _ann(2, 1, 3, 50, 50, 45, crowd=1, rle=True)]
    dets = [(55, 55, 20, 1, 0.95), (60, 75, 15, 1, 0.93), (10, 10, 30, 1, 0.9)]
    r = _eval(_gt(anns), {1: _out(dets)}, [iou_type])[iou_type]
    # both detections inside the crowd region match it and are ignored
    assert r["AP"] == FULL
    anns[1]["iscrowd"] = 0  # the same region as an object: both detections are false positives
    r = _eval(_gt(anns), {1: _out(dets)}, [iou_type])[iou_type]
    assert r["AP"] == pytest.approx(ONE_OF_TWO / 3, abs=1e-9)  # precision 1/3 up to recall 0.5


def test_segm_half_overlap_counts_only_at_iou_050():
    gt = _gt([_ann(1, 1, 3, 20, 20, 20)])
    out = _out([(20, 20, 20, 1, 0.9)])
    out["masks"][0, 0, :, 30:] = 0  # left half: IoU exactly 0.5
    r = _eval(gt, {1: out}, ["segm"])["segm"]
    assert r["AP50"] == FULL and r["AP75"] == 0.0
    assert r["AP"] == pytest.approx(10.0, abs=1e-9)  # 1 of 10 IoU thresholds
    assert r["APs"] == pytest.approx(10.0, abs=1e-9)  # 400 px mask: small


def test_outputs_in_resized_frame_are_rescaled():
    gt = _gt([_ann(1, 1, 3, 10, 20, 40)])
    out = _out([(5, 10, 20, 1, 0.9)], hw=(50, 50))  # the model saw a 50x50 image
    r = _eval(gt, {1: out}, sizes={1: torch.tensor([50, 50])})
    assert r["bbox"]["AP"] == FULL and r["segm"]["AP"] == FULL
    with pytest.raises(ValueError, match="masks are"):
        _eval(gt, {1: out})  # without "size", the masks must be at the original size


def test_only_processed_images_count_and_ranks_are_gathered(monkeypatch):
    gt = _gt([_ann(1, 1, 3, 10, 10, 40), _ann(2, 2, 3, 10, 10, 40), _ann(3, 2, 7, 50, 50, 30)],
             n_images=2)
    outs = {1: _out([(10, 10, 40, 1, 0.9)]), 2: _out([(10, 10, 40, 1, 0.7)])}
    r1 = _eval(gt, {1: outs[1]})
    assert r1["bbox"]["AP-cat"] == FULL  # image 2 (a missed dog) was not processed
    assert math.isnan(r1["bbox"]["AP-dog"])
    # two "ranks": each evaluator gathers the other's lists
    a, b = CocoEvaluator(gt, ["bbox"]), CocoEvaluator(gt, ["bbox"])
    a.process([{"image_id": 1}], [outs[1]])
    b.process([{"image_id": 2}], [outs[2]])

    def fake_gather(items):
        other = {id(a._image_ids): b._image_ids, id(a._results): b._results}[id(items)]
        return items + other

    monkeypatch.setattr(ev_mod, "gather_list", fake_gather)
    r = a.evaluate()["bbox"]
    assert r["AP-cat"] == FULL and r["AP-dog"] == 0.0
    assert r["AP"] == pytest.approx(50.0, abs=1e-9)


def test_bad_inputs_raise_with_ids(tmp_path):
    gt = _gt([_ann(1, 1, 3, 10, 10, 40)])
    ev = CocoEvaluator(gt, ["segm"])
    with pytest.raises(ValueError, match="image id 5 is not in"):
        ev.process([{"image_id": 5}], [_out([])])
    with pytest.raises(ValueError, match="image 1: segm evaluation needs 'masks'"):
        ev.process([{"image_id": 1}], [{k: v for k, v in _out([]).items() if k != "masks"}])
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt.to_coco_dict()))
    dt_path.write_text(json.dumps([{"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1],
                                    "score": 0.5}]))
    with pytest.raises(CocoFormatError, match=r"(?s)dt.json.*record 0 \(image 1\): unknown "
                                              r"category_id 4"):
        evaluate_files(str(gt_path), str(dt_path), ["bbox"])


def _gt_and_results_files(tmp_path):
    gt = _gt([_ann(1, 1, 3, 10, 10, 40), _ann(2, 1, 3, 55, 55, 40), _ann(3, 2, 7, 5, 60, 35)],
             n_images=2)
    outs = {1: _out([(10, 10, 40, 1, 0.9), (0, 55, 40, 1, 0.8)]),
            2: _out([(5, 60, 35, 2, 0.5), (7, 62, 35, 2, 0.6)])}
    ev = CocoEvaluator(gt)
    ev.process([{"image_id": 1}, {"image_id": 2}], [outs[1], outs[2]])
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt.to_coco_dict()))
    write_coco_results(str(dt_path), ev._results)
    return ev, str(gt_path), str(dt_path)


def test_results_json_round_trip(tmp_path):
    ev, gt_path, dt_path = _gt_and_results_files(tmp_path)
    direct = ev.evaluate()
    assert json.dumps(ev.evaluate()) == json.dumps(direct)  # the ground truth is left intact
    assert not any("ignore" in a for anns in ev.gt.annotations.values() for a in anns)
    from_files = evaluate_files(gt_path, dt_path, ["bbox", "segm"])
    assert json.dumps(from_files) == json.dumps(direct)
    assert from_files["bbox"]["AP-cat"] == pytest.approx(ONE_OF_TWO, abs=1e-9)
    table = format_results_table(from_files)
    assert "Evaluation results for segm:" in table and "| cat | 50.495 |" in table


def _random_case(rng, n_images=6):
    anns, outs, aid = [], {}, 1
    for img in range(1, n_images + 1):
        dets = []
        for _ in range(int(rng.integers(1, 5))):
            x, y = (int(v) for v in rng.integers(0, 55, 2))
            s = int(rng.integers(6, 45))
            cat = int(rng.integers(0, 2))
            anns.append(_ann(aid, img, CATS[cat]["id"], x, y, s, crowd=int(rng.random() < 0.15),
                             rle=bool(rng.random() < 0.5)))
            aid += 1
            if rng.random() < 0.8:
                dx, dy = (int(v) for v in rng.integers(-6, 7, 2))
                dets.append((max(0, x + dx), max(0, y + dy), s, cat + 1, float(rng.random())))
        for _ in range(int(rng.integers(0, 3))):
            x, y = (int(v) for v in rng.integers(0, 70, 2))
            dets.append((x, y, int(rng.integers(4, 30)), int(rng.integers(1, 3)),
                         float(rng.random())))
        outs[img] = _out(dets)
    return _gt(anns, n_images), outs


@pytest.mark.skipif("faster_coco_eval" not in available_backends(),
                    reason="faster-coco-eval is not installed (pip install faster-coco-eval)")
def test_faster_coco_eval_gives_the_same_numbers():
    gt, outs = _random_case(np.random.default_rng(0))
    ref = _eval(gt, outs)
    fast = _eval(gt, outs, backend="faster_coco_eval")
    assert 0 < ref["bbox"]["AP"] < 100 and 0 < ref["segm"]["AP"] < 100
    for t in ("bbox", "segm"):
        assert set(fast[t]) == set(ref[t])
        for k, v in ref[t].items():
            assert fast[t][k] == pytest.approx(v, abs=1e-9, nan_ok=True), (t, k)


def test_cli_prints_table_and_writes_json(tmp_path):
    _, gt_path, dt_path = _gt_and_results_files(tmp_path)
    out_json = tmp_path / "metrics.json"
    cmd = [sys.executable, os.path.join(REPO, "tools", "eval_coco.py"), "--gt", gt_path,
           "--dt", dt_path, "--iou-type", "bbox", "segm", "--json-out", str(out_json)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Evaluation results for bbox:" in p.stdout and "| cat | 50.495 |" in p.stdout
    saved = json.loads(out_json.read_text())
    assert saved["bbox"]["AP-cat"] == pytest.approx(ONE_OF_TWO, abs=1e-9)
    assert saved["bbox"]["APs"] is None  # NaN (no small objects) is written as null
    bad = subprocess.run(cmd[:3] + [gt_path, "--dt", str(tmp_path / "missing.json")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.json" in bad.stderr


def test_reports_are_the_standard_results_file_and_rescore_exactly(tmp_path):
    # 2 of 3 images evaluated (the third, say, unreadable): with the written id list,
    # tools/eval_coco.py gives the evaluation's numbers; without it, the third image's GT
    # counts as missed
    gt = _gt([_ann(1, 1, 3, 10, 10, 40), _ann(2, 2, 7, 55, 50, 40), _ann(3, 3, 3, 5, 5, 30)],
             n_images=3)
    ev = CocoEvaluator(gt)
    with pytest.raises(RuntimeError, match="evaluate"):
        ev.write_reports(str(tmp_path))
    ev.process([{"image_id": 1}, {"image_id": 2}],
               [_out([(10, 10, 40, 1, 0.9), (0, 60, 30, 1, 0.7)]), _out([(55, 50, 40, 2, 0.8)])])
    logged = ev.evaluate()
    paths = ev.write_reports(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["coco_instances_results.json",
                                                    "coco_evaluated_image_ids.json"]
    records = json.load(open(paths[0]))
    assert len(records) == 3 and json.load(open(paths[1])) == [1, 2]
    assert records[0]["bbox"] == [10.0, 10.0, 40.0, 40.0] and records[0]["category_id"] == 3
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt.to_coco_dict()))
    again = evaluate_files(str(gt_path), paths[0], image_ids_json=paths[1])
    for t in ("bbox", "segm"):
        for k, v in logged[t].items():
            assert (math.isnan(v) and math.isnan(again[t][k])) or again[t][k] == v, (t, k)
    everything = evaluate_files(str(gt_path), paths[0])
    assert everything["bbox"]["AP-cat"] < logged["bbox"]["AP-cat"]
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "eval_coco.py"), "--gt",
                           str(gt_path), "--dt", paths[0], "--image-ids", paths[1],
                           "--json-out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.load(open(out))["bbox"]["AP"] == logged["bbox"]["AP"]
