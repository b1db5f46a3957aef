"""Plots a practitioner reads (per-iteration loss with its window median, the LR warm-up, no
counters), per-class charts, MetricsWriter's per-iteration file across a resume, and the
self-contained report.html."""
from __future__ import annotations

import base64
import json
import math
import os
import statistics
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from engine_testing import read_records, without_times
from mvit_tasks.engine import hooks as H
from mvit_tasks.engine.events import (
    metric_figures,
    per_class_figure,
    plot_metrics,
    read_iterations,
    window_median,
)
from mvit_tasks.engine.report import build_report, last_eval_dir, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def _lr(it: int, warmup: int = 10, total: int = 60) -> float:
    """Linear warm-up to 1e-3 over ``warmup`` iterations, then cosine to 0."""
    if it <= warmup:
        return 1e-5 + (1e-3 - 1e-5) * it / warmup
    return 0.5e-3 * (1 + math.cos(math.pi * (it - warmup) / (total - warmup)))


def _loss(it: int) -> float:
    return 2.0 / (1 + 0.05 * it) + (0.3 if it % 7 == 0 else 0.0) - (0.2 if it % 5 == 0 else 0.0)


def _line(fig: Any, label: str) -> Any:
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    return lines[0]


def _synthetic(log_period: int = 20, total: int = 60) -> Dict[str, Any]:
    """metrics.jsonl records logged every ``log_period`` iterations (3 per run: the warm-up
    falls between two of them) and the iterations.jsonl series of every iteration."""
    its = list(range(1, total + 1))
    records = [{"iteration": it, "epoch": it / 20, "lr": _lr(it), "loss": _loss(it),
                "loss_cls": _loss(it)} for it in its if it % log_period == 0]
    records += [{"iteration": e * 20, "epoch": float(e), "skipped_total": 0,
                 "eval": {"cls": {"top1": 10.0 * e, "top5": 20.0 * e, "num_views": 90,
                                  "num_det_rows": 5, "num_keyframes": 3, "x_count": 1,
                                  "skipped_videos": 0, "samples": 90, "time": 2.0,
                                  "AP-cat": 5.0}}} for e in (1, 2, 3)]
    iterations = {"lr": (its, [_lr(i) for i in its]), "loss": (its, [_loss(i) for i in its])}
    return {"records": records, "iterations": iterations}


def test_lr_plot_shows_the_warmup_ramp_of_every_iteration():
    data = _synthetic()
    ys = list(_line(metric_figures(data["records"], data["iterations"])["lr.png"],
                    "learning rate").get_ydata())
    peak = ys.index(max(ys))
    assert peak == 9  # iteration 10: the logged records (20, 40, 60) never show the ramp
    assert all(a < b for a, b in zip(ys[:peak], ys[1:peak + 1]))  # increasing ...
    assert all(a >= b for a, b in zip(ys[peak:], ys[peak + 1:]))  # ... then decreasing
    logged = [r["lr"] for r in data["records"] if "lr" in r]
    assert logged == sorted(logged, reverse=True)  # why the per-iteration series is needed


def test_loss_plot_is_each_iteration_faintly_and_its_window_median():
    data = _synthetic()
    fig = metric_figures(data["records"], data["iterations"])["loss.png"]
    raw = _line(fig, "loss, each iteration")
    med = _line(fig, "loss, median of 20")
    values = [_loss(i) for i in range(1, 61)]
    assert list(raw.get_ydata()) == values and raw.get_alpha() < 0.5
    expected = [statistics.median(values[max(0, i - 19):i + 1]) for i in range(60)]
    assert list(med.get_ydata()) == pytest.approx(expected, abs=1e-12)
    assert med.get_linewidth() > raw.get_linewidth()
    assert window_median([3.0, 1.0, 2.0, 10.0], window=3) == [3.0, 2.0, 2.0, 2.0]


def test_counters_and_per_class_values_get_no_plot(tmp_path):
    data = _synthetic()
    names = set(metric_figures(data["records"], data["iterations"]))
    assert names == {"loss.png", "lr.png", "eval_cls_top1.png", "eval_cls_top5.png"}
    fig = metric_figures(data["records"])["eval_cls_top1.png"]
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1.0, 2.0, 3.0]  # x = epoch
    assert list(line.get_ydata()) == [10.0, 20.0, 30.0]


def test_plot_metrics_reads_the_iterations_file_next_to_the_metrics(tmp_path):
    data = _synthetic()
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                    for r in data["records"]))
    its, lrs = data["iterations"]["lr"]
    (tmp_path / "iterations.jsonl").write_text(
        json.dumps({"iteration": 30, "start": 1, "lr": lrs[:30], "loss": [None] * 30}) + "\n"
        + json.dumps({"iteration": 60, "start": 31, "lr": lrs[30:]}) + "\n")
    assert read_iterations(str(tmp_path / "iterations.jsonl"))["lr"] == (its, lrs)
    assert "loss" not in read_iterations(str(tmp_path / "iterations.jsonl")) or \
        read_iterations(str(tmp_path / "iterations.jsonl"))["loss"] == ([], [])
    paths = plot_metrics(str(tmp_path / "metrics.jsonl"), str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in paths] == [
        "loss.png", "lr.png", "eval_cls_top1.png", "eval_cls_top5.png"]
    assert all(open(p, "rb").read(8) == PNG for p in paths)


def test_per_class_chart_is_sorted_with_names_and_values():
    fig = per_class_figure({"walk": 40.0, "run": 90.5, "jump": None, "sit": 12.25,
                            "wave": float("nan")}, "AP per class")
    ax = fig.axes[0]
    assert [b.get_width() for b in ax.patches] == [90.5, 40.0, 12.25]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["run", "walk", "sit"]
    assert {"90.5", "40.0", "12.2"} <= {t.get_text() for t in ax.texts}
    assert any("jump" in t.get_text() and "wave" in t.get_text() for t in fig.texts)


class FakeTrainer(SimpleNamespace):
    """What MetricsWriter reads of a trainer, driven by hand (``step(it)``)."""

    def __init__(self, max_iter: int, steps_per_epoch: int = 10) -> None:
        super().__init__(writers=[], iteration=0, max_iter=max_iter, epoch=0, num_skipped=0,
                         optimizer=SimpleNamespace(param_groups=[{"lr": 0.0}]),
                         last_step=SimpleNamespace(losses={}), spe=steps_per_epoch)

    def epoch_float(self) -> float:
        return self.iteration / self.spe

    def log(self, record: Dict[str, Any]) -> None:
        for w in self.writers:
            w.write(record)

    def step(self, writer: H.MetricsWriter, it: int) -> None:
        self.iteration, self.epoch = it, it // self.spe
        self.optimizer.param_groups[0]["lr"] = _lr(it, total=self.max_iter)
        self.last_step.losses = {"loss_a": _loss(it), "loss_b": 0.1 * _loss(it + 3)}
        writer.after_step(self)
        if it % self.spe == 0:
            writer.after_epoch(self)


def _train(out: str, its: List[int], max_iter: int, state: Any = None) -> Any:
    """A MetricsWriter (resumed from ``state``) over iterations ``its``; (writer, trainer)."""
    writer = H.MetricsWriter(out, log_period=7, tensorboard=False)
    trainer = FakeTrainer(max_iter)
    trainer.iteration = its[0] - 1
    if state is not None:
        writer.load_state_dict(state)
    writer.before_train(trainer)
    for it in its:
        trainer.step(writer, it)
    return writer, trainer


def test_metrics_writer_logs_window_medians_and_every_iteration(tmp_path):
    writer, _ = _train(str(tmp_path), list(range(1, 31)), max_iter=30)
    writer.close()
    series = read_iterations(str(tmp_path / "iterations.jsonl"))
    assert series["lr"][0] == list(range(1, 31))  # every iteration, in order
    assert series["lr"][1] == pytest.approx([_lr(i, total=30) for i in range(1, 31)], rel=1e-5)
    loss = series["loss"][1]
    assert loss == pytest.approx([_loss(i) + 0.1 * _loss(i + 3) for i in range(1, 31)], rel=1e-5)
    train = [r for r in read_records(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["iteration"] for r in train] == [7, 14, 21, 28, 30]
    for r in train:  # detectron2's metrics.json: the median of the last 20 iterations
        it = r["iteration"]
        assert r["loss"] == statistics.median(loss[max(0, it - 20):it])
        assert r["loss_b"] == statistics.median(series["loss_b"][1][max(0, it - 20):it])
        assert r["lr"] == _lr(it, total=30)  # the step's own LR
    size = os.path.getsize(tmp_path / "iterations.jsonl")
    assert size < 100 * 30  # a few numbers per iteration, one line per log period


def test_a_resumed_writer_continues_both_files_exactly(tmp_path):
    full = tmp_path / "full"
    _train(str(full), list(range(1, 41)), max_iter=40)[0].close()
    part = tmp_path / "part"
    writer, trainer = _train(str(part), list(range(1, 13)), max_iter=40)
    state = writer.state_dict()  # a checkpoint inside a log period
    assert [it for it, _ in state["iterations_pending"]] == [11, 12]  # epoch 1 ended at 10
    for it in (13, 14, 15):  # the process went on (logging at 14), then was killed
        trainer.step(writer, it)
    writer.close()
    _train(str(part), list(range(13, 41)), max_iter=40, state=state)[0].close()
    assert (part / "iterations.jsonl").read_text() == (full / "iterations.jsonl").read_text()
    assert without_times(read_records(part / "metrics.jsonl")) == \
        without_times(read_records(full / "metrics.jsonl"))


def _run_folder(tmp_path: Any) -> str:
    """A run folder as a training run leaves it (config, metrics, plots, report, charts)."""
    out = str(tmp_path / "run")
    data = _synthetic()
    os.makedirs(out)
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in data["records"])
    plot_metrics(os.path.join(out, "metrics.jsonl"), os.path.join(out, "plots"))
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write("SOLVER:\n  BASE_LR: 0.000123\nOUTPUT_DIR: <run & co>\n")
    for tag, top1 in (("epoch_0001", 10.0), ("epoch_0002", 20.0)):
        os.makedirs(os.path.join(out, "eval", tag))
        with open(os.path.join(out, "eval", tag, "results.json"), "w") as f:
            json.dump({"results": {"cls": {"top1": top1}}, "skipped": [["v/bad.mp4", "eof"]],
                       "samples": 9, "input_warnings": ["gt.csv:3: 1 row outside"]}, f)
        per_class_figure({"a": top1, "b": 5.0}, tag).savefig(
            os.path.join(out, "eval", tag, "per_class.png"))
        os.utime(os.path.join(out, "eval", tag, "results.json"), (1e9 + top1, 1e9 + top1))
    return out


def test_report_html_holds_config_metrics_images_and_skipped_files(tmp_path):
    out = _run_folder(tmp_path)
    assert "(no final_report.json)" in build_report(out)  # e.g. --eval-only: results.json
    report = {"task": "cls", "iterations": 60, "epochs": 3.0, "finished": True,
              "results": {"cls": {"top1": 55.5, "num_views": 90, "AP-cat": 12.5}},
              "best": 55.5, "train_seconds": 75.0, "train_samples_seen": 600,
              "skipped_train_count": 2,
              "skipped_train": [{"path": "train/broken.mp4", "reason": "moov atom not found",
                                 "count": 2}],
              "skipped_eval": [{"path": "val/<odd>.mp4", "reason": "eof", "count": 1}]}
    with open(os.path.join(out, "final_report.json"), "w") as f:
        json.dump(report, f)
    assert last_eval_dir(out).endswith("epoch_0002")
    path = write_report(out)
    assert path == os.path.join(out, "report.html")
    text = open(path, encoding="utf-8").read()
    assert "BASE_LR: 0.000123" in text and "OUTPUT_DIR: &lt;run &amp; co&gt;" in text  # config
    assert "<td>top1</td><td class=\"num\">55.5</td>" in text  # final metrics
    assert "<td>AP-cat</td>" in text and "num_views" in text
    assert "train/broken.mp4" in text and "moov atom not found" in text  # skipped files
    assert "val/&lt;odd&gt;.mp4" in text
    assert "Last evaluation: epoch_0002" in text and "gt.csv:3: 1 row outside" in text
    images = text.split('src="data:image/png;base64,')[1:]
    assert len(images) == 4 + 1  # loss, lr, top1, top5 + the last evaluation's chart
    for img in images:
        assert base64.b64decode(img.split('"', 1)[0])[:8] == PNG
    plots = [text.index(f'alt="plots/{n}"') for n in ("loss.png", "lr.png")]
    assert plots == sorted(plots)
    assert "<script" not in text and "http" not in text  # self-contained


def test_plots_hook_writes_the_report_when_the_trainer_closes_its_writers(tmp_path):
    out = _run_folder(tmp_path)
    hook = H.Plots(out)
    trainer = SimpleNamespace(writers=[])
    hook.before_train(trainer)
    assert trainer.writers == [hook]
    hook.after_train(trainer)
    assert not os.path.exists(os.path.join(out, "report.html"))  # the final report comes later
    with open(os.path.join(out, "final_report.json"), "w") as f:
        json.dump({"task": "cls", "finished": True, "results": {"cls": {"top1": 77.25}}}, f)
    for w in trainer.writers:
        w.close()
    assert "77.25" in open(os.path.join(out, "report.html")).read()


def test_a_training_run_ends_with_its_report(run, tmp_path):
    report = run(tmp_path, "SOLVER.MAX_EPOCH", "2", "TOY.BAD_INDICES", "[3]")
    text = (tmp_path / "report.html").read_text()
    assert f"{report['results']['toy']['top1']:.4g}" in text
    assert "toy/0003.mp4" in text and "TOY:" in text
    assert text.count('alt="plots/') >= 3 and "finished" in text
    lrs = read_iterations(str(tmp_path / "iterations.jsonl"))["lr"]
    assert lrs[0] == list(range(1, 17))
