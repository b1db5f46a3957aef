"""tools/benchmark.py on tiny settings: JSON structure only (no timing assertions)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "benchmark.py")

TIMING = {"median_s", "p10_s", "p90_s", "times_s", "peak_mem_mb"}


def _check_report(rep: dict, pairs, dtypes, train: bool = True) -> None:
    assert rep["mode"] == "backbone"
    m = rep["machine"]
    for key in ("torch", "torch_threads", "device", "device_name", "cpu_count"):
        assert key in m
    c = rep["config"]
    assert c["iters"] == 1 and c["size"] == 64 and c["frames"] == 4 and c["batch"] == 1
    rows = rep["results"]
    assert [(r["pair"], r["dtype"]) for r in rows] == [(p, d) for p in pairs for d in dtypes]
    for r in rows:
        for impl in ("ours", "theirs"):
            res = r[impl]
            assert "error" not in res, res.get("error")
            assert res["impl"] == impl and res["dtype"] == r["dtype"]
            assert res["params"] > 0
            assert set(res["forward"]) >= TIMING and len(res["forward"]["times_s"]) == 1
            assert res["forward"]["median_s"] > 0 and res["forward"]["peak_mem_mb"] >= 0
            if train:
                assert set(res["train_step"]) >= TIMING
            else:
                assert "train_step" not in res
        # identical weights: same parameter count, converter used, same logits in fp32
        assert r["identical_weights"], r["ours"]["weights"]
        assert r["ours"]["params"] == r["theirs"]["params"]
        if r["dtype"] == "fp32":
            assert r["ours"]["max_abs_diff_vs_theirs"] < 1e-3
        q = r["ratios_ours_over_theirs"]
        assert set(q) == {"forward_time", "train_step_time", "forward_peak_mem", "train_peak_mem"}
        assert q["forward_time"] > 0
        if train:
            assert q["train_step_time"] > 0


def test_benchmark_in_process_timm(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, TOOL, "--tiny", "--pairs", "timm_v2_t", "--dtypes", "fp32", "bf16",
           "--frames", "4", "--size", "64", "--iters", "1", "--warmup", "0", "--isolation", "none",
           "--threads", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ratio ours/theirs" in proc.stdout
    rep = json.loads(out.read_text())
    _check_report(rep, ["timm_v2_t"], ["fp32", "bf16"])
    assert rep["results"][0]["input_shape"] == [1, 3, 64, 64]


def test_benchmark_subprocess_torchvision(tmp_path):
    """One fresh process per (model, dtype), as the default run does."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, TOOL, "--tiny", "--pairs", "torchvision_v2_s", "--dtypes", "fp32",
           "--frames", "4", "--size", "64", "--iters", "1", "--warmup", "0", "--no-train",
           "--threads", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    _check_report(rep, ["torchvision_v2_s"], ["fp32"], train=False)
    assert rep["results"][0]["input_shape"] == [1, 3, 4, 64, 64]
    assert rep["config"]["isolation"] == "subprocess" and rep["config"]["tiny"]
    mem = rep["results"][0]["ours"]["mem_method"]
    assert "RSS" in mem or "ru_maxrss" in mem


@pytest.mark.slow
def test_benchmark_full_size_pair_runs(tmp_path):
    """The real torchvision mvit_v1_b vs ours at a small input, in subprocesses."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, TOOL, "--pairs", "torchvision_v1_b", "--dtypes", "bf16", "--frames", "4",
           "--size", "64", "--iters", "1", "--warmup", "0", "--threads", "2", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(out.read_text())
    _check_report(rep, ["torchvision_v1_b"], ["bf16"])
    assert rep["results"][0]["ours"]["model"] == "ours:mvit_b_16x4"


def test_modes_registry_and_pairs():
    from mvit_tasks.benchmark import MODES as PKG_MODES
    from mvit_tasks.benchmark.pairs import DEFAULT_PAIRS, PAIRS, input_shape

    from mvit_tasks.cli import benchmark
    assert benchmark.MODES is PKG_MODES and "backbone" in benchmark.MODES
    add_args, run = benchmark.MODES["backbone"]
    assert callable(add_args) and callable(run)
    args = benchmark.parse_args(["--frames", "4", "--size", "32", "--image-size", "48"])
    assert args.mode == "backbone" and args.pairs == DEFAULT_PAIRS
    assert args.train_iters == 3 and args.train_warmup == 1
    assert input_shape(PAIRS["timm_v2_t"], args) == (1, 3, 48, 48)
    assert input_shape(PAIRS["torchvision_v1_b"], args) == (1, 3, 4, 32, 32)


def test_common_stats_ratio_and_isolation(tmp_path):
    from mvit_tasks.benchmark import backbone, common

    s = common.stats([3.0, 1.0, 2.0])
    assert s["median_s"] == 2.0 and s["p10_s"] < 2.0 < s["p90_s"] and s["times_s"] == [3, 1, 2]
    assert common.stats([])["median_s"] is None
    assert common.ratio(1.0, 2.0) == 0.5 and common.ratio(None, 2.0) is None
    assert common.ratio(1.0, 0.0) is None
    assert common.get({"a": {"b": 1.5}}, "a", "b") == 1.5 and common.get({}, "a", "b") is None
    # a failing child reports an error with the fallback fields instead of raising
    spec = {"workdir": str(tmp_path), "pair": "no_such_pair"}
    res = common.run_isolated(backbone.measure, spec, "subprocess", "bad", {"model": "m"})
    assert res["model"] == "m" and "child failed" in res["error"]
    assert "no_such_pair" in res["error"]
