"""Atomic writes: a crash mid-write leaves the previous file intact and no temporary behind."""
from __future__ import annotations

import os

import pytest
import torch

from mvit_tasks.engine.checkpointer import Checkpointer
from mvit_tasks.utils.fileio import atomic_write, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "labels.txt"
    atomic_write_text(str(path), "old\n")

    def crash(f):
        f.write(b"half of the new con")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(path), crash)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["labels.txt"]
    atomic_write_text(str(path), "new\n")
    assert path.read_text() == "new\n"


def test_a_crash_while_saving_never_breaks_last_checkpoint(tmp_path, monkeypatch):
    ck = Checkpointer(str(tmp_path))
    ck.save(["last"], {"model": {"w": torch.ones(2)}, "iteration": 1})

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"\x80\x02garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save(["last"], {"model": {"w": torch.zeros(2)}, "iteration": 2})
    monkeypatch.undo()
    state = ck.load()
    assert state["iteration"] == 1 and torch.equal(state["model"]["w"], torch.ones(2))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["last.pth"]
