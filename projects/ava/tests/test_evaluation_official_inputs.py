"""Inputs that the official ActivityNet evaluator scores although they look wrong.

The official code (``activitynet/ActivityNet``, ``Evaluation/get_ava_performance.py``, the
revision with ``--exclusions``, and ``Evaluation/ava/{per_image_evaluation,metrics,np_box_ops,
np_box_list}.py``) reads boxes with ``float()`` and no range check, keeps 50 rows per frame in
a heap *before* its ``_remove_invalid_boxes`` drops boxes without ``x1 < x2 and y1 < y2``, and
builds a ``BoxList`` of the ground truth of a frame and class whenever that class has a
detection there, which raises ``ValueError`` on an inverted ground-truth box.

``official_map`` below is written in the test, step by step from those semantics (one frame,
one class and one detection at a time, numpy where the official code uses numpy), and is the
independent computation the evaluator is compared with. The hand-made case's APs are also
worked out in the comments.
"""
from __future__ import annotations

import csv
import heapq
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from mvit_tasks.projects.ava.evaluation import AvaFormatError, evaluate_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
TOOL = os.path.join(ROOT, "tools", "eval_ava.py")
LABELS = {1: "bend", 17: "carry", 79: "talk to", 80: "watch"}


class OfficialRaises(Exception):
    """Where the official code stops (BoxList of an inverted ground-truth box)."""


# ----------------------------------------------------------------- independent reference
def _read(path: str, whitelist, capacity: int) -> Dict[str, List[tuple]]:
    heaps: Dict[str, List[tuple]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.reader(f):
            key = "%s,%04d" % (row[0], int(row[1]))
            x1, y1, x2, y2 = (float(v) for v in row[2:6])
            action = int(row[6])
            if action not in whitelist:
                continue
            score = float(row[7]) if len(row) == 8 else 1.0
            item = (score, action, y1, x1, y2, x2)
            if capacity < 1 or len(heaps[key]) < capacity:
                heapq.heappush(heaps[key], item)
            elif score > heaps[key][0][0]:
                heapq.heapreplace(heaps[key], item)
    return {k: sorted(v, key=lambda t: -t[0]) for k, v in heaps.items()}


def _iou(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(D, G) IoU of [y1, x1, y2, x2] boxes: intersection clipped at 0, no +1, no clipping."""
    h = np.maximum(0.0, np.minimum(d[:, None, 2], g[None, :, 2])
                   - np.maximum(d[:, None, 0], g[None, :, 0]))
    w = np.maximum(0.0, np.minimum(d[:, None, 3], g[None, :, 3])
                   - np.maximum(d[:, None, 1], g[None, :, 1]))
    inter = h * w
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area(d)[:, None] + area(g)[None, :] - inter)


def _voc_ap(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    order = np.argsort(scores)[::-1]
    t = tp[order].astype(int)
    precision = np.cumsum(t).astype(float) / (np.cumsum(t) + np.cumsum(1 - t))
    recall = np.cumsum(t).astype(float) / num_gt
    if precision.size == 0:
        return 0.0
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    idx = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[idx] - recall[idx - 1]) * precision[idx]))


def official_map(gt_path: str, det_path: str, excl: Optional[str] = None
                 ) -> Tuple[float, Dict[int, float]]:
    """``(mAP, {class id: AP})`` as the official pipeline computes them; raises
    :class:`OfficialRaises` where it stops."""
    whitelist = set(LABELS)
    excluded = set()
    if excl:
        with open(excl) as f:
            excluded = {"%s,%04d" % (r[0], int(r[1])) for r in csv.reader(f)}
    gt = {k: v for k, v in _read(gt_path, whitelist, 0).items() if k not in excluded}
    det = _read(det_path, whitelist, 50)
    num_class = max(LABELS)
    num_gt = np.zeros(num_class, int)
    for rows in gt.values():
        for r in rows:
            num_gt[r[1] - 1] += 1
    scores: Dict[int, List[np.ndarray]] = defaultdict(list)
    tps: Dict[int, List[np.ndarray]] = defaultdict(list)
    for key, rows in det.items():
        if key in excluded:
            continue
        boxes = np.array([r[2:] for r in rows], dtype=float).reshape(-1, 4)
        labels = np.array([r[1] for r in rows], dtype=int) - 1
        sc = np.array([r[0] for r in rows], dtype=float)
        valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
        boxes, labels, sc = boxes[valid], labels[valid], sc[valid]
        g_rows = gt.get(key, [])
        g_boxes = np.array([r[2:] for r in g_rows], dtype=float).reshape(-1, 4)
        g_labels = np.array([r[1] for r in g_rows], dtype=int) - 1
        for c in range(num_class):
            d_c, s_c, g_c = boxes[labels == c], sc[labels == c], g_boxes[g_labels == c]
            if d_c.size == 0:
                continue
            if any(b[0] > b[2] or b[1] > b[3] for b in g_c):
                raise OfficialRaises(f"{key} class {c + 1}: Invalid box data")
            tp = np.zeros(len(d_c), bool)
            if len(g_c):
                iou = _iou(d_c, g_c)
                best = np.argmax(iou, axis=1)
                taken = np.zeros(len(g_c), bool)
                for i in range(len(d_c)):
                    j = best[i]
                    if iou[i, j] >= 0.5 and not taken[j]:
                        tp[i] = taken[j] = True
            scores[c].append(s_c)
            tps[c].append(tp)
    ap = np.full(num_class, np.nan)
    for c in range(num_class):
        if num_gt[c] == 0:
            continue
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        t = np.concatenate(tps[c]) if tps[c] else np.zeros(0, bool)
        ap[c] = _voc_ap(s, t, int(num_gt[c]))
    with np.errstate(all="ignore"):
        mean = float(np.nanmean(ap)) if not np.isnan(ap).all() else float("nan")
    return mean, {c: float(ap[c - 1]) for c in LABELS}


# ------------------------------------------------------------------------------ helpers
def write(tmp_path, name: str, lines: List[str]) -> str:
    p = tmp_path / name
    p.write_text("".join(line + "\n" for line in lines))
    return str(p)


def labelmap(tmp_path) -> str:
    return write(tmp_path, "lm.pbtxt", [f'label {{\n  name: "{n}"\n  label_id: {i}\n}}'
                                        for i, n in LABELS.items()])


A = "0.1,0.1,0.4,0.9"
B = "0.6,0.1,0.9,0.9"
FAR = "0.0,0.0,0.05,0.05"
# 0902: A bends, B carries; 0903: A bends; 0904: a talk box reaching past the right edge
HAND_GT = [f"v1,0902,{A},1,0", f"v1,0902,{B},17,1", f"v1,0903,{A},1,0",
           "v1,0904,0.5,0.5,1.05,1.0,79,0"]
HAND_DET = (
    ["v1,0902,0.4,0.1,0.1,0.9,1,0.95",     # inverted (x1 > x2): takes a slot, then dropped
     "v1,0902,0.2,0.2,0.2,0.8,1,0.92",     # zero width: takes a slot, then dropped
     "v1,0902,0.1,-1.0,0.4,0.9,1,0.9"]     # y1 < 0, as is: IoU 0.24 / 0.57 = 0.42 -> FP
    + [f"v1,0902,{FAR},80,0.5"] * 47       # fills the heap to 50
    + [f"v1,0902,{A},1,0.5",               # the 51st row, not above the minimum: dropped
       f"v1,0903,{A},1,0.8",               # TP
       f"v1,0903,{FAR},17,0.7",            # carry FP
       f"v1,0903,{A},99,0.9",              # id outside the label map: ignored
       "v1,0904,0.5,0.5,1.05,1.0,79,0.6"]  # the same box as its GT (x2 > 1): IoU 1, TP
)


def test_hand_case_at_the_top_50_boundary(tmp_path):
    # bend: 2 GT; its detections: 0.9 FP (0902), 0.8 TP (0903) -> precision 0, 1/2 at recall
    # 0, 1/2 -> AP 1/2 * 1/2 = 0.25. Had the invalid boxes been dropped before the cap, the
    # 0.5 TP would survive (AP 2/3); had y1 been clipped to 0, the 0.9 row would be a TP
    # (IoU 0.89, AP 1). carry: 1 GT, one FP -> 0. talk to: 1 GT, 1 TP -> 1. watch: no GT.
    gt, det, lm = write(tmp_path, "gt.csv", HAND_GT), write(tmp_path, "det.csv", HAND_DET), \
        labelmap(tmp_path)
    res = evaluate_files(gt, det, lm)
    assert res.per_class() == {"bend": 0.25, "carry": 0.0, "talk to": 1.0, "watch": None}
    assert res.mean_ap == pytest.approx((0.25 + 0.0 + 1.0) / 3, abs=1e-15)
    ref_map, ref_ap = official_map(gt, det)
    assert ref_ap == {1: 0.25, 17: 0.0, 79: 1.0, 80: ref_ap[80]} and math.isnan(ref_ap[80])
    assert ref_map == res.mean_ap
    c = res.counts
    assert c["det_rows_over_frame_cap"] == 1 and c["det_rows_invalid_box"] == 2
    assert (c["det_rows_inverted"], c["det_rows_zero_area"], c["det_rows_out_of_range"],
            c["gt_rows_out_of_range"], c["det_rows_duplicate"], c["det_rows_id_out_of_range"]
            ) == (1, 1, 2, 1, 46, 1)
    by_code = {f.code: f for f in res.findings if f.source == det}
    assert by_code["inverted"].first_line == 1 and by_code["zero_area"].first_line == 2
    assert by_code["out_of_range"].first_line == 3 and by_code["duplicate"].first_line == 5
    assert by_code["id_out_of_range"].first_line == 54
    assert f"{det}:1: 1 row with an inverted box" in "\n".join(res.warnings)


def test_cli_prints_warnings_and_strict_refuses(tmp_path):
    gt, det, lm = write(tmp_path, "gt.csv", HAND_GT), write(tmp_path, "det.csv", HAND_DET), \
        labelmap(tmp_path)
    out = tmp_path / "r.json"
    cmd = [sys.executable, TOOL, "--groundtruth", gt, "--detections", det, "--labelmap", lm,
           "--json-out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warnings (6;" in proc.stdout and f"{det}:3: 2 rows with a box coordinate outside" \
        in proc.stdout
    data = json.loads(out.read_text())
    assert data["mAP"] == pytest.approx(1.25 / 3) and len(data["warnings"]) == 6
    assert data["counts"]["gt_rows_out_of_range"] == 1
    proc = subprocess.run(cmd + ["--strict"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # ground truth is checked first: its box past the right edge on line 4
    assert f"{gt}:4: row with a box coordinate outside" in proc.stderr and "strict" in proc.stderr


def test_strict_names_the_first_finding(tmp_path):
    gt = write(tmp_path, "gt.csv", HAND_GT)
    det = write(tmp_path, "det.csv", [f"v1,0902,{A},1,0.9", f"v1,0902,{A},1,0.9"])
    with pytest.raises(AvaFormatError, match=r"gt.csv:4: row with a box coordinate outside"):
        evaluate_files(gt, det, labelmap(tmp_path), strict=True)
    res = evaluate_files(gt, det, labelmap(tmp_path))
    # the repeated row is a FP; equal scores, and argsort reversed ranks the second row
    # (the FP) first: precision 0, 1/2 at recall 0, 1/2 of the 2 bend GT -> AP 1/4
    assert res.counts["det_rows_duplicate"] == 1 and res.per_class()["bend"] == 0.25


def test_inverted_ground_truth_is_scored_and_flagged(tmp_path):
    # the official BoxList raises on an inverted GT box once its class has a detection there
    # (the inverted box comes first in GT order, person id 1 > 0; its area is -0.16, so its
    # IoU with the detection is 0 / 0.08 = 0 and the detection takes A)
    gt = write(tmp_path, "gt.csv", [f"v1,0902,{A},1,0", "v1,0902,0.9,0.1,0.7,0.9,1,1"])
    det = write(tmp_path, "det.csv", [f"v1,0902,{A},1,0.9"])
    with pytest.raises(OfficialRaises):
        official_map(gt, det)
    res = evaluate_files(gt, det, labelmap(tmp_path))
    assert res.per_class()["bend"] == 0.5  # 2 GT, 1 TP
    assert res.counts["gt_boxes_inverted_with_detections"] == 1
    assert any("ValueError('Invalid box data')" in w and w.startswith(f"{gt}:2:")
               for w in res.warnings)


def test_non_finite_values_are_read_as_float_reads_them(tmp_path):
    # nan box: not x1 < x2 -> dropped after the cap; nan score: kept, ranked by argsort;
    # inf coordinate: area inf -> IoU 0 -> FP
    gt = write(tmp_path, "gt.csv", [f"v1,0902,{A},1,0", f"v1,0903,{A},1,0"])
    det = write(tmp_path, "det.csv", [
        "v1,0902,nan,0.1,0.4,0.9,1,0.99", f"v1,0902,{A},1,nan", "v1,0903,0.1,0.1,inf,0.9,1,0.7",
        f"v1,0903,{A},1,0.6"])
    res = evaluate_files(gt, det, labelmap(tmp_path))
    ref_map, ref_ap = official_map(gt, det)
    assert res.per_class()["bend"] == ref_ap[1] and res.mean_ap == ref_map
    assert res.counts["det_rows_non_finite"] == 3


def _odd_case(tmp_path, seed: int) -> Tuple[str, str, str]:
    """Random files on a 1/8 grid in [-0.25, 1.25]: boxes outside [0, 1], inverted and
    zero-area ones, repeated rows, ids outside the map, > 50 rows per frame, tied scores."""
    rng = np.random.default_rng(seed)
    grid = lambda n: rng.integers(-2, 11, size=n) / 8.0  # noqa: E731
    ids = list(LABELS) + [5, 0, 99]
    gt_lines, det_lines = [], []
    for vid in ("a", "b"):
        for t in range(902, 910):
            persons = []
            for p in range(int(rng.integers(0, 4))):
                x1, y1 = grid(2)
                box = [x1, y1, x1 + abs(grid(1)[0]), y1 + abs(grid(1)[0])]
                persons.append(box)
                for a in rng.choice(ids[:4], size=int(rng.integers(1, 3)), replace=False):
                    gt_lines.append(f"{vid},{t},{','.join(map(str, box))},{a},{p}")
            for _ in range(int(rng.choice([3, 30, 70]))):
                if persons and rng.random() < 0.5:
                    box = [b + rng.integers(-1, 2) / 8.0 for b in persons[rng.integers(
                        len(persons))]]
                else:
                    box = list(grid(4))  # often inverted or empty
                s = float(rng.integers(1, 8)) / 8.0
                det_lines.append(f"{vid},{t},{','.join(map(str, box))},{rng.choice(ids)},{s}")
    det_lines += det_lines[:15]
    rng.shuffle(det_lines)
    return (write(tmp_path, f"gt{seed}.csv", gt_lines), write(tmp_path, f"det{seed}.csv",
                                                              det_lines), labelmap(tmp_path))


@pytest.mark.parametrize("seed", range(8))
def test_random_odd_files_agree_with_the_official_semantics(tmp_path, seed):
    gt, det, lm = _odd_case(tmp_path, seed)
    res = evaluate_files(gt, det, lm)
    try:
        ref_map, ref_ap = official_map(gt, det)
    except OfficialRaises:
        assert res.counts["gt_boxes_inverted_with_detections"] > 0
        return
    got = dict(zip(res.class_ids, res.ap.tolist()))
    for c, v in ref_ap.items():
        assert (math.isnan(v) and math.isnan(got[c])) or v == got[c], (c, v, got[c])
    assert (math.isnan(ref_map) and math.isnan(res.mean_ap)) or ref_map == res.mean_ap
    assert res.counts["gt_boxes_inverted_with_detections"] == 0
    assert res.counts["det_rows_inverted"] > 0 and res.counts["det_rows_out_of_range"] > 0
