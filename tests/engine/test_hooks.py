"""Each engine hook on its own, on a tiny TrainLoop (tests/engine/engine_testing.py) with the
few trainer services a hook uses faked here; and the order build_hooks gives them."""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
import torch

from engine_testing import batch, make_loop, read_records
from mvit_tasks.config import get_cfg
from mvit_tasks.engine import hooks as H
from mvit_tasks.engine.defaults import add_engine_config, build_hooks
from mvit_tasks.engine.ema import ModelEMA
from mvit_tasks.engine.evaluation import TooManyFailuresError
from mvit_tasks.engine.lr_scheduler import LRScheduler
from mvit_tasks.engine.train_loop import TrainLoop


def loop_with_run_state(batches: List[Dict[str, Any]], **kw: Any) -> TrainLoop:
    """A TrainLoop with what the Trainer adds for the hooks: results, best, checkpoint and
    evaluation services (recorded in ``loop.calls``)."""
    loop = make_loop(batches, **kw)
    loop.best = loop.best_iteration = loop.results_iteration = None
    loop.results, loop.eval_skipped, loop.calls = {}, [], []
    loop.scores = [50.0]
    loop.train_seconds = lambda: 1.5

    def test(tag: str) -> Dict[str, Dict[str, float]]:
        loop.calls.append(("test", tag, list(loop.pending)))
        return {"toy": {"top1": loop.scores.pop(0) if loop.scores else 0.0}}

    loop.test = test
    loop.commit = lambda: loop.calls.append(("commit", loop.iteration, list(loop.pending)))
    loop.save_checkpoint = lambda names: loop.calls.append(("save", names, list(loop.pending)))
    return loop


def test_lr_schedule_sets_the_lr_of_the_fractional_epoch_before_each_step():
    loop = make_loop([batch(2, i) for i in range(4)], steps_per_epoch=4)
    sched = LRScheduler(loop.optimizer, policy="cosine", base_lr=1.0, max_epoch=1,
                        cosine_end_lr=0.0)
    seen = []
    loop.register_hooks([H.LRSchedule(sched),
                         SimpleNamespace(after_backward=lambda t: seen.append(
                             t.optimizer.param_groups[0]["lr"]))])
    loop.train(max_iter=3)
    assert seen == pytest.approx([sched.lr_at(e) for e in (0.0, 0.25, 0.5)])


def test_grad_clip_bounds_the_global_norm_before_the_update():
    loop = make_loop([batch(8)], lr=0.0)
    norms = []
    loop.register_hooks([H.GradClip(1e-3), SimpleNamespace(after_backward=lambda t: norms.append(
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in t.model.parameters()]))))])
    loop.train(max_iter=1)
    assert float(norms[0]) == pytest.approx(1e-3, rel=1e-4)


def test_ema_update_follows_the_weights_after_each_step():
    loop = make_loop([batch(2, i) for i in range(2)])
    ema = ModelEMA(loop.model, decay=0.5)
    w0 = {k: v.clone() for k, v in loop.model.state_dict().items()}
    loop.register_hooks([H.EMAUpdate(ema)])
    loop.train(max_iter=1)
    assert ema.num_updates == 1
    for k, v in loop.model.state_dict().items():
        torch.testing.assert_close(ema.shadow[k], 0.5 * w0[k] + 0.5 * v)


def test_metrics_writer_logs_steps_epochs_and_records_its_count(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"iteration": 9, "old": 1}\n')  # an earlier run
    loop = make_loop([batch(2, i) for i in range(2)])
    writer = H.MetricsWriter(str(tmp_path), log_period=2, tensorboard=False)
    loop.register_hooks([writer])
    loop.train(max_iter=3)
    recs = read_records(tmp_path / "metrics.jsonl")
    assert [(r["iteration"], sorted(r)) for r in recs] == [
        (2, ["epoch", "iteration", "loss", "loss_mse", "lr", "time_per_iter"]),
        (2, ["epoch", "iteration", "skipped_total"]),
        (3, ["epoch", "iteration", "loss", "loss_mse", "lr", "time_per_iter"])]
    assert recs[0]["epoch"] == 1.0 and recs[2]["epoch"] == 1.5
    assert writer.state_dict() == {"records": 3}
    writer.close()
    # resume from a checkpoint taken when the file held 2 records: the third goes
    resumed = H.MetricsWriter(str(tmp_path), log_period=2, tensorboard=False)
    resumed.load_state_dict({"records": 2})
    resumed.before_train(SimpleNamespace(writers=[], iteration=2, max_iter=4))
    assert len(read_records(tmp_path / "metrics.jsonl")) == 2
    resumed.close()


def test_evaluation_commits_first_then_evaluates_and_keeps_the_best():
    loop = loop_with_run_state([batch(2, i) for i in range(2)], steps_per_epoch=1)
    loop.scores = [50.0, 40.0, float("nan"), 60.0]
    evaluation = H.Evaluation(period=1, metric="top1")
    logged = []
    loop.writers.append(SimpleNamespace(write=logged.append))
    loop.register_hooks([evaluation, H.Checkpoints(epoch_period=0)])
    loop.train(max_iter=4)
    assert [c for c in loop.calls if c[0] == "commit"][0] == \
        ("commit", 1, ["Evaluation", "Checkpoints"])  # the rest of the epoch is pending
    assert [c[1] for c in loop.calls if c[0] == "test"] == [f"epoch_{e:04d}" for e in (1, 2, 3, 4)]
    assert (loop.best, loop.best_iteration) == (60.0, 4)  # 40 is worse, nan is ignored
    assert loop.results == {"toy": {"top1": 60.0}} and loop.results_iteration == 4
    assert [r["eval"]["toy"]["top1"] for r in logged][:2] == [50.0, 40.0]
    saves = [c[1] for c in loop.calls if c[0] == "save"]
    assert saves == [["best", "last"], ["last"], ["last"], ["best", "last"]]


def test_evaluation_period_and_final_evaluation_inside_an_epoch():
    loop = loop_with_run_state([batch(2, i) for i in range(4)], steps_per_epoch=4)
    loop.register_hooks([H.Evaluation(period=0, metric="top1")])
    loop.train(max_iter=3)  # stops inside epoch 1: one "final" evaluation
    assert [c[1] for c in loop.calls if c[0] == "test"] == ["final"]
    H.Evaluation(period=0, metric="top1").after_train(loop)  # resumed, finished: not again
    assert [c[1] for c in loop.calls if c[0] == "test"] == ["final"]


def test_checkpoints_every_n_steps_inside_epochs_and_at_epoch_ends():
    loop = loop_with_run_state([batch(2, i) for i in range(3)], steps_per_epoch=3)
    loop.register_hooks([H.Checkpoints(epoch_period=2, iter_period=2)])
    loop.best_iteration = 6
    loop.train(max_iter=7)
    saves = [(c[1], c[2]) for c in loop.calls if c[0] == "save"]
    # iteration 2 (inside epoch 1), 3 (epoch end), 4 (inside), 6 (epoch 2 end: epoch file,
    # best), nothing pending in any of them
    assert saves == [(["last"], []), (["last"], []), (["last"], []),
                     (["epoch_0002", "best", "last"], [])]
    assert loop.calls[-1] == ("commit", 7, [])  # stopped inside epoch 3


def test_plots_are_drawn_from_the_metrics(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"iteration": i, "loss": 1.0 / i, "lr": 0.1}) + "\n"
                for i in range(1, 4)))
    H.Plots(str(tmp_path)).after_epoch(None)
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"loss.png", "lr.png"}


def test_final_report_is_built_from_the_run_state(tmp_path):
    loop = loop_with_run_state([batch(2, 0, skipped=1), batch(2, 1)])
    loop.register_hooks([H.FinalReport(str(tmp_path), "toy")])
    loop.results, loop.best, loop.eval_skipped = {"toy": {"top1": 70.0}}, 70.0, [("v", "bad")]
    loop.train(max_iter=2)
    report = json.loads((tmp_path / "final_report.json").read_text())
    assert report == loop.report
    assert report["finished"] is True and report["results"] == {"toy": {"top1": 70.0}}
    assert (report["iterations"], report["epochs"], report["train_seconds"]) == (2, 1.0, 1.5)
    assert report["skipped_train"] == [{"path": "f0_0", "reason": "bad", "count": 1}]
    assert (report["train_samples_seen"], report["skipped_train_count"]) == (5, 1)
    assert report["skipped_eval"] == [{"path": "v", "reason": "bad", "count": 1}]


def test_failure_budget_stops_once_enough_samples_were_tried(tmp_path):
    loop = make_loop([batch(4, 0, skipped=4)] * 4, steps_per_epoch=4)  # 50 % unreadable
    loop.register_hooks([H.FailureBudget(0.4, min_seen=20)])
    with pytest.raises(TooManyFailuresError, match=r"12 of 24 training samples[\s\S]*f0_0: bad"):
        loop.train(max_iter=4)
    assert loop.iteration == 2  # raised in after_backward of the third step, before its update
    small = make_loop([batch(4, 0, skipped=1)], steps_per_epoch=1)
    small.register_hooks([SimpleNamespace(after_train=lambda t: setattr(t, "reported", True)),
                          H.FailureBudget(0.1, min_seen=20)])
    with pytest.raises(TooManyFailuresError, match="1 of 5 training samples"):
        small.train(max_iter=1)  # under min_seen while training; the final check sees it
    assert small.reported  # after the report (an earlier hook's after_train)


def test_build_hooks_order_from_the_config():
    cfg = get_cfg()
    add_engine_config(cfg)
    cfg.SOLVER.CLIP_GRAD_L2NORM, cfg.TRAIN.EMA.ENABLE = 1.0, True
    loop = make_loop([batch(2)])
    trainer = SimpleNamespace(cfg=cfg, ema=ModelEMA(loop.model), scheduler=None,
                              task=SimpleNamespace(default_metric="top1", name="toy"))
    extra = SimpleNamespace()
    names = [type(h).__name__ for h in build_hooks(trainer, [extra])]
    assert names == ["LRSchedule", "GradClip", "EMAUpdate", "MetricsWriter", "Evaluation",
                     "Plots", "SimpleNamespace", "Checkpoints", "FinalReport", "FailureBudget"]
    cfg.SOLVER.CLIP_GRAD_L2NORM, cfg.TEST.ENABLE = 0.0, False
    trainer.ema = None
    assert [type(h).__name__ for h in build_hooks(trainer)] == [
        "LRSchedule", "MetricsWriter", "Plots", "Checkpoints", "FinalReport", "FailureBudget"]
