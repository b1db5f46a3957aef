"""ClassificationEvaluator and tools/eval_classification.py on hand-computed predictions.

Logits are ``log(p)`` so that the softmax of a view is exactly ``p``; every expected number
below is worked out by hand in the comments.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mvit_tasks.utils import comm
from mvit_tasks.projects.video_classification.evaluator import ClassificationEvaluator, load_predictions
from mvit_tasks.projects.video_classification.metrics import PredictionsFileError, evaluate_predictions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TOOL = os.path.join(ROOT, "tools", "eval_classification.py")


def batch(rows):
    """rows: (video_id, view, label, probs) -> (inputs, outputs) as the engine passes them."""
    inputs = {
        "video_id": [r[0] for r in rows],
        "view": torch.tensor([r[1] for r in rows]),
        "label": torch.tensor([r[2] for r in rows]),
        "index": torch.arange(len(rows)),
        "clip": torch.zeros(len(rows), 1),  # other keys are ignored
    }
    logits = torch.log(torch.tensor([r[3] for r in rows], dtype=torch.float64)).float()
    return inputs, {"logits": logits}


# video A (label 0): both views wrong; sum = [0.8, 0.55, 0.65] -> 0 (right),
# max = [0.4, 0.5, 0.55] -> 2 (wrong). Video B (label 1): one right view.
VIEWS_AB = [
    ("A", 0, 0, [0.4, 0.5, 0.1]),
    ("A", 1, 0, [0.4, 0.05, 0.55]),
    ("B", 0, 1, [0.2, 0.7, 0.1]),
]


def run_eval(rows_per_batch, **kw):
    kw.setdefault("task_name", "k3")
    kw.setdefault("num_classes", 3)
    ev = ClassificationEvaluator(**kw)
    for rows in rows_per_batch:
        ev.process(*batch(rows))
    return ev, ev.evaluate()


def test_sum_ensemble_fixes_wrong_single_views():
    ev, res = run_eval([VIEWS_AB[:2], VIEWS_AB[2:]], topk=(1, 2, 5))
    m = res["k3"]
    assert m["top1"] == pytest.approx(100.0)
    assert m["top2"] == pytest.approx(100.0)
    assert m["top5"] == pytest.approx(100.0)  # k clipped to K = 3
    assert m["top1_single_view"] == pytest.approx(100.0 / 3)  # only B's view is right
    assert m["mean_class_accuracy"] == pytest.approx(100.0)
    assert (m["num_videos"], m["num_views"], m["num_duplicate_views"]) == (2, 3, 0)
    videos = ev.result.videos
    assert videos.video_id.tolist() == ["A", "B"]
    assert videos.num_views.tolist() == [2, 1]
    # "sum" is stored as the mean probability (same ranking as SlowFast's sum)
    np.testing.assert_allclose(videos.scores[0], [0.4, 0.275, 0.325], atol=1e-6)


def test_max_ensemble_differs_from_sum():
    _, res = run_eval([VIEWS_AB], ensemble="max", topk=(1, 2, 5))
    m = res["k3"]
    # A: max = [0.4, 0.5, 0.55]: true class ranks third -> wrong at top-1 and top-2
    assert m["top1"] == pytest.approx(50.0)
    assert m["top2"] == pytest.approx(50.0)
    assert m["top5"] == pytest.approx(100.0)
    assert m["mean_class_accuracy"] == pytest.approx(50.0)  # class 0: 0 %, class 1: 100 %
    assert m["top1_single_view"] == pytest.approx(100.0 / 3)  # independent of the ensemble


def test_logits_ensemble_punishes_a_near_zero_view():
    rows = [("A", 0, 0, [0.9, 0.05, 0.05]), ("A", 1, 0, [0.001, 0.5, 0.499])]
    # sum: [0.901, 0.55, 0.549] -> 0 right; geometric mean: [0.030, 0.158, 0.158] -> 1 wrong
    assert run_eval([rows], ensemble="sum")[1]["k3"]["top1"] == pytest.approx(100.0)
    assert run_eval([rows], ensemble="logits")[1]["k3"]["top1"] == pytest.approx(0.0)


def test_mean_class_accuracy_on_imbalanced_classes():
    rows = [(f"v{i}", 0, 0, [0.8, 0.1, 0.1]) for i in range(4)]  # 4 x class 0, all right
    rows.append(("w", 0, 1, [0.6, 0.3, 0.1]))  # 1 x class 1, predicted 0
    _, res = run_eval([rows], topk=(1, 2))
    m = res["k3"]
    assert m["top1"] == pytest.approx(80.0)  # 4 / 5
    assert m["mean_class_accuracy"] == pytest.approx(50.0)  # (100 + 0) / 2; class 2 absent
    assert m["top2"] == pytest.approx(100.0)


def test_duplicate_view_from_padding_counted_once(monkeypatch):
    # A: views 0 + 1 give sum [0.9, 0.7, 0.4] -> right; counting view 0 twice would give
    # [1.2, 1.3, 0.5] -> wrong. "Rank 1" repeats A/0 as distributed padding.
    a0, a1 = ("A", 0, 0, [0.3, 0.6, 0.1]), ("A", 1, 0, [0.6, 0.1, 0.3])
    b0 = ("B", 0, 1, [0.1, 0.8, 0.1])
    c = [("C", v, 2, [0.1, 0.1, 0.8]) for v in range(3)]
    rank0 = ClassificationEvaluator("k3", 3, expected_views=2)
    rank0.process(*batch([a0, a1]))
    rank0.process(*batch(c))
    rank1 = ClassificationEvaluator("k3", 3, expected_views=2)
    rank1.process(*batch([b0, a0]))
    captured = {}
    monkeypatch.setattr(comm, "gather_list", lambda items: captured.setdefault("r1", list(items)))
    rank1.evaluate()
    monkeypatch.setattr(comm, "gather_list", lambda items: list(items) + captured["r1"])
    m = rank0.evaluate()["k3"]
    assert m["top1"] == pytest.approx(100.0)
    assert (m["num_videos"], m["num_views"], m["num_duplicate_views"]) == (3, 6, 1)
    assert (m["num_videos_fewer_views"], m["num_videos_more_views"]) == (1, 1)  # B, C
    assert rank0.result.videos.num_views.tolist() == [2, 1, 3]


def test_unlabelled_videos_excluded_but_saved(tmp_path):
    rows = VIEWS_AB + [("U", 0, -1, [0.1, 0.1, 0.8])]
    ev, res = run_eval([rows])
    m = res["k3"]
    assert m["top1"] == pytest.approx(100.0)
    assert m["top1_single_view"] == pytest.approx(100.0 / 3)  # U's view not counted
    assert (m["num_videos"], m["num_views"], m["num_unlabelled_videos"]) == (2, 3, 1)
    path = ev.save_predictions(str(tmp_path / "p.npz"))
    with np.load(path) as f:
        assert f["video_id"].tolist() == ["A", "B", "U"]
        assert f["label"].tolist() == [0, 1, -1]
        assert f["probs"].dtype == np.float32 and f["probs"].shape == (3, 3)


def test_only_unlabelled_gives_counts_without_accuracy():
    _, res = run_eval([[("U", 0, -1, [0.1, 0.1, 0.8])]])
    assert res["k3"] == {"num_videos": 0, "num_views": 0, "num_unlabelled_videos": 1,
                         "num_duplicate_views": 0}


def test_bad_batches_raise_clear_errors():
    ev = ClassificationEvaluator("k3", 3)
    inputs, outputs = batch([("A", 0, 3, [0.2, 0.3, 0.5])])
    with pytest.raises(ValueError, match=r"'A'.*label 3 not in \[-1, 3\)"):
        ev.process(inputs, outputs)
    inputs, _ = batch([("A", 0, 0, [0.2, 0.3, 0.5])])
    with pytest.raises(ValueError, match=r"shape \(1, 4\), expected \(1, 3\)"):
        ev.process(inputs, {"logits": torch.zeros(1, 4)})
    ev.process(*batch([("A", 0, 0, [0.2, 0.3, 0.5]), ("A", 1, 1, [0.2, 0.3, 0.5])]))
    with pytest.raises(ValueError, match="'A'.*different labels"):
        ev.evaluate()
    with pytest.raises(ValueError, match="ensemble"):
        ClassificationEvaluator("k3", 3, ensemble="mean")


def test_view_falls_back_to_record_index():
    inputs, outputs = batch(VIEWS_AB)
    del inputs["view"]  # index 0, 1, 2: three distinct views, as with "view"
    ev = ClassificationEvaluator("k3", 3)
    ev.process(inputs, outputs)
    assert ev.evaluate()["k3"]["num_views"] == 3
    del inputs["index"]
    with pytest.raises(KeyError, match="view"):
        ev.process(inputs, outputs)


def test_reports_written_and_png_valid(tmp_path):
    import matplotlib.image as mpimg

    ev, _ = run_eval([VIEWS_AB + [("C", 0, 1, [0.5, 0.4, 0.1])]],
                     class_names=["walk", "run", "jump"])
    paths = ev.write_reports(str(tmp_path / "rep"))
    assert sorted(os.path.basename(p) for p in paths) == [
        "confusion_matrix.png", "per_class_accuracy.json", "predictions.npz"]
    per_class = json.loads((tmp_path / "rep" / "per_class_accuracy.json").read_text())
    assert per_class == {"walk": {"accuracy": 100.0, "count": 1},
                         "run": {"accuracy": 50.0, "count": 2},
                         "jump": {"accuracy": None, "count": 0}}
    png = tmp_path / "rep" / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(str(png))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    # many classes: drawn without tick labels, still a valid image
    k = 60
    rows = [(f"v{i}", 0, i, np.full(k, 0.5 / (k - 1)).tolist()) for i in range(k)]
    for i, r in enumerate(rows):
        r[3][i] = 0.5
    ev, res = run_eval([rows], task_name="k60", num_classes=k)
    assert res["k60"]["top1"] == pytest.approx(100.0)
    big = ev.write_reports(str(tmp_path / "rep60"))
    assert mpimg.imread(big[1]).shape[0] > 100


def test_npz_round_trip(tmp_path):
    ev, res = run_eval([VIEWS_AB + [("A", 0, 0, [0.4, 0.5, 0.1])]], ensemble="max",
                       class_names=["a", "b", "c"], expected_views=2)
    path = ev.save_predictions(str(tmp_path / "preds"))  # no ".npz" appended
    assert path == str(tmp_path / "preds") and os.path.isfile(path)
    views, meta = load_predictions(path)
    assert meta == {"ensemble": "max", "class_names": ["a", "b", "c"]}
    assert views.kind == "logits" and len(views) == 3  # the duplicate was dropped before saving
    assert views.video_id.tolist() == ["A", "A", "B"] and views.view.tolist() == [0, 1, 0]
    np.testing.assert_allclose(views.probs()[1], [0.4, 0.05, 0.55], atol=1e-6)
    again = evaluate_predictions(views, "max", (1, 5), expected_views=2).metrics
    assert {k: v for k, v in again.items() if k != "num_duplicate_views"} == {
        k: v for k, v in res["k3"].items() if k != "num_duplicate_views"}
    assert ClassificationEvaluator.load_predictions is load_predictions


def test_evaluate_under_one_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert comm.is_dist() and comm.get_world_size() == 1
        _, res = run_eval([VIEWS_AB[:1], VIEWS_AB[1:]])
    finally:
        dist.destroy_process_group()
    assert res["k3"]["top1"] == pytest.approx(100.0)
    assert res["k3"]["num_views"] == 3


# ---------------------------------------------------------------------------- the CLI
def _tool():
    from mvit_tasks.cli import eval_classification

    return eval_classification


def test_cli_subprocess_matches_evaluator(tmp_path):
    ev, res = run_eval([VIEWS_AB + [("U", 0, -1, [0.1, 0.1, 0.8])]])
    pred = ev.save_predictions(str(tmp_path / "predictions.npz"))
    (tmp_path / "labels.txt").write_text("walk\nrun\njump\n")
    out = tmp_path / "m.json"
    cmd = [sys.executable, TOOL, "--predictions", pred, "--classes", str(tmp_path / "labels.txt"),
           "--json-out", str(out), "--output-dir", str(tmp_path / "rep"), "--task-name", "k3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "top-1: 100.00  top-5: 100.00  mean class accuracy: 100.00" in proc.stdout
    got = json.loads(out.read_text())
    assert got.keys() == {"k3"}
    assert got["k3"] == pytest.approx(res["k3"])
    per_class = json.loads((tmp_path / "rep" / "per_class_accuracy.json").read_text())
    assert list(per_class) == ["walk", "run", "jump"]
    assert (tmp_path / "rep" / "confusion_matrix.png").stat().st_size > 0


def test_cli_per_view_file_and_ensemble_override(tmp_path, capsys):
    tool = _tool()
    p = np.array([r[3] for r in VIEWS_AB], dtype=np.float64)
    path = tmp_path / "views.npz"  # plain per-view rows, no "view" column
    np.savez(path, video_id=np.array(["A", "A", "B"]), label=np.array([0, 0, 1]),
             logits=np.log(p).astype(np.float32))
    for ens, top1 in (("sum", 100.0), ("max", 50.0)):
        out = tmp_path / f"{ens}.json"
        assert tool.main(["--predictions", str(path), "--ensemble", ens,
                          "--json-out", str(out)]) == 0
        m = json.loads(out.read_text())["video_classification"]
        assert m["top1"] == pytest.approx(top1)
        assert (m["num_videos"], m["num_views"]) == (2, 3)
    probs_only = tmp_path / "probs.npz"  # probabilities, views given explicitly
    np.savez(probs_only, video_id=np.array(["A", "A", "B"]), view=np.array([0, 1, 0]),
             label=np.array([0, 0, 1]), probs=p.astype(np.float32))
    assert tool.main(["--predictions", str(probs_only), "--ensemble", "max"]) == 0
    assert "top-1: 50.00" in capsys.readouterr().out


@pytest.mark.parametrize("arrays, message", [
    ({"label": [0, 1], "probs": np.eye(3)[:2]}, "missing array 'video_id'"),
    ({"video_id": ["a", "b"], "label": [0, 1]}, "no scores"),
    ({"video_id": ["a", "b"], "label": [0, 1, 1], "probs": np.eye(3)[:2]},
     r"'label' has shape \(3,\), expected \(2,\)"),
    ({"video_id": ["a", "b"], "label": [0, 3], "probs": np.eye(3)[:2]},
     r"label out of range at row 1 \(video 'b'\): 3 not in \[-1, 3\)"),
    ({"video_id": ["a", "b"], "label": [0, 1], "probs": np.array([1.0, 0.0])},
     "must be 2-D"),
])
def test_cli_bad_input_names_file_and_problem(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(PredictionsFileError, match=message):
        load_predictions(str(path))
    assert _tool().main(["--predictions", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "error:" in err


def test_cli_class_list_mismatch(tmp_path, capsys):
    path = tmp_path / "p.npz"
    np.savez(path, video_id=np.array(["a"]), label=np.array([0]), probs=np.eye(3)[:1])
    (tmp_path / "labels.txt").write_text("x\ny\n")
    assert _tool().main(["--predictions", str(path), "--classes",
                         str(tmp_path / "labels.txt")]) == 2
    assert "2 class names" in capsys.readouterr().err
