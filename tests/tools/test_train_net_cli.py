"""tools/train_net.py's edges: one-line user errors (exit 2, traceback with --debug), one run
per OUTPUT_DIR, no evaluation of random weights by accident."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mvit_tasks.engine.output_dir import claim_output_dir
from mvit_tasks.utils.cli import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AVA_DEMO = os.path.join(ROOT, "projects", "ava", "configs", "demo_synthetic.yaml")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_net.py"), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_a_user_error_is_one_line_and_exit_2_traceback_with_debug(tmp_path):
    args = ["--task", "ava", "--config-file", AVA_DEMO, "AVA.NO_SUCH_KEY", "1",
            "OUTPUT_DIR", str(tmp_path)]
    proc = _run(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "AVA.NO_SUCH_KEY" in lines[0]
    assert len(lines) <= 3, proc.stderr  # the error, maybe a hint line, the --debug hint
    debug = _run("--debug", *args)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_another_runs_output_dir_is_refused(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 21}\n')
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pth").write_bytes(b"a checkpoint")
    proc = _run("--task", "ava", "--config-file", AVA_DEMO, "AVA.DEMO_DATA", "False",
                "OUTPUT_DIR", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"OUTPUT_DIR {tmp_path} holds another run (checkpoints, metrics.jsonl)" in proc.stderr
    assert "--resume" in proc.stderr and "--overwrite" in proc.stderr


def test_claim_output_dir_overwrites_only_when_asked(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")  # a run killed before its checkpoint:
    assert claim_output_dir(str(tmp_path), resume=False, overwrite=False) == []  # starts over
    (tmp_path / "final_report.json").write_text("{}\n")  # a finished run
    (tmp_path / "eval" / "epoch_0001").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")  # not a run file: kept
    with pytest.raises(UserError, match="holds another run"):
        claim_output_dir(str(tmp_path), resume=False, overwrite=False)
    assert claim_output_dir(str(tmp_path), resume=True, overwrite=False) == []
    assert claim_output_dir(str(tmp_path), resume=False, overwrite=True) == [
        "metrics.jsonl", "final_report.json", "eval"]
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    assert claim_output_dir(str(tmp_path / "new"), resume=False, overwrite=False) == []


def test_eval_only_without_weights_stops(tmp_path):
    proc = _run("--task", "ava", "--config-file", AVA_DEMO, "--eval-only", "AVA.DEMO_DATA",
                "False", "OUTPUT_DIR", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "would score a randomly initialised model" in proc.stderr
    assert "--random-weights" in proc.stderr
