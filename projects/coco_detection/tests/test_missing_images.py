"""COCO images missing on disk are skipped and counted in final_report.json, as videos are."""
from __future__ import annotations

import json
import os

import pytest

from mvit_tasks.projects.coco_detection.task import CocoTask

from .test_task import DEMO_CFG, _cfg, _tiny_opts


@pytest.mark.slow
def test_missing_images_are_skipped_and_counted(tmp_path):
    from mvit_tasks.cli.train_net import main

    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    CocoTask(_cfg(_tiny_opts(data, out)))  # generates the demo set, then two files go
    gone_train = os.path.join(data, "train", "000001.png")
    gone_val = os.path.join(data, "val", "000000.png")
    os.remove(gone_train)
    os.remove(gone_val)
    report = main(["--task", "coco", "--config-file", DEMO_CFG, "--cpu", *_tiny_opts(data, out),
                   "TRAIN.MAX_ITERS", "2", "SOLVER.MAX_EPOCH", "1", "TENSORBOARD.ENABLE",
                   "False", "TRAIN.MAX_FAILED_FRACTION", "0.6", "COCO.DEMO_DATA", "False"])
    assert [s["path"] for s in report["skipped_train"]] == [gone_train]
    assert "file missing on disk" in report["skipped_train"][0]["reason"]
    assert [s["path"] for s in report["skipped_eval"]] == [gone_val]
    # strict JSON (the COCO results hold NaN, e.g. APl without large objects: written as null)
    text = open(os.path.join(out, "final_report.json")).read()
    on_disk = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in final_report"))
    assert on_disk["results"]["bbox"]["APl"] is None
    assert on_disk["skipped_train_count"] == report["skipped_train_count"] >= 1
