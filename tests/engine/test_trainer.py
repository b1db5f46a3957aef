"""The engine through tools/train_net.py on an in-memory toy task (tests/engine/toy_task.py):
learning + outputs, exact resume, 2-process Gloo equivalence, skipped-sample accounting."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from mvit_tasks.checkpoint.io import load_checkpoint_file
from mvit_tasks.engine.samplers import TrainBatchSampler
from mvit_tasks.engine.trainer import TooManyFailuresError

from engine_testing import HERE, ROOT, TASK, TOOL
from engine_testing import read_records as _records


def test_training_learns_and_writes_every_output(run, tmp_path):
    report = run(tmp_path)
    assert report["iterations"] == 4 * (64 // 8) and report["epochs"] == 4
    top1 = report["results"]["toy"]["top1"]
    assert top1 > 70.0, report  # 3 classes: chance is ~33 %
    assert report["results"]["toy"]["num_samples"] == 21
    ck = tmp_path / "checkpoints"
    assert {p.name for p in ck.iterdir()} == {"last.pth", "best.pth", "epoch_0001.pth",
                                              "epoch_0002.pth", "epoch_0003.pth", "epoch_0004.pth"}
    last = load_checkpoint_file(str(ck / "last.pth"))
    assert last["iteration"] == 32 and last["epoch"] == 4 and last["best"] == report["best"]
    recs = _records(tmp_path / "metrics.jsonl")
    train = [r for r in recs if "loss" in r]
    assert [r["iteration"] for r in train] == list(range(2, 33, 2))
    assert train[-1]["loss"] < train[0]["loss"]
    assert train[0]["lr"] < 0.01 and train[-1]["lr"] < train[len(train) // 2]["lr"]  # warm-up, cosine
    evals = [r for r in recs if "eval" in r]
    assert evals[-1]["eval"]["toy"]["top1"] == top1
    assert [r["epoch"] for r in evals] == [1.0, 2.0, 3.0, 4.0]
    plots = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"loss.png", "lr.png"} <= plots and any("top1" in p for p in plots)
    assert any(f.startswith("events.out.tfevents")
               for f in os.listdir(tmp_path / "tensorboard"))
    assert json.loads((tmp_path / "final_report.json").read_text())["iterations"] == 32
    assert (tmp_path / "eval" / "epoch_0004" / "results.json").exists()
    assert (tmp_path / "config.yaml").read_text().count("TOY:") == 1


def test_resume_matches_an_uninterrupted_run(run, tmp_path):
    """Mid-epoch stop + --resume == one run: dropout, augmentation noise, EMA, accumulation."""
    opts = ["TOY.DROPOUT", "0.3", "TOY.AUG_NOISE", "0.2", "TRAIN.EMA.ENABLE", "True",
            "TRAIN.EMA.DECAY", "0.9", "SOLVER.ACCUM_STEPS", "2", "TRAIN.EVAL_PERIOD", "0"]
    run(tmp_path / "full", *opts, "TRAIN.MAX_ITERS", "20")
    run(tmp_path / "part", *opts, "TRAIN.MAX_ITERS", "11")  # stops inside epoch 2
    stopped = load_checkpoint_file(str(tmp_path / "part" / "checkpoints" / "last.pth"))
    assert (stopped["iteration"], stopped["epoch"], stopped["batch_in_epoch"]) == (11, 1, 3)
    run(tmp_path / "part", *opts, "TRAIN.MAX_ITERS", "20", flags=["--resume"])
    a = load_checkpoint_file(str(tmp_path / "full" / "checkpoints" / "last.pth"))
    b = load_checkpoint_file(str(tmp_path / "part" / "checkpoints" / "last.pth"))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["ema"]["num_updates"] == b["ema"]["num_updates"] == 20
    for key, value in a["ema"]["shadow"].items():
        assert torch.equal(value, b["ema"]["shadow"][key]), key
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time_per_iter"}  # noqa: E731
                        for r in rs if "loss" in r and r["iteration"] % 2 == 0]  # LOG_PERIOD
    assert strip(_records(tmp_path / "full" / "metrics.jsonl")) == \
        strip(_records(tmp_path / "part" / "metrics.jsonl"))


def test_resume_without_checkpoint_is_an_error(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pth"):
        run(tmp_path, flags=["--resume"])


def test_skipped_samples_are_counted_and_listed(run, tmp_path):
    report = run(tmp_path, "TOY.BAD_INDICES", "[3, 40]", "SOLVER.MAX_EPOCH", "2")
    paths = {r["path"]: r for r in report["skipped_train"]}
    assert set(paths) == {"toy/0003.mp4", "toy/0040.mp4"}
    assert all(r["count"] == 2 and r["reason"] == "truncated file" for r in paths.values())
    assert report["skipped_train_count"] == 4 and report["train_samples_seen"] == 128


def test_too_many_failures_stop_the_run(run, tmp_path):
    with pytest.raises(TooManyFailuresError, match="toy/0001.mp4"):
        run(tmp_path, "TOY.BAD_INDICES", str(list(range(0, 64, 2)) + [1]),
            "TRAIN.MAX_FAILED_FRACTION", "0.1")


def test_eval_only_loads_weights(run, tmp_path):
    run(tmp_path / "a", "SOLVER.MAX_EPOCH", "2")
    out = run(tmp_path / "b", "TEST.CHECKPOINT_FILE_PATH",
              str(tmp_path / "a" / "checkpoints" / "last.pth"), flags=["--eval-only"])
    trained = json.loads((tmp_path / "a" / "final_report.json").read_text())["results"]
    assert out["results"] == trained
    assert (tmp_path / "b" / "eval" / "eval_only" / "results.json").exists()
    page = (tmp_path / "b" / "report.html").read_text()  # the evaluation's own report
    assert "evaluation only" in page and f"{trained['toy']['top1']:.4g}" in page


def _train_net_processes(out, n, *opts, timeout=150):
    """tools/train_net.py in ``n`` Gloo CPU processes; a run past ``timeout`` seconds (a hang in
    a collective) is killed with all its processes and fails the test."""
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + ROOT, "OMP_NUM_THREADS": "1"}
    common = ["--task", TASK, "DATA_LOADER.NUM_WORKERS", "0", "TRAIN.BATCH_SIZE", "8",
              "TEST.BATCH_SIZE", "4", "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_EPOCH", "2",
              "TOY.AUG_NOISE", "0.2", "TENSORBOARD.ENABLE", "False", "LOG_PERIOD", "4"]
    cmd = [sys.executable, TOOL, "--num-gpus", str(n), "--cpu", *common, *opts,
           "OUTPUT_DIR", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{n} processes did not finish in {timeout} s (hung in a collective?)\n"
                    + stderr[-3000:])
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return load_checkpoint_file(str(out / "checkpoints" / "last.pth"))


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    """DDP on 2 CPU processes (Gloo) with the same global batch gives the 1-process weights."""
    a = _train_net_processes(tmp_path / "n1", 1)["model"]
    b = _train_net_processes(tmp_path / "n2", 2)["model"]
    for key in a:  # gradients are averaged in another order: float rounding only
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    r1 = json.loads((tmp_path / "n1" / "final_report.json").read_text())["results"]["toy"]
    r2 = json.loads((tmp_path / "n2" / "final_report.json").read_text())["results"]["toy"]
    assert r2["num_samples"] == r2["num_unique"] == 21  # 21 = 10 + 11 over two ranks, no padding
    assert r1["top1"] == r2["top1"]


@pytest.mark.slow
def test_a_rank_whose_micro_batch_is_wholly_unreadable_keeps_in_step(tmp_path):
    """In epoch 0, rank 1's whole first micro-batch is unreadable, then both ranks' second,
    then rank 0's third: a rank without a sample still takes part in every collective (a zero
    loss over all parameters, its sample counts), the run finishes, and the weights are the
    1-process run's on the same samples (each rank's loss weighted by its share)."""
    batches = [list(TrainBatchSampler(64, 8, rank=r, world_size=2, seed=0))[:3]
               for r in (0, 1)]  # epoch 0, batches 0-2 of each rank: [(index, seed) x 4] x 3
    bad = [i for i, _ in batches[1][0] + batches[0][1] + batches[1][1] + batches[0][2]]
    opts = ["TOY.BAD_INDICES", str(bad), "TRAIN.MAX_FAILED_FRACTION", "0.75"]
    a = _train_net_processes(tmp_path / "n1", 1, *opts)
    b = _train_net_processes(tmp_path / "n2", 2, *opts)
    assert a["iteration"] == b["iteration"] == 16
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)
    r1, r2 = (json.loads((tmp_path / d / "final_report.json").read_text()) for d in ("n1", "n2"))
    assert r1["skipped_train_count"] == r2["skipped_train_count"] == 32  # 16 files x 2 epochs
    assert r1["train_samples_seen"] == r2["train_samples_seen"] == 128


def test_gradient_accumulation_matches_the_full_batch(run, tmp_path):
    """ACCUM_STEPS 4 x micro-batch 2 == one batch of 8 (same samples, mean loss, same LR)."""
    run(tmp_path / "a", "SOLVER.MAX_EPOCH", "2", "TRAIN.EVAL_PERIOD", "0")
    run(tmp_path / "b", "SOLVER.MAX_EPOCH", "2", "TRAIN.EVAL_PERIOD", "0", "SOLVER.ACCUM_STEPS", "4")
    a = load_checkpoint_file(str(tmp_path / "a" / "checkpoints" / "last.pth"))
    b = load_checkpoint_file(str(tmp_path / "b" / "checkpoints" / "last.pth"))
    assert a["iteration"] == b["iteration"] == 16
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)


def test_bf16_autocast_trains_on_cpu(run, tmp_path):
    report = run(tmp_path, "TRAIN.MIXED_PRECISION", "bf16")
    assert report["results"]["toy"]["top1"] > 60.0  # fp32: 81 %, chance 33 %


def test_fp16_without_a_gpu_is_refused(run, tmp_path):
    with pytest.raises(ValueError, match="fp16 mixed precision needs a GPU"):
        run(tmp_path, "TRAIN.MIXED_PRECISION", "fp16", "SOLVER.MAX_EPOCH", "1")


def test_eval_only_uses_the_ema_weights_like_training_did(run, tmp_path):
    opts = ["TRAIN.EMA.ENABLE", "True", "TRAIN.EMA.DECAY", "0.8", "SOLVER.MAX_EPOCH", "2"]
    report = run(tmp_path / "a", *opts)
    ckpt = str(tmp_path / "a" / "checkpoints" / "last.pth")
    with_ema = run(tmp_path / "b", *opts, "TEST.CHECKPOINT_FILE_PATH", ckpt, flags=["--eval-only"])
    assert with_ema["results"] == report["results"]
    raw = run(tmp_path / "c", "TEST.CHECKPOINT_FILE_PATH", ckpt, flags=["--eval-only"])
    state = load_checkpoint_file(ckpt)
    assert any(not torch.equal(state["model"][k], v) for k, v in state["ema"]["shadow"].items())
    assert raw["results"]["toy"]["num_samples"] == 21
