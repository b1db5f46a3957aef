"""tools/demo.py --quickstart: the demo config through train_net on a tiny generated set."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "demo.py")


def _load_demo():
    from mvit_tasks.cli import demo

    return demo


def test_quickstart_runs_train_net_end_to_end(tmp_path):
    data, out = tmp_path / "clips", tmp_path / "out"
    cmd = [sys.executable, TOOL, "--quickstart", "--data", str(data), "--out", str(out),
           "SOLVER.MAX_EPOCH", "1", "CLS.DEMO_TRAIN_PER_CLASS", "2", "CLS.DEMO_VAL_PER_CLASS",
           "1", "TRAIN.BATCH_SIZE", "4", "TRAIN.EVAL_PERIOD", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.rindex("{\n  \"val_top1\""):])
    assert summary["chance_top1"] == pytest.approx(100 / 6, abs=0.01) and summary["num_val"] == 6
    assert summary["iterations"] == 3 and summary["skipped_train"] == 0  # 12 clips / batch 4
    assert (data / "meta.json").exists() and (data / "train.csv").exists()
    report = json.loads((out / "final_report.json").read_text())
    assert report["task"] == "classification" and report["iterations"] == 3
    evald = out / "eval" / "epoch_0001"
    assert {"per_class_accuracy.json", "confusion_matrix.png", "results.json"} <= \
        {p.name for p in evald.iterdir()}


def test_unknown_demo_names_the_available_ones(capsys):
    assert _load_demo().main(["--task", "no_such_demo"]) == 2
    assert "no such demo" in capsys.readouterr().err


def test_task_is_found_anywhere_and_presets_reach_the_classification_demo(monkeypatch):
    tool = _load_demo()
    assert tool.split_task(["--input", "v.mp4", "--task", "kinetics", "K", "V"]) == (
        "kinetics", ["--input", "v.mp4", "K", "V"])
    assert tool.split_task(["--task=ava", "--video", "v"]) == ("ava", ["--video", "v"])
    assert tool.split_task(["--quickstart", "--out", "o"]) == (None, ["--quickstart", "--out", "o"])
    demos = tool.project_demos()
    assert {"ava", "coco", "kinetics", "ssv2", "imagenet", "classification"} <= set(demos)
    seen = []
    monkeypatch.setattr(demos["ssv2"], "main", lambda argv: seen.append(argv) or 0)
    monkeypatch.setattr(tool, "project_demos", lambda: demos)
    assert tool.main(["--input", "v.mp4", "--task", "ssv2", "--debug"]) == 0
    assert seen == [["--task", "ssv2", "--input", "v.mp4"]]  # the preset named; --debug: run_cli


def test_overrides_after_a_list_of_inputs_are_overrides(tmp_path):
    from mvit_tasks.utils.cli import split_trailing_overrides

    (tmp_path / "A.B").write_text("")  # a file named like a key stays an input
    inputs = ["v.mp4", str(tmp_path / "A.B"), "DATA.NUM_FRAMES", "8", "CLS.X", "1"]
    assert split_trailing_overrides(inputs, ["K.V", "2"]) == (
        ["v.mp4", str(tmp_path / "A.B")], ["DATA.NUM_FRAMES", "8", "CLS.X", "1", "K.V", "2"])
    assert split_trailing_overrides(["a.png", "b.png"], []) == (["a.png", "b.png"], [])
    from mvit_tasks.projects.coco_detection.demo import parse_args

    args = parse_args(["--config-file", "c.yaml", "--output", "o", "--input", "a.png", "b.png",
                       "MODEL.WEIGHTS", "w.pth"])
    assert args.input == ["a.png", "b.png"] and args.opts == ["MODEL.WEIGHTS", "w.pth"]
    with pytest.raises(SystemExit):  # overrides only: no input
        parse_args(["--config-file", "c.yaml", "--output", "o", "--input", "MODEL.WEIGHTS", "w"])
