"""projects/ava/benchmark.py (``--mode ava_eval``) on a tiny generated case."""
from __future__ import annotations

import argparse

from projects.ava import benchmark


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
