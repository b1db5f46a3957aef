"""Helpers shared by the engine tests (importable: tests/engine/conftest.py puts this folder on
``sys.path``): paths of the toy task and of tools/train_net.py, metrics records, the
comparison of two run folders, and a tiny regression loop for direct TrainLoop / hook tests."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from mvit_tasks.checkpoint.io import load_checkpoint_file
from mvit_tasks.engine.train_loop import TrainLoop

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOL = os.path.join(ROOT, "tools", "train_net.py")
TASK = "toy_task:ToyTask"


def load_train_net() -> Any:
    """The module behind tools/train_net.py (``mvit_tasks.cli.train_net``)."""
    from mvit_tasks.cli import train_net

    return train_net


def read_records(path: Any) -> List[Dict[str, Any]]:
    """The records of a metrics.jsonl file."""
    with open(path) as f:
        return [json.loads(line) for line in f]


def without_times(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Records without their wall-clock field (the only one two equal runs differ in)."""
    return [{k: v for k, v in r.items() if k != "time_per_iter"} for r in records]


def assert_same_run(expected: Any, actual: Any) -> None:
    """Two run folders hold the same outputs: checkpoint files (weights bit for bit, position,
    best), evaluation results, final report (but its time), metrics, and no temporary files."""
    ck_e, ck_a = os.path.join(expected, "checkpoints"), os.path.join(actual, "checkpoints")
    files = sorted(os.listdir(ck_e))
    assert sorted(os.listdir(ck_a)) == files, f"checkpoints {sorted(os.listdir(ck_a))} != {files}"
    for name in os.listdir(ck_e):
        a = load_checkpoint_file(os.path.join(ck_e, name))
        b = load_checkpoint_file(os.path.join(ck_a, name))
        pos = [(c["iteration"], c["epoch"], c["best"]) for c in (a, b)]
        assert pos[0] == pos[1], f"{name}: (iteration, epoch, best) {pos[1]} != {pos[0]}"
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), f"{name}: weights {key}"
    re_, ra = (json.load(open(os.path.join(d, "final_report.json"))) for d in (expected, actual))
    for key in ("results", "best", "iterations", "epochs", "skipped_train", "train_samples_seen"):
        assert ra[key] == re_[key], f"final_report.json {key}: {ra[key]} != {re_[key]}"
    evals = sorted(os.listdir(os.path.join(expected, "eval")))
    assert sorted(os.listdir(os.path.join(actual, "eval"))) == evals, "eval/ folders"
    for tag in evals:
        res = [json.load(open(os.path.join(d, "eval", tag, "results.json")))
               for d in (expected, actual)]
        assert res[0] == res[1], f"eval/{tag}/results.json"
    assert without_times(read_records(os.path.join(actual, "metrics.jsonl"))) == \
        without_times(read_records(os.path.join(expected, "metrics.jsonl"))), "metrics.jsonl"
    for folder, _, names in os.walk(actual):
        assert not [f for f in names if f.startswith(".tmp_")], f"temporary files in {folder}"


class Regression(nn.Module):
    """``x`` (B x 3) -> scalar, MSE to ``y`` (B)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        return {"loss_mse": F.mse_loss(self.fc(batch["x"]).squeeze(1), batch["y"])}


def batch(n: int, seed: int = 0, skipped: int = 0) -> Dict[str, Any]:
    """A collated batch of ``n`` random samples plus ``skipped`` unreadable ones."""
    g = torch.Generator().manual_seed(seed)
    out: Dict[str, Any] = {"num_samples": n, "skipped": [(f"f{seed}_{i}", "bad")
                                                        for i in range(skipped)]}
    if n:
        out.update(x=torch.randn(n, 3, generator=g), y=torch.randn(n, generator=g))
    return out


def make_loop(batches: List[Dict[str, Any]], steps_per_epoch: int = 2, accum: int = 1,
              lr: float = 0.1) -> TrainLoop:
    """A TrainLoop of :class:`Regression` with SGD over ``batches`` (from ``start`` in epoch
    0, all of them in later epochs)."""
    torch.manual_seed(0)
    model = Regression()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return TrainLoop(model, lambda epoch, start: iter(batches[start:] if epoch == 0 else batches),
                     opt, steps_per_epoch=steps_per_epoch, accum_steps=accum)
