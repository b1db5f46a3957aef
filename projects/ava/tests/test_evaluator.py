"""AvaEvaluator (DatasetEvaluator adapter): model outputs -> detection CSV -> frame-mAP.

The adapter's ``evaluate()`` must equal ``evaluate_files`` on the CSV ``write_reports`` wrote.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mvit_tasks.projects.ava.evaluation import evaluate_files, read_box_csv
from mvit_tasks.projects.ava.evaluation.evaluator import AvaEvaluator

LABELMAP = "".join(f'label {{ name: "c{i}" label_id: {i} }}\n' for i in (1, 3, 64))
A, B = [0.1, 0.1, 0.4, 0.9], [0.6, 0.1, 0.9, 0.9]
GT = ["v1,0902,0.1,0.1,0.4,0.9,1,0", "v1,0902,0.6,0.1,0.9,0.9,3,1",
      "v1,0903,0.1,0.1,0.4,0.9,64,0", "v2,0902,0.6,0.1,0.9,0.9,1,0"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "lm.pbtxt").write_text(LABELMAP)
    (tmp_path / "gt.csv").write_text("\n".join(GT) + "\n")
    (tmp_path / "ex.csv").write_text("v2,0903\n")
    return str(tmp_path / "gt.csv"), str(tmp_path / "lm.pbtxt"), str(tmp_path / "ex.csv")


def frame(vid, ts, boxes, hot, k=5, base=0.05):
    """One keyframe output: scores (N, k) sigmoid-like, ``hot`` = {(box, column): score}."""
    s = torch.full((len(boxes), k), base)
    for (i, j), v in hot.items():
        s[i, j] = v
    return {"video_id": vid, "timestamp": ts, "boxes": torch.tensor(boxes), "scores": s}


def test_perfect_outputs_give_100(files):
    gt, lm, ex = files
    ev = AvaEvaluator(gt, lm, ex, breakdown=True)
    # columns 0..4 are ids 1..5; ids 2, 4, 5 are not in the label map and are not written
    ev.process(None, [frame("v1", 902, [A, B], {(0, 0): 0.9, (1, 2): 0.8}),
                      frame("v1", 903, [A], {})])
    ev.process(None, [frame("v2", 902, [B], {(0, 0): 0.7})])
    # v1 903: the c64 person is not covered (5 columns = ids 1..5) -> c64 AP 0
    out = ev.evaluate()["ava"]
    assert out["mAP"] == pytest.approx(100 * 2 / 3)
    assert out["num_keyframes"] == 3 and out["num_det_rows"] == 4 * 2  # 4 boxes x (ids 1, 3)
    assert ev.result.per_class() == {"c1": 1.0, "c3": 1.0, "c64": 0.0}


def test_evaluate_equals_the_cli_on_the_written_csv(files, tmp_path):
    gt, lm, ex = files
    rng = np.random.default_rng(0)
    ev = AvaEvaluator(gt, lm, ex, class_ids=list(range(1, 81)), breakdown=True)
    for vid in ("v1", "v2"):
        for ts in (902, 903, 904):
            n = int(rng.integers(0, 4))
            xy = rng.random((n, 2)) * 0.5
            boxes = np.concatenate([xy, xy + 0.2 + rng.random((n, 2)) * 0.3], 1)
            if n:
                boxes[0] = A if ts != 904 else B
            ev.process(None, [{"video_id": vid, "timestamp": ts,
                               "boxes": torch.tensor(boxes, dtype=torch.float32),
                               "scores": torch.rand(n, 80)}])
    metrics = ev.evaluate()["ava"]
    csv_path, json_path = ev.write_reports(str(tmp_path / "rep"))
    table = read_box_csv(csv_path)
    assert len(table) == metrics["num_det_rows"] and set(table.action.tolist()) <= {1, 3, 64}
    ref = evaluate_files(gt, csv_path, lm, ex, breakdown=True)
    np.testing.assert_array_equal(ref.ap, ev.result.ap)  # bit for bit, NaNs included
    assert metrics["mAP"] == pytest.approx(100 * ref.mean_ap, abs=0)
    assert json.loads(open(json_path).read()) == json.loads(json.dumps(ref.to_json_dict()))


def test_duplicate_keyframes_count_once(files, monkeypatch):
    gt, lm, ex = files
    ev = AvaEvaluator(gt, lm, ex)
    ev.process(None, [frame("v1", 902, [A], {(0, 0): 0.9})])
    # a second rank holding the same keyframe again (a padded distributed sampler)
    from mvit_tasks.projects.ava.evaluation import evaluator as mod
    monkeypatch.setattr(mod.comm, "gather_list", lambda items: list(items) + list(items))
    out = ev.evaluate()["ava"]
    assert out["num_keyframes"] == 1 and out["num_duplicate_keyframes"] == 1
    assert ev.result.per_class()["c1"] == 0.5  # 2 GT of c1, one found with precision 1


def test_bad_outputs_raise(files):
    gt, lm, ex = files
    ev = AvaEvaluator(gt, lm, ex)
    with pytest.raises(ValueError, match="scores of shape"):
        ev.process(None, [{"video_id": "v1", "timestamp": 902, "boxes": torch.zeros(2, 4),
                           "scores": torch.zeros(3, 80)}])
    ev.process(None, [frame("v1", 902, [A], {}, k=80)])
    with pytest.raises(ValueError, match="expected 80"):
        ev.process(None, [frame("v1", 903, [A], {}, k=60)])
    with pytest.raises(RuntimeError, match="call evaluate"):
        ev.write_reports("unused")


def test_boxes_outside_the_image_are_scored_and_reported(files, tmp_path):
    # as the official evaluator does with the written CSV: scored as they are, listed
    gt, lm, ex = files
    ev = AvaEvaluator(gt, lm, ex)
    ev.process(None, [frame("v1", 902, [[0.1, 0.1, 1.5, 0.5]], {})])
    out = ev.evaluate()["ava"]
    assert out["num_input_warnings"] == 1
    assert ev.warnings()[0].startswith("<AvaEvaluator>:1: ") and "outside [0, 1]" in \
        ev.warnings()[0]
    ev.write_reports(str(tmp_path))
    import json

    assert json.loads((tmp_path / "ava_frame_map.json").read_text())["warnings"] == ev.warnings()
    strict = AvaEvaluator(gt, lm, ex, strict=True)
    strict.process(None, [frame("v1", 902, [[0.1, 0.1, 1.5, 0.5]], {})])
    with pytest.raises(ValueError, match="strict"):
        strict.evaluate()
