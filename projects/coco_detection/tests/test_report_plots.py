"""CocoEvaluator.write_reports also draws the AP of every category (bbox and segm), sorted
descending, with the category names; the returned files are unchanged."""
from __future__ import annotations

import os

import torch

import mvit_tasks.engine.events as events
from mvit_tasks.projects.coco_detection.converters import validate_coco_dict
from mvit_tasks.projects.coco_detection.evaluator import CocoEvaluator

CATS = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 9, "name": "owl"}]


def _ann(aid, img, cat, x, y, s):
    return {"id": aid, "image_id": img, "category_id": cat, "bbox": [x, y, s, s], "iscrowd": 0,
            "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]]}


def _out(dets):
    """(x, y, s, label, score) squares -> boxes, labels, scores and masks."""
    masks = torch.zeros(len(dets), 1, 100, 100)
    for i, (x, y, s, _, _) in enumerate(dets):
        masks[i, 0, y:y + s, x:x + s] = 1.0
    return {"boxes": torch.tensor([[x, y, x + s, y + s] for x, y, s, _, _ in dets],
                                  dtype=torch.float32),
            "labels": torch.tensor([d[3] for d in dets]),
            "scores": torch.tensor([d[4] for d in dets]), "masks": masks}


def test_per_category_charts_for_bbox_and_segm(tmp_path, monkeypatch):
    gt = validate_coco_dict({
        "images": [{"id": 1, "file_name": "0.jpg", "height": 100, "width": 100}],
        "categories": CATS,
        "annotations": [_ann(1, 1, 3, 10, 10, 40), _ann(2, 1, 7, 55, 55, 40),
                        _ann(3, 1, 7, 5, 60, 30)]}, drop_invalid=False)
    ev = CocoEvaluator(gt)
    # cat found; one of two dogs found (after a false positive); owl has no ground truth
    ev.process([{"image_id": 1}], [_out([(10, 10, 40, 1, 0.9), (70, 5, 20, 2, 0.95),
                                          (55, 55, 40, 2, 0.8)])])
    results = ev.evaluate()
    drawn = []
    real = events.per_class_figure
    monkeypatch.setattr(events, "per_class_figure",
                        lambda values, title, **kw: drawn.append((title, real(values, title, **kw)))
                        or drawn[-1][1])
    paths = ev.write_reports(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["coco_instances_results.json",
                                                    "coco_evaluated_image_ids.json"]
    for t in ("bbox", "segm"):
        assert (tmp_path / f"coco_per_category_ap_{t}.png").read_bytes()[:8] == \
            b"\x89PNG\r\n\x1a\n"
    assert [title.split()[1] for title, _ in drawn] == ["bbox", "segm"]
    for (title, fig), t in zip(drawn, ("bbox", "segm")):
        ax = fig.axes[0]
        assert [x.get_text() for x in ax.get_yticklabels()] == ["cat", "dog"]
        assert [b.get_width() for b in ax.patches] == [results[t]["AP-cat"], results[t]["AP-dog"]]
        assert results[t]["AP-cat"] > results[t]["AP-dog"]
        assert any("owl" in x.get_text() for x in fig.texts)
        assert f"{results[t]['AP']:.2f}" in title
