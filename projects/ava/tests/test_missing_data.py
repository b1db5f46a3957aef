"""Missing or unreadable AVA data stops the run with numbers (``TRAIN.MAX_FAILED_FRACTION``).

Before anything is read, keyframes without a video (or without their keyframe's frame file)
are counted; during evaluation, keyframes that fail to decode are counted too. More than the
allowed share stops the run, exit status 2, with the count and examples; below it, a WARNING.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mvit_tasks.engine.trainer import TooManyFailuresError
from mvit_tasks.projects.ava.converters.ava import KeyframeRecord
from mvit_tasks.projects.ava.task import check_media

from .tiny import CONFIG, run_opts, tiny_demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))


def _recs(n: int, video: str = "v"):
    return [KeyframeRecord(video, 902 + i, np.zeros((1, 4), np.float32), [[1]],
                           np.ones(1, np.float32), f"gt.csv:{i + 1}") for i in range(n)]


def test_missing_videos_over_the_limit_stop_before_reading(caplog):
    recs = _recs(19) + _recs(1, "gone")
    with caplog.at_level("WARNING"):
        check_media(recs, {"v": "v.mp4"}, "val", 0.05, 30.0, 900.0)  # 1 of 20 = 5%: allowed
    assert "1 of 20 keyframes have no readable media" in caplog.text
    with pytest.raises(TooManyFailuresError, match=r"AVA val: 2 of 20 keyframes .*10\.0%"
                                                   r"[\s\S]*gone,902: no video"):
        check_media(_recs(18) + _recs(2, "gone"), {"v": "v.mp4"}, "val", 0.05, 30.0, 900.0)


def test_missing_frame_files_are_counted(tmp_path):
    frames = [str(tmp_path / f"v_{i:06d}.jpg") for i in range(1, 200)]
    for f in frames[:60]:  # frames of seconds 900..901 only; keyframe 902 = frame 60 is gone
        open(f, "wb").close()
    with pytest.raises(TooManyFailuresError, match=r"v,902: frame file .*v_000061.jpg"):
        check_media(_recs(2), {"v": frames}, "train", 0.05, 30.0, 900.0)


@pytest.mark.slow
def test_runs_stop_when_data_is_missing(tmp_path):
    data = str(tmp_path / "demo")
    paths = tiny_demo(data)
    videos = paths["videos"]
    for name in os.listdir(videos):  # every val segment gone
        if name.startswith("demo_val"):
            os.remove(os.path.join(videos, name))
    out = str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--task", "ava",
           "--config-file", CONFIG, "--eval-only", "--random-weights", "--cpu",
           *run_opts(data, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "AVA val: 6 of 6 keyframes have no readable media (100.0%)" in proc.stderr
    assert "Traceback" not in proc.stderr and "mAP" not in proc.stdout

    # training keyframes missing: stops before the first iteration, nothing written
    from mvit_tasks.cli.train_net import main

    for name in os.listdir(videos):
        os.remove(os.path.join(videos, name))
    with pytest.raises(TooManyFailuresError, match="AVA train: 6 of 6 keyframes"):
        main(["--task", "ava", "--config-file", CONFIG, "--cpu", *run_opts(data, out)])
    assert not os.path.exists(os.path.join(out, "checkpoints", "last.pth"))


@pytest.mark.slow
def test_undecodable_val_videos_fail_the_evaluation_after_writing_reports(tmp_path):
    from mvit_tasks.cli.train_net import main

    data = str(tmp_path / "demo")
    paths = tiny_demo(data)
    for name in os.listdir(paths["videos"]):
        if name.startswith("demo_val_001"):  # one of two val segments: 3 of 6 keyframes
            with open(os.path.join(paths["videos"], name), "wb") as f:
                f.write(b"not a video")
    out = str(tmp_path / "out")
    with pytest.raises(TooManyFailuresError, match=r"3 of 6 val samples could not be read"):
        main(["--task", "ava", "--config-file", CONFIG, "--cpu", *run_opts(data, out)])
    # the epoch's checkpoint and the evaluation's files were written before it stopped
    assert os.path.isfile(os.path.join(out, "checkpoints", "last.pth"))
    res = json.load(open(os.path.join(out, "eval", "epoch_0001", "results.json")))
    assert res["samples"] == 6 and len(res["skipped"]) == 3
