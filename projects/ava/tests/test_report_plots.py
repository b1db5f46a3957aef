"""AvaEvaluator.write_reports also draws the per-class frame-AP chart: every label-map class,
sorted descending, named with its ground-truth count; the returned files are unchanged."""
from __future__ import annotations

import os

import pytest
import torch

import mvit_tasks.engine.events as events
from mvit_tasks.projects.ava.evaluation.evaluator import AvaEvaluator

LABELMAP = "".join(f'label {{ name: "c{i}" label_id: {i} }}\n' for i in (1, 3, 64, 80))
A, B = [0.1, 0.1, 0.4, 0.9], [0.6, 0.1, 0.9, 0.9]
GT = ["v1,0902,0.1,0.1,0.4,0.9,1,0", "v1,0902,0.6,0.1,0.9,0.9,3,1",
      "v1,0903,0.1,0.1,0.4,0.9,64,0", "v2,0902,0.6,0.1,0.9,0.9,1,0",
      "v2,0902,0.1,0.1,0.4,0.9,3,2"]


def test_per_class_ap_chart_next_to_the_json(tmp_path, monkeypatch):
    (tmp_path / "lm.pbtxt").write_text(LABELMAP)
    (tmp_path / "gt.csv").write_text("\n".join(GT) + "\n")
    ev = AvaEvaluator(str(tmp_path / "gt.csv"), str(tmp_path / "lm.pbtxt"))
    scores = torch.full((2, 80), 0.05)
    scores[0, 0], scores[1, 2], scores[1, 0] = 0.9, 0.8, 0.6  # c1 found, c3 half, c64 missed
    ev.process(None, [{"video_id": "v1", "timestamp": 902, "boxes": torch.tensor([A, B]),
                       "scores": scores}])
    ev.process(None, [{"video_id": "v2", "timestamp": 902, "boxes": torch.tensor([B]),
                       "scores": torch.tensor([[0.7] + [0.05] * 79])}])
    ev.evaluate()
    drawn = []
    real = events.per_class_figure
    monkeypatch.setattr(events, "per_class_figure",
                        lambda values, title, **kw: drawn.append(real(values, title, **kw))
                        or drawn[-1])
    out = tmp_path / "rep"
    paths = ev.write_reports(str(out))
    assert [os.path.basename(p) for p in paths] == ["ava_detections.csv", "ava_frame_map.json"]
    assert (out / "ava_per_class_ap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = drawn[0].axes[0]
    widths = [b.get_width() for b in ax.patches]
    ap = ev.result.per_class()
    assert widths == sorted(widths, reverse=True)
    assert widths == pytest.approx(sorted((100 * v for v in ap.values() if v is not None),
                                          reverse=True))
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[0] == "c1 (2 GT)" and set(names) == {"c1 (2 GT)", "c3 (2 GT)", "c64 (1 GT)"}
    assert any("c80 (0 GT)" in t.get_text() for t in drawn[0].texts)  # no AP: named below
    assert "mAP" in ax.get_title()
