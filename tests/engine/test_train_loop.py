"""TrainLoop on its own (no config, no task): one step, hook order, accumulation, empty and
unreadable micro-batches, pending epoch-end work, state round trip."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest
import torch

from engine_testing import Regression, batch, make_loop
from mvit_tasks.engine.train_loop import EVENTS, ZeroLossWhenEmpty, hook_keys
from mvit_tasks.tasks.base import HookBase


def test_one_step_is_one_sgd_update():
    b = batch(4)
    loop = make_loop([b, batch(4, 1)])
    w0 = {k: v.clone() for k, v in loop.model.state_dict().items()}
    ref = Regression()
    ref.load_state_dict(w0)
    expected = ref(b)["loss_mse"]
    expected.backward()
    loop.train(max_iter=1)
    assert (loop.iteration, loop.epoch, loop.batch_in_epoch) == (1, 0, 1)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(loop.model.state_dict()[name], w0[name] - 0.1 * p.grad)
    assert loop.last_step.losses == {"loss_mse": pytest.approx(float(expected.detach()))}
    assert all(p.grad is None for p in loop.model.parameters())  # zeroed after the step


class Recorder(HookBase):
    """Records ``(event, iteration, epoch)`` at every event."""

    def __init__(self) -> None:
        self.calls: List[tuple] = []

    def after_backward(self, t: Any) -> None:
        self.calls.append(("after_backward", t.iteration, t.epoch))
        assert any(p.grad is not None for p in t.model.parameters())  # before the update


for _event in set(EVENTS) - {"after_backward"}:
    setattr(Recorder, _event, lambda self, t, _e=_event: self.calls.append(
        (_e, t.iteration, t.epoch)))


def test_hooks_are_called_in_order_at_every_event():
    loop = make_loop([batch(2, i) for i in range(2)])
    rec = Recorder()
    loop.register_hooks([rec, None])
    loop.train(max_iter=3)
    step = lambda i, e: [("before_step", i, e), ("after_backward", i, e),  # noqa: E731
                         ("after_step", i + 1, e)]
    assert rec.calls == [("before_train", 0, 0), *step(0, 0), *step(1, 0),
                         ("after_epoch", 2, 1), *step(2, 1), ("after_train", 3, 1)]


def test_accumulation_averages_micro_batch_means():
    a, b = batch(2, 0), batch(6, 1)
    loop = make_loop([a, b], steps_per_epoch=1, accum=2)
    ref = Regression()
    ref.load_state_dict(loop.model.state_dict())
    ((ref(a)["loss_mse"] + ref(b)["loss_mse"]) / 2).backward()
    w0 = {k: v.clone() for k, v in loop.model.state_dict().items()}
    loop.train(max_iter=1)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(loop.model.state_dict()[name], w0[name] - 0.1 * p.grad)


def test_an_unreadable_micro_batch_is_counted_and_skipped():
    loop = make_loop([batch(0, 0, skipped=3), batch(2, 1, skipped=1)], steps_per_epoch=2)
    w0 = {k: v.clone() for k, v in loop.model.state_dict().items()}
    loop.train(max_iter=1)
    assert all(torch.equal(w0[k], v) for k, v in loop.model.state_dict().items())
    assert (loop.last_step.samples, loop.last_step.skipped, loop.last_step.losses) == (0, 3, {})
    loop.train(max_iter=2)
    assert (loop.seen, loop.num_skipped) == (6, 4)
    assert loop.skipped == [("f0_0", "bad"), ("f0_1", "bad"), ("f0_2", "bad"), ("f1_0", "bad")]


def test_a_non_finite_loss_stops_with_the_position():
    b = batch(2)
    b["y"][0] = float("nan")
    with pytest.raises(FloatingPointError, match="iteration 0 \\(epoch 0\\)"):
        make_loop([b]).train(max_iter=1)


def test_the_zero_loss_of_an_empty_rank_reaches_every_parameter():
    model = Regression()
    loss = ZeroLossWhenEmpty(model)(None)["loss_no_samples"]
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    b = batch(2)
    assert torch.equal(ZeroLossWhenEmpty(model)(b)["loss_mse"], model(b)["loss_mse"])


class Killed(BaseException):
    pass


class EpochWork(HookBase):
    def __init__(self, log: List[str], name: str, kill: bool = False) -> None:
        self.log, self.name, self.kill = log, name, kill

    def after_epoch(self, t: Any) -> None:
        if self.kill:
            self.kill = False
            raise Killed
        self.log.append(f"{self.name}@{t.epoch}")


class Saver(EpochWork):
    """Saves the loop's state at its turn (as the Evaluation hook's commit does)."""

    def after_epoch(self, t: Any) -> None:
        super().after_epoch(t)
        self.saved = t.state_dict()


def test_epoch_end_work_left_pending_by_a_kill_runs_first_after_resume():
    log: List[str] = []
    hooks = [EpochWork(log, "a"), Saver(log, "save"), EpochWork(log, "b", kill=True),
             EpochWork(log, "c")]
    loop = make_loop([batch(2, i) for i in range(2)])
    loop.register_hooks(hooks)
    with pytest.raises(Killed):
        loop.train(max_iter=4)
    saved = hooks[1].saved
    assert saved["pending"] == ["Saver", "EpochWork#2", "EpochWork#3"] and saved["epoch"] == 1
    log.clear()
    resumed = make_loop([batch(2, i) for i in range(2)])
    resumed.register_hooks([EpochWork(log, "a"), Saver(log, "save"), EpochWork(log, "b"),
                            EpochWork(log, "c"), Recorder()])
    resumed.load_state_dict(saved)
    resumed.train(max_iter=4)
    assert log == ["save@1", "b@1", "c@1", "a@2", "save@2", "b@2", "c@2"]
    assert resumed.pending == [] and resumed.iteration == 4
    # a pending key this loop has no hook for is dropped
    resumed.load_state_dict({**saved, "pending": ["Gone", "EpochWork#2"]})
    assert resumed.pending == ["EpochWork#2"]


class Counter(HookBase):
    def __init__(self) -> None:
        self.n = 0

    def after_step(self, t: Any) -> None:
        self.n += 1

    def state_dict(self) -> Dict[str, Any]:
        return {"n": self.n}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.n = state["n"]


def test_state_round_trip_keeps_weights_position_counts_and_hook_state():
    loop = make_loop([batch(2, 0, skipped=1), batch(2, 1)])
    loop.register_hooks([Counter(), Recorder()])
    loop.train(max_iter=3)
    state = loop.state_dict()
    assert state["hooks"] == {"Counter": {"n": 3}} and state["skipped"] == [("f0_0", "bad")] * 2
    other = make_loop([batch(2, 0)])
    other.register_hooks([Counter()])
    other.load_state_dict(state)
    assert (other.iteration, other.epoch, other.batch_in_epoch) == (3, 1, 1)
    assert (other.seen, other.num_skipped, other.hooks[0].n) == (8, 2, 3)
    for k, v in loop.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[k], v)
    assert other.optimizer.state_dict() == loop.optimizer.state_dict()


def test_hook_keys_number_repeated_classes():
    assert hook_keys([Counter(), Recorder(), Counter(), Counter()]) == \
        ["Counter", "Recorder", "Counter#2", "Counter#3"]
