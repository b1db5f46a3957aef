"""projects/ava/benchmark.py (``--mode ava_eval``) on a tiny generated case."""
from __future__ import annotations

import argparse

from mvit_tasks.projects.ava import benchmark


def test_benchmark_mode_on_a_tiny_case(tmp_path):
    parser = argparse.ArgumentParser()
    benchmark.add_args(parser)
    flags = [s for a in parser._actions for s in a.option_strings if s not in ("-h", "--help")]
    assert flags and all(s.startswith("--ava-") for s in flags)
    args = parser.parse_args(["--ava-frames", "128", "--ava-rows-per-frame", "10",
                              "--ava-workdir", str(tmp_path), "--ava-keep"])
    out = benchmark.run(args)
    assert benchmark.MODE_NAME == "ava_eval"
    assert [r["protocol"] for r in out["results"]] == ["activitynet", "mmaction2"]
    for r in out["results"]:
        assert r["det_rows"] == 128 * 10 and r["gt_rows"] > 128
        assert 0.0 < r["mAP"] < 1.0 and set(r["groups"]) == {"PM", "OM", "PI"}
        assert r["total_s"] == sum(r["seconds"].values())
    assert len((tmp_path / "det.csv").read_text().splitlines()) == 1280
    lines = benchmark.table(out["results"])
    assert len(lines) == 3 and lines[1].startswith("activitynet")


def test_demo_memory_mode_smoke(tmp_path):
    import importlib.util

    from mvit_tasks.benchmark import MODES

    importlib.import_module("mvit_tasks.cli.benchmark")  # registers the project modes
    assert MODES[benchmark.DEMO_MODE_NAME][1] is benchmark.run_demo_memory  # from EXTRA_MODES
    parser = argparse.ArgumentParser()
    benchmark.add_demo_args(parser)
    args = parser.parse_args(["--ava-demo-seconds", "2", "3", "--ava-demo-size", "64", "48",
                              "--ava-demo-workdir", str(tmp_path)])
    out = benchmark.run_demo_memory(args)
    assert [r["frames"] for r in out["results"]] == [50, 75]
    for r in out["results"]:
        assert r["output_frames"] == r["frames"] and r["keyframes"] == r["seconds"] - 1
        assert r["peak_rss_mb"] > 10 and r["clip_frames"] == 8
    assert out["rss_growth_mb"] == out["results"][1]["peak_rss_mb"] - out["results"][0][
        "peak_rss_mb"]
    lines = benchmark.demo_table(out["results"])
    assert len(lines) == 3 and lines[1].split()[:2] == ["2", "50"]
