"""tools/export.py: torch.export (.pt2) and ONNX files of classification models that give the
eager logits (dynamic batch), weights from a checkpoint or a training config, the parity
failure exit, and clean skips / errors without the optional onnx packages."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mvit_tasks import export as X
from mvit_tasks.config import arch_from_cfg, load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.modeling.meta_arch import Classifier
from mvit_tasks.utils.cli import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "export.py")
DEMO = os.path.join(ROOT, "projects", "video_classification", "configs",
                    "demo_moving_shapes.yaml")
IMAGE_CONFIG = """\
MODEL:
  VARIANT: mvitv2_t
  NUM_CLASSES: 3
  MVIT: {DEPTH: 2, EMBED_DIM: 16, DIM_MUL: [[1, 2.0]], HEAD_MUL: [[1, 2.0]],
         POOL_Q_STRIDE: [[1, 2, 2]]}
DATA: {TRAIN_CROP_SIZE: 32}
"""
needs_onnx = pytest.mark.skipif(not (X.onnx_available() and X.onnxruntime_available()),
                                reason="optional onnx / onnxscript / onnxruntime not installed")


def _tool():
    from mvit_tasks.cli import export

    return export


def _demo_model(opts=()) -> Classifier:
    from mvit_tasks.projects.video_classification.task import ClassificationTask

    cfg = load_config(DEMO, list(opts),
                      extra_config_fns=[add_engine_config, ClassificationTask.add_config])
    return Classifier.from_arch(arch_from_cfg(cfg, input_from_data=True), cfg.MODEL.NUM_CLASSES,
                                dropout=cfg.MODEL.HEAD.DROPOUT_RATE)


def _trained_checkpoint(tmp_path, opts=()) -> tuple:
    """A model with non-trivial weights, saved as our training checkpoints are."""
    torch.manual_seed(3)
    model = _demo_model(opts)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "ckpt.pth"
    torch.save({"format_version": 1, "model": model.state_dict()}, path)
    return model.eval(), str(path)


def _run(argv):
    tool = _tool()
    return tool.main(argv)


def test_config_and_weights_export_a_program_equal_to_eager_with_dynamic_batch(tmp_path):
    model, ckpt = _trained_checkpoint(tmp_path)
    stem = tmp_path / "out" / "demo"
    summary_path = tmp_path / "summary.json"
    assert _run(["--config-file", DEMO, "--weights", ckpt, "--output", str(stem),
                 "--format", "pt2", "--json-out", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["input_shape"] == [2, 3, 8, 32, 32] and summary["dynamic_batch"]
    assert summary["files"] == {"pt2": str(stem) + ".pt2"} and summary["ok"]
    assert [(r["format"], r["batch"]) for r in summary["parity"]] == [("pt2", 2), ("pt2", 1)]
    program = X.load_program(str(stem) + ".pt2").module()
    for batch in (1, 3, 5):  # any batch, not only the traced one
        x = torch.randn(batch, 3, 8, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x), rtol=0, atol=1e-5)


def test_image_model_with_overrides_and_a_static_batch(tmp_path, capsys):
    config = tmp_path / "image.yaml"
    config.write_text(IMAGE_CONFIG)
    stem = tmp_path / "img"
    assert _run(["--config-file", str(config), "--format", "pt2", "--static-batch",
                 "--batch-size", "1", "--output", str(stem) + ".pt2",
                 "MODEL.NUM_CLASSES", "3"]) == 0
    out = capsys.readouterr().out
    assert "example input 1 x 3 x 32 x 32, batch static" in out
    assert "weights: random initialisation" in out
    program = X.load_program(str(stem) + ".pt2")
    assert program.module()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_variant_export_prints_the_parity(tmp_path, capsys):
    assert _run(["--variant", "mvitv2_t", "--format", "pt2", "--output",
                 str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "model: mvitv2_t (image, 24.17 M params" in out
    assert "example input 2 x 3 x 224 x 224, batch dynamic" in out
    assert "parity pt2 (batch 2): max abs" in out and out.rstrip().endswith("of eager")


def test_a_program_that_differs_from_eager_exits_2(tmp_path, monkeypatch, capsys):
    tool = _tool()
    real = X.load_program

    class Off:
        def __init__(self, path):
            self.program = real(path)

        def module(self):
            return lambda x: self.program.module()(x) + 1e-2

    monkeypatch.setattr(tool.X, "load_program", Off)
    assert tool.main(["--config-file", DEMO, "--format", "pt2", "--output",
                      str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "error: exported outputs differ from eager above 0.0001 relative (pt2 batch 2" in err


def test_without_the_onnx_packages_the_pt2_is_written_and_onnx_refused(tmp_path, monkeypatch,
                                                                        capsys):
    tool = _tool()
    monkeypatch.setattr(tool.X, "onnx_available", lambda: False)
    assert tool.main(["--config-file", DEMO, "--output", str(tmp_path / "m")]) == 0
    assert "ONNX: skipped (pip install onnx onnxscript onnxruntime" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["m.pt2"]
    with pytest.raises(UserError, match="--format onnx needs the optional packages"):
        tool.main(["--config-file", DEMO, "--format", "onnx", "--output", str(tmp_path / "n")])


@needs_onnx
def test_onnx_file_runs_in_onnxruntime_like_eager(tmp_path):
    model, ckpt = _trained_checkpoint(tmp_path)
    stem = tmp_path / "demo"
    summary_path = tmp_path / "s.json"
    assert _run(["--config-file", DEMO, "--weights", ckpt, "--output", str(stem),
                 "--json-out", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert set(summary["files"]) == {"pt2", "onnx"}
    ort = [r for r in summary["parity"] if r["format"] == "onnxruntime"]
    assert [r["batch"] for r in ort] == [2, 1] and all(r["max_rel"] < 1e-5 for r in ort)
    import onnx

    graph = onnx.load(str(stem) + ".onnx").graph
    assert [i.name for i in graph.input] == ["video"] and [o.name for o in graph.output] == [
        "logits"]
    x = torch.randn(4, 3, 8, 32, 32)  # a batch it was not checked on
    with torch.no_grad():
        torch.testing.assert_close(X.onnxruntime_outputs(str(stem) + ".onnx", x), model(x),
                                   rtol=0, atol=1e-5)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.mark.parametrize("args, message", [
    (["--variant", "mvitv2_nope"], "error: unknown variant 'mvitv2_nope'"),
    (["--variant", "mvitv2_t_coco"], "error: mvitv2_t_coco is a head-less detection backbone"),
    (["--config-file", DEMO, "--batch-size", "1"],
     "error: a dynamic batch needs an example batch of at least 2"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, args, message):
    proc = _cli(*args, "--output", str(tmp_path / "x"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
