"""tools/benchmark.py --mode data on 2 tiny generated videos: JSON structure, both rates."""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "benchmark.py")


def test_benchmark_data_mode(tmp_path):
    out = tmp_path / "data.json"
    cmd = [sys.executable, TOOL, "--mode", "data", "--data-num-videos", "2",
           "--data-video-seconds", "1", "--data-video-fps", "12", "--data-video-size", "64", "48",
           "--data-num-frames", "4", "--data-sampling-rate", "2", "--data-crop", "32",
           "--data-jitter", "36", "40", "--data-clips", "1", "--data-rounds", "1",
           "--data-warmup", "0", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ratio ours/pytorchvideo" in proc.stdout
    rep = json.loads(out.read_text())
    assert rep["mode"] == "data" and rep["num_videos"] == 2
    assert rep["videos"].startswith("generated: 2 x 1 s, 12 fps, 64x48")
    (row,) = rep["results"]
    assert row["workers"] == 0
    for impl in ("ours", "pytorchvideo"):
        r = row[impl]
        assert r["clips"] == 1 and r["clips_per_s"] > 0 and r["seconds"] > 0
        assert r["output_shape"] == [3, 4, 32, 32]
        assert len(r["per_clip"]["times_s"]) == 1
    assert row["ratio_ours_over_theirs"] == row["ours"]["clips_per_s"] / \
        row["pytorchvideo"]["clips_per_s"]
