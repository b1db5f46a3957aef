"""``create_model(config_file=<a task's training config>)`` returns that task's model: the task
is detected from its keys (or named with ``task=``), its data is neither read nor generated."""
from __future__ import annotations

import os

import pytest
import torch

import mvit_tasks
from mvit_tasks.modeling.meta_arch import Classifier
from mvit_tasks.modeling.task_model import detect_task
from mvit_tasks.tasks import Task

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(*parts: str) -> str:
    return os.path.join(ROOT, *parts)


@pytest.fixture(autouse=True)
def _no_task_init(monkeypatch):
    """A task's own __init__ (demo data, class lists) must not run."""
    from mvit_tasks.tasks import list_tasks, resolve_task

    for name in list_tasks():
        cls = resolve_task(name)
        if "__init__" in vars(cls):
            monkeypatch.setattr(cls, "__init__", _refuse)


def _refuse(self, cfg):  # pragma: no cover - failing is the point
    raise AssertionError(f"{type(self).__name__}.__init__ ran (it reads / generates data)")


@pytest.mark.parametrize("config, task, cls_name", [
    (("projects", "ava", "configs", "demo_synthetic.yaml"), "ava", "AvaDetector"),
    (("projects", "coco_detection", "configs", "demo_shapes.yaml"), "coco", "CocoDetector"),
    (("projects", "video_classification", "configs", "demo_moving_shapes.yaml"),
     "classification", "ClipClassifier"),
])
def test_demo_configs_give_their_tasks_models(config, task, cls_name):
    path = _cfg(*config)
    assert detect_task(path)[0] == task
    model = mvit_tasks.create_model(config_file=path)
    assert type(model).__name__ == cls_name
    same = mvit_tasks.create_model(config_file=path, task=task)
    assert type(same) is type(model)
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in same.parameters())


def test_classification_recipe_and_overrides():
    path = _cfg("projects", "video_classification", "configs", "mvitv2_t_in1k.yaml")
    model = mvit_tasks.create_model(config_file=path, num_classes=10,
                                    opts=["MODEL.MVIT.DEPTH", "2", "MODEL.MVIT.DIM_MUL", "[]",
                                          "MODEL.MVIT.HEAD_MUL", "[]",
                                          "MODEL.MVIT.POOL_Q_STRIDE", "[]"])
    assert isinstance(model, Classifier) and type(model).__name__ == "ClipClassifier"
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_weights_false_skips_the_configs_weights(tmp_path):
    cfg = tmp_path / "ava.yaml"
    base = _cfg("projects", "ava", "configs", "demo_synthetic.yaml")
    cfg.write_text(f"_BASE_: {base}\nMODEL:\n  WEIGHTS: {tmp_path / 'missing.pyth'}\n")
    with pytest.raises(FileNotFoundError):
        mvit_tasks.create_model(config_file=str(cfg))
    assert type(mvit_tasks.create_model(config_file=str(cfg), weights=False)).__name__ == \
        "AvaDetector"


def test_core_configs_still_build_the_core_classifier():
    model = mvit_tasks.create_model(config_file=_cfg("configs", "backbones", "mvitv2_t.yaml"))
    assert type(model) is Classifier


def test_ambiguous_and_unreadable_configs(tmp_path):
    only_engine = tmp_path / "engine.yaml"
    only_engine.write_text("SOLVER: {BASE_LR: 0.1}\n")
    with pytest.raises(ValueError, match="several unrelated tasks .* pass task=NAME"):
        mvit_tasks.create_model(config_file=str(only_engine))
    assert isinstance(mvit_tasks.create_model(config_file=str(only_engine), task="ava"),
                      torch.nn.Module)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("NOT_A_TASK: {X: 1}\n")
    with pytest.raises(ValueError, match="no registered task reads"):
        mvit_tasks.create_model(config_file=str(unknown))
    with pytest.raises(ValueError, match="pretrained= applies to a variant name"):
        mvit_tasks.create_model(config_file=str(only_engine), pretrained=True)


def test_task_base_init_only():
    """The task object handed to build_model holds the config and nothing else."""
    from mvit_tasks.modeling import task_model

    seen = {}
    original = Task.__init__

    def spy(self, cfg):
        seen["task"] = type(self).__name__
        original(self, cfg)

    try:
        Task.__init__ = spy
        task_model.build_task_model(None, _cfg("projects", "ava", "configs",
                                               "demo_synthetic.yaml"))
    finally:
        Task.__init__ = original
    assert seen == {"task": "AvaTask"}
