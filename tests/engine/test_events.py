"""Metric writers (JSONL resume, TensorBoard), plots, and the progress line with ETA."""
import io
import logging
import os
import sys

import pytest
import torch

from mvit_tasks.engine.events import JSONLWriter, TensorBoardWriter, plot_metrics, read_jsonl
from mvit_tasks.engine.progress import ProgressBar, format_eta, format_value


def _train(it):
    return {"iteration": it, "epoch": it / 10, "loss": 2.0 / it, "loss_cls": 1.5 / it,
            "lr": 1e-3 * it}


def _eval(it):
    return {"iteration": it, "epoch": it // 10,
            "eval": {"video_classification": {"top1": it / 2.0, "top5": it}}}


def _run(path, iters, writer=None):
    w = writer or JSONLWriter(path)
    for it in iters:
        w.write(_train(it))
        if it % 10 == 0:
            w.write(_eval(it))
    return w


def test_jsonl_resume_equals_uninterrupted_run(tmp_path):
    full = str(tmp_path / "full" / "metrics.json")
    _run(full, range(1, 31)).close()
    part = str(tmp_path / "part" / "metrics.json")
    _run(part, range(1, 26)).close()  # crash after iteration 25; checkpoint at 20
    w = JSONLWriter(part)  # reopening appends
    assert w.truncate_after(20) == 5  # iterations 21..25 dropped
    _run(part, range(21, 31), writer=w).close()
    with open(full, "rb") as a, open(part, "rb") as b:
        assert a.read() == b.read()
    recs = read_jsonl(full)
    assert len(recs) == 33 and recs[-1]["eval"]["video_classification"]["top1"] == 15.0


def test_jsonl_partial_line_bad_lines_and_values(tmp_path, caplog):
    path = str(tmp_path / "m.json")
    with JSONLWriter(path) as w:
        w.write({"iteration": 1, "loss": torch.tensor(0.5), "n": torch.tensor(3)})
        with pytest.raises(ValueError, match="int 'iteration'"):
            w.write({"loss": 1.0})
    with open(path, "a") as f:
        f.write('{"iteration": 2, "lo')  # killed mid-write
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path) == [{"iteration": 1, "loss": 0.5, "n": 3}]
    assert "m.json:2: skipped 1 incomplete last line" in caplog.text
    with JSONLWriter(path) as w:  # the partial line is removed before appending
        w.write({"iteration": 2})
    assert [r["iteration"] for r in read_jsonl(path)] == [1, 2]
    with open(path, "a") as f:
        f.write("not json\n")
    with pytest.raises(ValueError, match=r"m\.json:3: not valid JSON"):
        read_jsonl(path)


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_metrics_writes_valid_pngs(tmp_path):
    import matplotlib.image

    path = str(tmp_path / "metrics.json")
    _run(path, range(1, 31)).close()
    out = str(tmp_path / "plots")
    paths = plot_metrics(path, out)
    names = [os.path.basename(p) for p in paths]
    assert names == ["loss.png", "lr.png", "eval_video_classification_top1.png",
                     "eval_video_classification_top5.png"]
    for p in paths:
        assert _is_png(p)
        img = matplotlib.image.imread(p)
        assert img.shape[:2] == (400, 640)
    assert sorted(os.listdir(out)) == sorted(names)  # no temporary files left
    assert plot_metrics(path, out) == paths  # re-plotting replaces the files


def test_tensorboard_writer_and_missing_package(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = TensorBoardWriter(str(tmp_path / "tb"))
    tb.write(_train(10))
    tb.write(_eval(10))
    tb.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss", "lr", "eval/video_classification/top1"} <= tags and "iteration" not in tags
    (ev,) = acc.Scalars("eval/video_classification/top1")
    assert ev.step == 10 and ev.value == 5.0

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        TensorBoardWriter(str(tmp_path / "tb2"))
    off = TensorBoardWriter(str(tmp_path / "tb2"), enabled=False)
    off.write(_train(1))
    off.close()
    assert not os.path.exists(tmp_path / "tb2")


def test_value_and_eta_formatting():
    assert format_eta(465) == "0:07:45"
    assert format_eta(90061) == "1 day, 1:01:01"
    assert format_eta(None) == "?"
    assert [format_value(v) for v in (1.23, 1.2e-4, 0.5, 3e6, 0.0, 7, torch.tensor(2.5))] == [
        "1.23", "1.2e-4", "0.5", "3e+6", "0", "7", "2.5"]


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_lines_eta_skips_startup_iterations():
    clock, stream = _Clock(), io.StringIO()
    bar = ProgressBar(1000, desc="", stream=stream, log_period=20, clock=clock)
    for it in range(1, 121):
        clock.t += 10.0 if it <= 2 else 0.5  # slow start-up must not count
        bar.update(it, epoch=0, loss=1.23, lr=1.2e-4)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6  # iterations 20, 40, ..., 120
    assert lines[-1] == "[epoch 0] it 120/1000 12% | loss 1.23 | lr 1.2e-4 | 0.5 s/it | ETA 0:07:20"
    assert bar.seconds_per_iter == 0.5


def test_progress_resume_rate_limit_and_final_line():
    clock, stream = _Clock(), io.StringIO()
    bar = ProgressBar(100, start_iter=50, desc="run", stream=stream, log_period=5,
                      min_interval_s=3.0, skip_iters=1, clock=clock)
    assert not bar.update(51)  # right after resume: no line, no timing
    for it in range(52, 101):
        clock.t += 1.0
        bar.update(it, loss=0.1)
    lines = stream.getvalue().splitlines()
    its = [int(line.split(" it ")[1].split("/")[0]) for line in lines]
    assert its == list(range(55, 101, 5))  # every 5 iterations (>= 3 s apart), incl. the last
    assert lines[-1] == "run it 100/100 100% | loss 0.1 | 1 s/it | ETA 0:00:00"
    clock2, s2 = _Clock(), io.StringIO()
    slow = ProgressBar(10, stream=s2, log_period=1, min_interval_s=2.5, clock=clock2)
    for it in range(1, 11):
        clock2.t += 1.0
        slow.update(it)
    its = [ln.split(" ")[1] for ln in s2.getvalue().splitlines()]
    assert its == ["1/10", "4/10", "7/10", "10/10"]
    with pytest.raises(ValueError, match="start_iter"):
        ProgressBar(10, start_iter=11)


def test_progress_tqdm_mode_on_tty_like_streams():
    stream = io.StringIO()
    with ProgressBar(50, stream=stream, use_tqdm=True) as bar:
        bar.update(10, epoch=1, loss=0.25)
    text = stream.getvalue()
    assert "10/50" in text and "epoch 1 | loss 0.25" in text
