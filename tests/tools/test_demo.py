"""tools/demo.py: a one-epoch quickstart on a tiny generated set, and the CLI modes."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from mvit_tasks.checkpoint.io import load_checkpoint_file
from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.meta_arch.classifier import Classifier

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "demo.py")


def _load_demo():
    spec = importlib.util.spec_from_file_location("demo_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_one_epoch(tmp_path):
    data, out = tmp_path / "clips", tmp_path / "out"
    cmd = [sys.executable, TOOL, "--quickstart", "--data", str(data), "--out", str(out),
           "--epochs", "1", "--train-per-class", "2", "--val-per-class", "1", "--batch-size", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "epoch   1/1" in proc.stdout and '"val_top1"' in proc.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("val_top1", "chance_top1", "num_classes", "classes", "num_train", "num_val",
                "epochs_run", "train_time_s", "train_clips_per_s", "total_time_s", "history"):
        assert key in metrics, key
    assert metrics["num_classes"] == len(metrics["classes"]) >= 5
    assert metrics["chance_top1"] == pytest.approx(100.0 / metrics["num_classes"], abs=0.01)
    assert metrics["num_train"] == 2 * metrics["num_classes"] and metrics["epochs_run"] == 1
    assert 0.0 <= metrics["val_top1"] <= 100.0 and metrics["train_clips_per_s"] > 0
    assert metrics["history"][0]["epoch"] == 1
    assert (data / "meta.json").exists() and (data / "train.csv").exists()

    ckpt = load_checkpoint_file(str(out / "model_final.pth"))  # weights_only: plain containers
    arch = MViTArch.from_dict(ckpt["arch"])
    model = Classifier.from_arch(arch, len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    x = torch.zeros(1, 3, arch.num_frames, *arch.spatial_size)
    assert model.eval()(x).shape == (1, metrics["num_classes"])


@pytest.mark.parametrize("task", ["ava", "coco", "classification"])
def test_future_tasks_are_not_available_yet(task, capsys):
    assert _load_demo().main(["--task", task]) == 2
    assert "not available yet" in capsys.readouterr().err


def test_a_mode_is_required():
    with pytest.raises(SystemExit) as info:
        _load_demo().main([])
    assert info.value.code == 2
