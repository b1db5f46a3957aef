"""AVA frame-mAP on hand-made files whose APs are worked out by hand in the comments.

Label map: 1 "bend" (PERSON_MOVEMENT), 17 "carry" (OBJECT_MANIPULATION), 79 "talk to" and
80 "watch" (PERSON_INTERACTION). Boxes are x1,y1,x2,y2; A and B do not overlap.
VOC AP = sum over recall steps of (recall step) x (max precision at that recall or later).
"""
from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mvit_tasks.projects.ava.evaluation import (AvaFormatError, evaluate, evaluate_files, read_box_csv,
                                     read_exclusions, read_labelmap, voc_average_precision)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
TOOL = os.path.join(ROOT, "tools", "eval_ava.py")
A = "0.1,0.1,0.4,0.9"
B = "0.6,0.1,0.9,0.9"
FAR = "0.0,0.0,0.05,0.05"
LABELMAP = """label {
  name: "bend"
  label_id: 1
  label_type: PERSON_MOVEMENT
}
label { name: "carry" label_id: 17 label_type: OBJECT_MANIPULATION }
label {
  name: "talk to"
  label_id: 79
  label_type: PERSON_INTERACTION
}
label { name: "watch" label_id: 80 label_type: PERSON_INTERACTION }
"""
# v1 0902: person A bends and talks, person B carries; v1 0903: A bends. (8th column: person id)
GT = [f"v1,0902,{A},1,0", f"v1,0902,{A},79,0", f"v1,0902,{B},17,1", f"v1,0903,{A},1,0"]
PERFECT = [f"v1,0902,{A},1,0.9", f"v1,0902,{A},79,0.9", f"v1,0902,{B},17,0.9",
           f"v1,0903,{A},1,0.9"]


def write(tmp_path, name, lines, gz=False):
    p = tmp_path / name
    data = "".join(line + "\n" for line in lines)
    if gz:
        p.write_bytes(gzip.compress(data.encode()))
    else:
        p.write_text(data)
    return str(p)


def run(tmp_path, det, gt=GT, excl=None, **kw):
    lm = tmp_path / "lm.pbtxt"
    lm.write_text(LABELMAP)
    ex = write(tmp_path, "ex.csv", excl) if excl is not None else None
    return evaluate_files(write(tmp_path, "gt.csv", gt), write(tmp_path, "det.csv", det),
                          str(lm), ex, **kw)


def aps(res):
    return res.per_class()


def test_perfect_detections(tmp_path):
    res = run(tmp_path, PERFECT, breakdown=True)
    assert aps(res) == {"bend": 1.0, "carry": 1.0, "talk to": 1.0, "watch": None}
    assert res.mean_ap == 1.0  # "watch" has no ground truth: left out of the mean
    assert res.groups == {"PM": 1.0, "OM": 1.0, "PI": 1.0} and res.group_source == "label_type"
    assert res.num_gt.tolist() == [2, 1, 1, 0]


def test_empty_detections(tmp_path):
    res = run(tmp_path, [])
    assert aps(res) == {"bend": 0.0, "carry": 0.0, "talk to": 0.0, "watch": None}
    assert res.mean_ap == 0.0 and res.counts["det_rows"] == 0


def test_excluded_frames(tmp_path):
    # bend: TP on 0902 (0.9) and a far FP on 0903 (0.95). Without exclusions: 2 GT, ranked
    # FP, TP -> precision 0, 1/2 at recall 0, 1/2 -> AP = 1/2 * 1/2 = 0.25.
    det = [f"v1,0902,{A},1,0.9", f"v1,0903,{FAR},1,0.95"]
    assert aps(run(tmp_path, det))["bend"] == 0.25
    # Excluding 0903 (written "903") drops its GT and its FP: 1 GT, 1 TP -> AP 1.
    res = run(tmp_path, det, excl=["v1,903"])
    assert aps(res)["bend"] == 1.0
    assert res.counts["gt_rows_excluded"] == 1 and res.counts["det_rows_excluded"] == 1
    assert res.num_gt[0] == 1


def test_detections_on_frames_without_ground_truth(tmp_path):
    # carry: a 0.99 detection on v2 0902 (no GT there) ranks before the TP on B (0.9).
    # activitynet: it is a FP -> precision 0, 1/2; recall 0, 1 -> AP = 1 * 1/2 = 0.5.
    det = PERFECT + [f"v2,0902,{B},17,0.99"]
    res = run(tmp_path, det)
    assert aps(res)["carry"] == 0.5 and res.counts["det_rows_on_frames_without_gt"] == 1
    # mmaction2 ignores frames without ground truth: AP 1.
    res = run(tmp_path, det, protocol="mmaction2")
    assert aps(res)["carry"] == 1.0 and res.protocol == "mmaction2"


def test_out_of_map_ids_are_ignored_and_counted(tmp_path):
    # id 4 is not in the label map: its GT row and its 0.99 detection do not count anywhere
    res = run(tmp_path, PERFECT + [f"v1,0902,{A},4,0.99", f"v1,0902,{FAR},4,0.99"],
              gt=GT + [f"v1,0902,{B},4,1"])
    assert res.mean_ap == 1.0
    assert res.counts["det_rows_out_of_map"] == 2 and res.counts["gt_rows_out_of_map"] == 1


def test_duplicate_detections(tmp_path):
    # bend, 2 GT (A on 0902 and on 0903). Ranked: TP 0.9 (0902), duplicate 0.8 (0902, its GT
    # is taken -> FP), TP 0.7 (0903). precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    # Envelope at recall 1/2: 1, at recall 1: 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    det = [f"v1,0902,{A},1,0.9", f"v1,0902,{A},1,0.8", f"v1,0903,{A},1,0.7"]
    assert aps(run(tmp_path, det))["bend"] == pytest.approx(5 / 6, abs=1e-12)


def test_timestamp_formats_are_one_frame(tmp_path):
    # GT written 0902/0903, detections 902/903: same frames -> all perfect
    det = [line.replace(",0902,", ",902,").replace(",0903,", ",903,") for line in PERFECT]
    assert run(tmp_path, det).mean_ap == 1.0


def test_per_frame_cap_of_50(tmp_path):
    # 50 "watch" detections (no GT) at 0.5 fill the frame; the bend TP on A at 0.1 is the
    # 51st row and is dropped by the official reader -> bend has GT but no detection: AP 0
    junk = [f"v1,0903,{FAR},80,0.5"] * 50
    res = run(tmp_path, junk + [f"v1,0903,{A},1,0.1"], gt=[f"v1,0903,{A},1,0"])
    assert aps(res)["bend"] == 0.0 and res.counts["det_rows_over_frame_cap"] == 1
    # above the 50 others it is kept: AP 1; mmaction2 has no cap: AP 1 either way
    assert aps(run(tmp_path, junk + [f"v1,0903,{A},1,0.6"], gt=[f"v1,0903,{A},1,0"]))[
        "bend"] == 1.0
    res = run(tmp_path, junk + [f"v1,0903,{A},1,0.1"], gt=[f"v1,0903,{A},1,0"],
              protocol="mmaction2")
    assert aps(res)["bend"] == 1.0 and res.counts["det_rows_over_frame_cap"] == 0


def test_cap_ties_at_the_boundary(tmp_path):
    # 51 rows with score 0.5: the heap keeps the first 50 pushed, the 51st is not larger than
    # the heap's minimum -> dropped, whatever its class
    rows = [f"v1,0903,{FAR},80,0.5"] * 50 + [f"v1,0903,{A},1,0.5"]
    assert aps(run(tmp_path, rows, gt=[f"v1,0903,{A},1,0"]))["bend"] == 0.0
    # first in the file it survives: a later 0.5 cannot replace anything
    assert aps(run(tmp_path, rows[::-1], gt=[f"v1,0903,{A},1,0"]))["bend"] == 1.0


def test_argmax_tie_between_two_ground_truth_boxes(tmp_path):
    # GT of one class, written B then A without person ids (all "scores" 1.0): A=[0,0,.5,.5],
    # B=[.125,0,.625,.5]. Detection M=[.0625,0,.5625,.5] (0.9) has IoU 0.21875/0.28125 with
    # both. The official reader's heap visits A first (A's tuple is smaller), M takes A (TP);
    # the 0.8 detection on B then takes B (TP): AP 1. Visiting B first would make M take B and
    # the second detection a FP: precision 1, 1/2 at recall 1/2 -> AP 0.5 (mmaction2's order).
    gt = ["v1,0902,0.125,0,0.625,0.5,1", "v1,0902,0,0,0.5,0.5,1"]
    det = ["v1,0902,0.0625,0,0.5625,0.5,1,0.9", "v1,0902,0.125,0,0.625,0.5,1,0.8"]
    assert aps(run(tmp_path, det, gt=gt))["bend"] == 1.0
    assert aps(run(tmp_path, det, gt=gt, protocol="mmaction2"))["bend"] == 0.5


def test_equal_scores_follow_the_official_order(tmp_path):
    # Two bend detections at 0.5 in one frame, A (TP) first in the file, then FAR (FP).
    # The official heap holds them as (FAR, A) (FAR's tuple is smaller and sifts up), so the
    # class's score list is [FAR, A]; it is then sorted with numpy's argsort, reversed.
    # With 1 GT: TP ranked first -> AP 1, FP ranked first -> AP 1/2. (File order would give
    # the opposite.)
    det = [f"v1,0903,{A},1,0.5", f"v1,0903,{FAR},1,0.5"]
    visit = np.argsort(np.array([0.5, 0.5]))[::-1]
    expected = 1.0 if visit[0] == 1 else 0.5
    assert aps(run(tmp_path, det, gt=[f"v1,0903,{A},1,0"]))["bend"] == expected


def test_zero_area_detections_are_dropped(tmp_path):
    # a zero-width 0.95 bend box: removed by the official evaluator (not a FP) -> AP 1;
    # mmaction2 keeps it as a FP: precision 0, 1/2 -> AP 0.5 on the 1 GT of 0903
    det = ["v1,0903,0.2,0.2,0.2,0.8,1,0.95", f"v1,0903,{A},1,0.9"]
    res = run(tmp_path, det, gt=[f"v1,0903,{A},1,0"])
    assert aps(res)["bend"] == 1.0 and res.counts["det_rows_zero_area"] == 1
    assert aps(run(tmp_path, det, gt=[f"v1,0903,{A},1,0"], protocol="mmaction2"))["bend"] == 0.5


def test_classes_without_ground_truth_are_null_in_json(tmp_path):
    lm = tmp_path / "lm.pbtxt"
    lm.write_text(LABELMAP)
    out = tmp_path / "out" / "r.json"
    cmd = [sys.executable, TOOL, "--groundtruth", write(tmp_path, "gt.csv", GT),
           "--detections", write(tmp_path, "det.csv", PERFECT + [f"v1,0902,{A},80,0.3"]),
           "--labelmap", str(lm), "--exclusions", write(tmp_path, "ex.csv", []),
           "--json-out", str(out), "--breakdown"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["mAP"] == 1.0 and data["protocol"] == "activitynet"
    assert data["per_class"] == {"bend": 1.0, "carry": 1.0, "talk to": 1.0, "watch": None}
    assert data["groups"] == {"PM": 1.0, "OM": 1.0, "PI": 1.0}
    assert "mAP@0.5IOU: 1.0000" in proc.stdout and "protocol: activitynet" in proc.stdout


def test_gzip_input_gives_the_same_result(tmp_path):
    det = PERFECT + [f"v1,0902,{FAR},17,0.95"]  # carry: FP then TP -> AP 0.5
    plain = run(tmp_path, det)
    lm = tmp_path / "lm.pbtxt"
    gz = evaluate_files(write(tmp_path, "g.csv.gz", GT, gz=True),
                        write(tmp_path, "d.csv.gz", det, gz=True), str(lm),
                        write(tmp_path, "e.csv.gz", ["v9,0902"], gz=True))
    assert aps(gz) == aps(plain) and aps(gz)["carry"] == 0.5


@pytest.mark.parametrize("line,message", [
    ("v1,0902,0.1,0.1,0.5", "5 fields"),
    ("v1,09a2,0.1,0.1,0.5,0.5,1,0.5", "unparsable timestamp '09a2'"),
    ("v1,0902,0.1,0.1,0.5,0.5,one,0.5", "unparsable action_id 'one'"),
    ("v1,0902,0.1,0.1,0.5,0.5,,0.5", "unparsable action_id ''"),
    ("v1,0902,0.1,0.1,0.5,0.5,1,high", "unparsable score 'high'"),
    ("v1,0902.5,0.1,0.1,0.5,0.5,1,0.5", "unparsable timestamp '0902.5'"),
    ("", "empty line"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "det.csv", PERFECT[:2] + [line] + PERFECT[2:])
    with pytest.raises(AvaFormatError) as e:
        read_box_csv(path)
    assert str(e.value).startswith(f"{path}:3: ") and message in str(e.value)


def test_cli_reports_malformed_input(tmp_path):
    lm = tmp_path / "lm.pbtxt"
    lm.write_text(LABELMAP)
    bad = write(tmp_path, "det.csv", PERFECT + ["v1,0902,0.1,0.1,0.5,0.5"])
    cmd = [sys.executable, TOOL, "--groundtruth", write(tmp_path, "gt.csv", GT),
           "--detections", bad, "--labelmap", str(lm), "--exclusions",
           write(tmp_path, "ex.csv", ["v1,0903"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 2 and f"{bad}:5: 6 fields" in proc.stderr


@pytest.mark.parametrize("text,message", [
    ('item {\n  name: "a"\n}\n', ":1: item needs both a name and an id"),
    ('item { name: "a" id: 1 }\nitem { name: "b" id: 1 }\n', ":2: duplicate class id 1"),
    ('item { name: "a" id: 0 }\n', ":1: class id 0 < 1"),
    ('item { name: "a" id: 1 frequency: 3 }\n', ":1: unknown field 'frequency'"),
    ('item { name: "a" id: 1\n', ":1: block not closed"),
])
def test_malformed_labelmap(tmp_path, text, message):
    p = tmp_path / "lm.pbtxt"
    p.write_text(text)
    with pytest.raises(AvaFormatError, match=message):
        read_labelmap(str(p))


def test_labelmap_formats(tmp_path):
    p = tmp_path / "lm.pbtxt"
    p.write_text('# AVA v2.1 style\nitem {\n  name: "bend/bow (at the waist)"\n  id: 1\n}\n'
                 'item { name: "crawl" id: 2 }\n')
    lm = read_labelmap(str(p))
    assert lm.ids == [1, 2] and lm.names == ["bend/bow (at the waist)", "crawl"]
    assert lm.types == [None, None]


def test_breakdown_falls_back_to_id_ranges(tmp_path):
    # no label_type: ids 1-14 PM, 15-63 OM, 64+ PI (mmaction2's rule)
    p = tmp_path / "lm.pbtxt"
    p.write_text("".join(f'item {{ name: "c{i}" id: {i} }}\n' for i in (1, 17, 79, 80)))
    res = evaluate(read_box_csv(write(tmp_path, "gt.csv", GT)),
                   read_box_csv(write(tmp_path, "det.csv", PERFECT[:2])), read_labelmap(str(p)),
                   read_exclusions(None), breakdown=True)
    # c1: 2 GT, TP on 0902 only -> AP 1/2; c17: AP 0; c79: AP 1; c80: no GT
    assert res.group_source == "id ranges"
    assert res.groups == {"PM": 0.5, "OM": 0.0, "PI": 1.0}
    assert res.mean_ap == pytest.approx(0.5)


def test_voc_average_precision_by_hand():
    # ranked TP, FP, TP, FP with 3 GT: precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3
    # -> 1/3 * 1 + 1/3 * 2/3 = 5/9
    s = np.array([0.9, 0.8, 0.7, 0.6])
    assert voc_average_precision(s, np.array([1, 0, 1, 0], bool), 3) == pytest.approx(5 / 9)
    assert math.isnan(voc_average_precision(s, np.zeros(4, bool), 0))
    assert voc_average_precision(s[:0], np.zeros(0, bool), 2) == 0.0
