"""Agreement of the vectorised AVA frame-mAP with a loop-based reference on randomised files.

The reference below is written for clarity, one frame and one detection at a time, following
the official ActivityNet evaluator's steps (``get_ava_performance.py``: per-frame heap of 50
detections, ``per_image_evaluation.py``: argmax matching, ``metrics.py``: VOC AP) and
mmaction2's ``ava_eval(ignore_empty_frames=True)``. The random files are built to stress the
tie rules: scores from a 9-value set, boxes on a 1/16 grid (exact IoU ties between different
boxes), frames with more than 50 detections, duplicates, zero-area boxes, timestamps written
as ``0902`` and ``902``, ids outside the label map and excluded frames.
"""
from __future__ import annotations

import csv
import heapq
import math
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from mvit_tasks.projects.ava.evaluation import evaluate_files
from mvit_tasks.projects.ava.evaluation.io import read_text, split_lines

LABELS = {1: "stand", 2: "sit", 3: "walk", 5: "talk to", 8: "watch", 64: "fight"}
LABEL_TYPES = {1: "PERSON_MOVEMENT", 2: "PERSON_MOVEMENT", 3: "PERSON_MOVEMENT",
               5: "OBJECT_MANIPULATION", 8: "OBJECT_MANIPULATION", 64: "PERSON_INTERACTION"}


# --------------------------------------------------------------------------- reference
def ref_rows(path: str):
    for row in csv.reader(split_lines(read_text(path))):
        key = "%s,%04d" % (row[0], int(row[1]))
        x1, y1, x2, y2 = (float(v) for v in row[2:6])
        score = float(row[7]) if len(row) == 8 else 1.0
        yield key, (score, int(row[6]), y1, x1, y2, x2)


def ref_read(path: str, classes, capacity: int, use_heap: bool) -> Dict[str, List[tuple]]:
    """Frame key -> rows (score, action, y1, x1, y2, x2) in visiting order."""
    frames: Dict[str, List[tuple]] = {}
    for key, t in ref_rows(path):
        if t[1] not in classes:
            continue
        rows = frames.setdefault(key, [])
        if not use_heap:
            rows.append(t)
        elif capacity < 1 or len(rows) < capacity:
            heapq.heappush(rows, t)
        elif t[0] > rows[0][0]:
            heapq.heapreplace(rows, t)
    return {k: sorted(v, key=lambda t: -t[0]) for k, v in frames.items()}


def ref_iou(d: tuple, g: tuple, f32: bool) -> float:
    """IoU of (y1, x1, y2, x2) boxes; float32 boxes with float64 products as mmaction2."""
    if f32:
        d, g = [np.float32(v) for v in d], [np.float32(v) for v in g]
    h = float(min(d[2], g[2]) - max(d[0], g[0]))
    w = float(min(d[3], g[3]) - max(d[1], g[1]))
    inter = max(0.0, h) * max(0.0, w)
    union = float((d[2] - d[0]) * (d[3] - d[1]) + (g[2] - g[0]) * (g[3] - g[1])) - inter
    return inter / union if union != 0 else float("nan")


def ref_match(dets: List[tuple], gts: List[tuple], f32: bool) -> List[bool]:
    claimed = [False] * len(gts)
    out = []
    for d in dets:
        tp = False
        if gts:
            ious = [ref_iou(d[2:], g[2:], f32) for g in gts]
            nan = [i for i, v in enumerate(ious) if math.isnan(v)]
            best = nan[0] if nan else max(range(len(gts)), key=lambda i: ious[i])
            if ious[best] >= 0.5 and not claimed[best]:
                claimed[best] = tp = True
        out.append(tp)
    return out


def ref_ap(scores: List[float], tps: List[bool], num_gt: int, f32: bool) -> float:
    if num_gt == 0:
        return float("nan")
    if not scores:
        return 0.0
    order = np.argsort(np.asarray(scores, dtype=np.float32 if f32 else np.float64))[::-1]
    prec, rec, tp_n = [], [], 0
    for k, i in enumerate(order):
        tp_n += int(tps[i])
        prec.append(tp_n / (k + 1))
        rec.append(tp_n / num_gt)
    prec, rec = [0.0] + prec + [0.0], [0.0] + rec + [1.0]
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    return sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec)) if rec[i] != rec[i - 1])


def ref_evaluate(gt_path: str, det_path: str, excl_path: Optional[str], protocol: str
                 ) -> Tuple[float, Dict[int, float]]:
    mm = protocol == "mmaction2"
    classes = set(LABELS)
    excluded = set()
    if excl_path:
        for row in csv.reader(split_lines(read_text(excl_path))):
            excluded.add("%s,%04d" % (row[0], int(row[1])))
    gt = ref_read(gt_path, classes, 0, use_heap=not mm)
    det = ref_read(det_path, classes, 0 if mm else 50, use_heap=not mm)
    num_gt: Dict[int, int] = defaultdict(int)
    for key, rows in gt.items():
        if mm or key not in excluded:
            for r in rows:
                num_gt[r[1]] += 1
    scores: Dict[int, List[float]] = defaultdict(list)
    tps: Dict[int, List[bool]] = defaultdict(list)
    frames = gt if mm else det
    for key in frames:
        if key in excluded:
            continue
        drows = det.get(key, [])
        if not mm:
            drows = [r for r in drows if r[2] < r[4] and r[3] < r[5]]
        grows = gt.get(key, [])
        for c in sorted(classes):
            dc = [r for r in drows if r[1] == c]
            if not dc:
                continue
            flags = ref_match(dc, [r for r in grows if r[1] == c], mm)
            scores[c] += [r[0] for r in dc]
            tps[c] += flags
    ap = {}
    for c in sorted(classes):
        if mm and not scores[c]:
            ap[c] = float("nan")
        else:
            ap[c] = ref_ap(scores[c], tps[c], num_gt[c], mm)
    valid = [v for v in ap.values() if not math.isnan(v)]
    return (sum(valid) / len(valid) if valid else float("nan")), ap


# ------------------------------------------------------------------------- random files
def write_labelmap(path, labels=LABELS, types=LABEL_TYPES) -> str:
    with open(path, "w") as f:
        for cid, name in labels.items():
            t = f"  label_type: {types[cid]}\n" if types else ""
            f.write(f'label {{\n  name: "{name}"\n  label_id: {cid}\n{t}}}\n')
    return str(path)


def random_case(tmp_path, seed: int) -> Tuple[str, str, str, str]:
    rng = np.random.default_rng(seed)
    grid = lambda n: rng.integers(0, 17, size=n) / 16.0  # noqa: E731
    frames = [(v, t) for v in ("vidA", "vid_B", "-x9") for t in range(902, 902 + 14)]
    ids = list(LABELS) + [4, 9]  # 4 and 9 are outside the label map
    gt_lines, det_lines = [], []
    for vid, t in frames:
        ts = "%04d" % t if rng.random() < 0.5 else str(t)
        persons = []
        for p in range(rng.integers(0, 4)):
            x1, y1 = grid(2) * 0.5
            box = [x1, y1, x1 + 0.25 + grid(1)[0] * 0.25, y1 + 0.25 + grid(1)[0] * 0.25]
            persons.append(box)
            for a in rng.choice(ids, size=rng.integers(1, 3), replace=False):
                pid = f",{p}" if seed % 2 == 0 else ""  # odd seeds: 7 columns, all scores 1.0
                gt_lines.append(f"{vid},{ts},{','.join(map(str, box))},{a}{pid}")
        if rng.random() < 0.3:  # two boxes 1/8 apart, a detection halfway: an exact IoU tie
            a, x, y = int(rng.choice(ids)), grid(1)[0] * 0.25, grid(1)[0] * 0.25
            ga, gb = [x, y, x + 0.5, y + 0.5], [x + 0.125, y, x + 0.625, y + 0.5]
            for g in (gb, ga):  # file order B, A; the official heap visits A first
                gt_lines.append(f"{vid},{ts},{','.join(map(str, g))},{a}")
            for box, sc in (([x + 0.0625, y, x + 0.5625, y + 0.5], 0.9), (gb, 0.8)):
                det_lines.append(f"{vid},{ts},{','.join(map(str, box))},{a},{sc}")
        n_det = int(rng.choice([0, 5, 20, 80]))
        for _ in range(n_det):
            if persons and rng.random() < 0.7:
                box = list(persons[rng.integers(len(persons))])
                if rng.random() < 0.6:
                    box = [min(max(b + rng.integers(-1, 2) / 16.0, 0.0), 1.0) for b in box]
                    box = [min(box[0], box[2]), min(box[1], box[3]),
                           max(box[0], box[2]), max(box[1], box[3])]
            else:
                x1, y1 = grid(2) * 0.75
                box = [x1, y1, x1 + grid(1)[0] * 0.25, y1 + grid(1)[0] * 0.25]  # may be empty
            a = int(rng.choice(ids))
            s = float(rng.integers(1, 10)) / 10.0
            det_lines.append(f"{vid},{ts},{','.join(map(str, box))},{a},{s}")
    order = rng.permutation(len(det_lines))
    det_lines = [det_lines[i] for i in order] + det_lines[:20]  # duplicates
    gt_p, det_p = tmp_path / f"gt{seed}.csv", tmp_path / f"det{seed}.csv"
    gt_p.write_text("\n".join(gt_lines) + "\n")
    det_p.write_text("\n".join(det_lines) + "\n")
    ex_p = tmp_path / f"ex{seed}.csv"
    ex_p.write_text("vidA,0903\nvid_B,910\nnot_a_video,0902\n")
    return str(gt_p), str(det_p), write_labelmap(tmp_path / "lm.pbtxt"), str(ex_p)


@pytest.mark.parametrize("protocol", ["activitynet", "mmaction2"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_reference(tmp_path, protocol, seed):
    gt, det, lm, ex = random_case(tmp_path, seed)
    res = evaluate_files(gt, det, lm, ex, protocol=protocol)
    ref_map, ref_ap = ref_evaluate(gt, det, ex, protocol)
    got = dict(zip(res.class_ids, res.ap.tolist()))
    for c, v in ref_ap.items():
        assert math.isnan(v) == math.isnan(got[c]), (c, v, got[c])
        if not math.isnan(v):
            assert abs(v - got[c]) < 1e-9, (c, v, got[c])
    assert abs(ref_map - res.mean_ap) < 1e-9
    assert res.counts["det_rows_out_of_map"] > 0 and res.counts["det_rows_excluded"] > 0
    if protocol == "activitynet":
        assert res.counts["det_rows_over_frame_cap"] > 0
