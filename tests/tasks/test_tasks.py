"""Task lookup (registry, built-in projects, module paths) and the "add a task" promise: a new
project written outside the repository trains through tools/train_net.py unchanged."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mvit_tasks.tasks import Task, list_tasks, resolve_task

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "train_net.py")


def test_builtin_tasks_are_found():
    names = list_tasks()
    for name in ("classification", "kinetics", "ssv2", "imagenet"):
        assert name in names
        assert issubclass(resolve_task(name), Task)


def test_unknown_task_names_the_registered_ones():
    with pytest.raises(KeyError, match="kinetics"):
        resolve_task("no_such_task")


def test_help_lists_registered_tasks():
    proc = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert "registered tasks:" in proc.stdout and "kinetics" in proc.stdout


# A complete third-party project: its own config keys, head, evaluator and task.
PROJECT = {
    "myproj/__init__.py": "",
    "myproj/head.py": '''
        import torch
        from torch import nn

        class MeanHead(nn.Module):
            """Regresses the mean of a 4-vector (B x 4 -> B)."""
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 1)

            def forward(self, batch):
                pred = self.fc(batch["x"]).squeeze(1)
                if self.training:
                    return {"loss_mse": torch.mean((pred - batch["y"]) ** 2)}
                return {"pred": pred}
    ''',
    "myproj/evaluator.py": '''
        from mvit_tasks.evaluation import DatasetEvaluator
        from mvit_tasks.utils import comm

        class MSEEvaluator(DatasetEvaluator):
            def reset(self):
                self.errs = []

            def process(self, inputs, outputs):
                self.errs += ((outputs["pred"] - inputs["y"]) ** 2).tolist()

            def evaluate(self):
                errs = comm.gather_list(self.errs)
                return {"mean_regression": {"neg_mse": -sum(errs) / len(errs), "n": len(errs)}}
    ''',
    "myproj/task.py": '''
        import torch
        from mvit_tasks.config import CfgNode
        from mvit_tasks.registry import TASK_REGISTRY
        from mvit_tasks.tasks import Task
        from .evaluator import MSEEvaluator
        from .head import MeanHead

        class Pairs(torch.utils.data.Dataset):
            def __init__(self, n, offset):
                self.n, self.offset = n, offset
            def __len__(self):
                return self.n
            def __getitem__(self, item):
                i = item[0] if isinstance(item, tuple) else item
                x = torch.randn(4, generator=torch.Generator().manual_seed(self.offset + i))
                return {"x": x, "y": float(x.mean())}

        @TASK_REGISTRY.register("mean_regression")
        class MeanRegression(Task):
            default_metric = "neg_mse"

            @classmethod
            def add_config(cls, cfg):
                cfg.MEANREG = CfgNode()
                cfg.MEANREG.TRAIN_SIZE = 64

            def build_model(self):
                return MeanHead()

            def build_dataset(self, split):
                if split == "train":
                    return Pairs(self.cfg.MEANREG.TRAIN_SIZE, 0)
                return Pairs(16, 1000)

            def build_evaluator(self, split):
                return MSEEvaluator()
    ''',
    "cfg.yaml": '''
        MEANREG: {TRAIN_SIZE: 128}
        SOLVER: {BASE_LR: 0.05, MAX_EPOCH: 6, WEIGHT_DECAY: 0.0}
        TRAIN: {BATCH_SIZE: 16, EVAL_PERIOD: 3}
        TEST: {BATCH_SIZE: 8}
        DATA_LOADER: {NUM_WORKERS: 0}
        TENSORBOARD: {ENABLE: False}
    ''',
}


def test_external_project_trains_through_train_net(tmp_path):
    for rel, text in PROJECT.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    cmd = [sys.executable, TOOL, "--task", "myproj.task", "--config-file",
           str(tmp_path / "cfg.yaml"), "OUTPUT_DIR", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "final_report.json").read_text())
    metrics = report["results"]["mean_regression"]
    assert report["task"] == "myproj.task" and metrics["n"] == 16
    assert metrics["neg_mse"] > -0.01  # learned: predicting 0 gives about -0.25
    assert (tmp_path / "out" / "checkpoints" / "best.pth").exists()


def test_every_builtin_project_imports_and_every_task_adds_its_config():
    from mvit_tasks.config import get_cfg
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.tasks import load_builtin_projects

    assert load_builtin_projects() == {}  # no project failed to import
    for name in list_tasks():
        task = resolve_task(name)
        cfg = get_cfg()
        add_engine_config(cfg)
        core = set(cfg.full_keys())
        task.add_config(cfg)
        assert set(cfg.full_keys()) > core, name  # the task adds its own keys
        assert task.default_metric, name  # `best.pth` needs a metric to maximise
