"""Checkpoint files that cannot or should not be loaded get plain, specific reasons."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from mvit_tasks.checkpoint.io import (CheckpointFormatError, UnsafeCheckpointError,
                                      load_checkpoint_file)


class _CallsGetpid:
    """Pickles as a call of ``os.getpid`` (harmless, but a global torch's safe loader blocks),
    standing in for a file whose pickle calls ``os.system``."""

    def __reduce__(self):
        return (os.getpid, ())


def test_a_pickle_that_calls_a_function_names_it_and_the_opt_in(tmp_path, caplog):
    path = str(tmp_path / "calls.pth")
    torch.save({"model": {"w": torch.ones(2)}, "extra": _CallsGetpid()}, path)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_checkpoint_file(path)
    msg = str(e.value)
    assert "posix.getpid" in msg and "MODEL.WEIGHTS_UNSAFE_PICKLE True" in msg
    assert "--unsafe-pickle" in msg and "corrupt" not in msg
    with caplog.at_level("WARNING"):
        obj = load_checkpoint_file(path, allow_unsafe=True)  # the opt-in really loads it
    assert obj["extra"] == os.getpid() and torch.equal(obj["model"]["w"], torch.ones(2))
    assert "full unpickler" in caplog.text and "posix.getpid" in caplog.text


def test_pkl_with_a_call_is_refused_by_name(tmp_path):
    path = tmp_path / "zoo.pkl"
    path.write_bytes(pickle.dumps({"model": {}, "x": _CallsGetpid()}))
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.getpid"):
        load_checkpoint_file(str(path))


@pytest.mark.parametrize("make,reason", [
    (lambda good: b"", r"empty file \(0 bytes\)"),
    (lambda good: b"\x00\x11garbage that is no checkpoint" * 10,
     r"not a torch or pickle file \(starts with bytes b'\\x00\\x11ga'\)"),
    (lambda good: good[: len(good) // 2], r"truncated at byte \d+: a torch zip checkpoint"),
])
def test_broken_files_get_a_plain_reason(tmp_path, make, reason):
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.arange(4000.0)}}, str(good))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(make(good.read_bytes()))
    with pytest.raises(CheckpointFormatError, match=reason):
        load_checkpoint_file(str(bad))
