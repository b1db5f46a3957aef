"""A run survives a kill at any point: ``--resume`` finishes the pending epoch-end work
(evaluation, best, epoch checkpoint, report), a finished run keeps its results, a corrupt
``last.pth`` falls back to the newest valid checkpoint, stale temporaries are removed.

Kills are injected deterministically: the n-th "write event" (a checkpoint file write or an
evaluation) raises :class:`Killed`, a ``BaseException`` nothing in the engine catches, as a
SIGKILL would stop the process between two writes.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any, List

import pytest
import torch

import mvit_tasks.engine.checkpointer as checkpointer_module
import mvit_tasks.engine.hooks as hooks_module
from engine_testing import assert_same_run, read_records, without_times
from toy_task import ToyTask

# 4 steps per epoch, 2 epochs, evaluation + epoch checkpoint every epoch; dropout, sample
# noise and EMA make any lost RNG state or weight visible.
OPTS = ["TOY.TRAIN_SIZE", "32", "SOLVER.MAX_EPOCH", "2", "TRAIN.EVAL_PERIOD", "1",
        "TRAIN.CHECKPOINT_PERIOD", "1", "TOY.DROPOUT", "0.3", "TOY.AUG_NOISE", "0.2",
        "TRAIN.EMA.ENABLE", "True", "TRAIN.EMA.DECAY", "0.5", "LOG_PERIOD", "1",
        "TENSORBOARD.ENABLE", "False"]
SCHEDULES = {
    "epochs": [],
    # last.pth also in the middle of each epoch; stops inside epoch 2 (final evaluation)
    "mid_epoch_stop": ["TRAIN.MAX_ITERS", "6", "TRAIN.CHECKPOINT_ITER_PERIOD", "3"],
}


class Killed(BaseException):
    """Stands for SIGKILL."""


class KillSwitch:
    """Counts write events (checkpoint files, evaluations, the final report) and raises at the
    ``at``-th one."""

    def __init__(self, monkeypatch: Any) -> None:
        self.at, self.events, self.leave_tmp = 0, [], False
        real_save = checkpointer_module.save_checkpoint
        real_evaluator = ToyTask.build_evaluator
        real_write_text = hooks_module.atomic_write_text

        def save(obj: Any, path: str) -> None:
            self._tick(f"write {os.path.basename(path)}", os.path.dirname(path))
            real_save(obj, path)

        def write_text(path: str, text: str) -> None:
            self._tick(f"write {os.path.basename(path)}")
            real_write_text(path, text)

        def build_evaluator(task: Any, split: str) -> Any:
            self._tick(f"evaluate {split}")
            return real_evaluator(task, split)

        monkeypatch.setattr(checkpointer_module, "save_checkpoint", save)
        monkeypatch.setattr(ToyTask, "build_evaluator", build_evaluator)
        monkeypatch.setattr(hooks_module, "atomic_write_text", write_text)

    def _tick(self, what: str, folder: str = "") -> None:
        self.events.append(what)
        if len(self.events) == self.at:
            if self.leave_tmp and folder:  # killed inside the write: its temporary stays
                open(os.path.join(folder, ".tmp_killed.pth"), "wb").close()
            raise Killed(what)

    def arm(self, at: int, leave_tmp: bool = False) -> None:
        self.at, self.events, self.leave_tmp = at, [], leave_tmp


@pytest.fixture()
def kill(monkeypatch) -> KillSwitch:
    return KillSwitch(monkeypatch)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_a_kill_at_any_write_is_recovered_by_resume(run, kill, tmp_path, schedule):
    """Every kill point (and a second kill during the recovery) ends, after --resume, in the
    outputs of the uninterrupted run: files, weights, best, results, report, metrics."""
    opts = [*OPTS, *SCHEDULES[schedule]]
    ref = tmp_path / "ref"
    run(ref, *opts)
    events: List[str] = list(kill.events)
    assert events[-1] == "write final_report.json" and "evaluate val" in events
    for n in range(1, len(events) + 1):
        out = tmp_path / f"kill{n}"
        kill.arm(n, leave_tmp=n % 2 == 0)
        with pytest.raises(Killed):
            run(out, *opts)
        if (out / "checkpoints" / "last.pth").exists():
            kill.arm(1)  # killed again at the first write of the recovery
            with pytest.raises(Killed):
                run(out, *opts, flags=["--resume"])
            kill.arm(0)
            run(out, *opts, flags=["--resume"])
        else:  # killed before the first checkpoint: start again
            kill.arm(0)
            run(out, *opts)
        try:
            assert_same_run(ref, out)
        except AssertionError as e:
            raise AssertionError(f"killed at {events[n - 1]!r} (write event {n}): {e}") from e


def test_resuming_a_finished_run_keeps_its_results(run, tmp_path, caplog):
    first = run(tmp_path, *OPTS)
    report = json.loads((tmp_path / "final_report.json").read_text())
    assert report["results"]["toy"]["num_samples"] == 21
    records = read_records(tmp_path / "metrics.jsonl")
    for how in (dict(flags=["--resume"]), dict(extra=["TRAIN.AUTO_RESUME", "True"])):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            again = run(tmp_path, *OPTS, *how.get("extra", []), flags=how.get("flags", ()))
        assert "already finished" in caplog.text
        assert again["results"] == first["results"] and again["best"] == first["best"]
        kept = json.loads((tmp_path / "final_report.json").read_text())
        assert kept["results"] == report["results"] and kept["finished"] is True
        assert without_times(read_records(tmp_path / "metrics.jsonl")) == without_times(records)


def test_a_corrupt_last_checkpoint_falls_back_to_the_newest_valid_one(run, kill, tmp_path,
                                                                      caplog):
    """last.pth cut short (a disk that filled up, a copy that stopped): --resume warns, naming
    both files, continues from the newest checkpoint that loads and ends as the uninterrupted
    run; a 0-byte temporary left by a kill inside a write is removed."""
    opts = [*OPTS, "SOLVER.MAX_EPOCH", "3"]
    run(tmp_path / "ref", *opts)
    out = tmp_path / "run"
    run(out, *opts, "TRAIN.MAX_ITERS", "8")  # stops at the end of epoch 2 (of 3)
    last = out / "checkpoints" / "last.pth"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    (out / "checkpoints" / ".tmp_abcd1234.pth").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        run(out, *opts, flags=["--resume"])
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
               and "last.pth" in r.getMessage()]
    assert warning and any(name in warning[0] for name in ("epoch_0002.pth", "best.pth")), \
        caplog.text
    assert_same_run(tmp_path / "ref", out)


def test_no_valid_checkpoint_at_all_is_an_error(run, tmp_path):
    run(tmp_path, *OPTS, "SOLVER.MAX_EPOCH", "1", "TRAIN.CHECKPOINT_PERIOD", "0")
    for name in os.listdir(tmp_path / "checkpoints"):
        (tmp_path / "checkpoints" / name).write_bytes(b"garbage")
    with pytest.raises(Exception, match="last.pth"):
        run(tmp_path, *OPTS, flags=["--resume"])


def test_stale_temporaries_are_removed_when_a_run_starts(run, tmp_path):
    (tmp_path / "checkpoints").mkdir(parents=True)
    stale = [tmp_path / "checkpoints" / ".tmp_x1.pth", tmp_path / ".tmp_y2.jsonl"]
    for p in stale:
        p.write_bytes(b"")
    run(tmp_path, *OPTS, "SOLVER.MAX_EPOCH", "1")
    assert not any(p.exists() for p in stale)
    assert torch.is_tensor(torch.load(tmp_path / "checkpoints" / "last.pth")["model"][
        "net.0.weight"])
    shutil.rmtree(tmp_path / "checkpoints")
