"""A weights load in the classification task logs its report; resized tables are a WARNING."""
from __future__ import annotations

import torch

from mvit_tasks.config import load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.projects.video_classification.task import ClassificationTask

TINY = ["MODEL.VARIANT", "mvitv2_t", "MODEL.NUM_CLASSES", "2", "MODEL.MVIT.DEPTH", "2",
        "MODEL.MVIT.EMBED_DIM", "16", "MODEL.MVIT.DIM_MUL", "[[1, 2.0]]",
        "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]", "MODEL.MVIT.POOL_Q_STRIDE", "[[1, 2, 2]]"]


def _task(*opts: str) -> ClassificationTask:
    cfg = load_config(None, [*TINY, *opts], extra_config_fns=[add_engine_config,
                                                               ClassificationTask.add_config])
    task = ClassificationTask.__new__(ClassificationTask)  # no data needed to build the model
    task.cfg = cfg
    return task


def test_load_report_is_logged_and_resizes_warn(tmp_path, caplog):
    small = _task("DATA.TRAIN_CROP_SIZE", "32").build_model()
    path = str(tmp_path / "w.pth")
    torch.save({"model": small.state_dict()}, path)
    with caplog.at_level("INFO"):
        _task("DATA.TRAIN_CROP_SIZE", "32", "MODEL.WEIGHTS", path).build_model()
    same = [r for r in caplog.records if path in r.getMessage()]
    assert len(same) == 1 and same[0].levelname == "INFO" and "loaded" in same[0].getMessage()
    caplog.clear()
    with caplog.at_level("INFO"):  # another input size: the rel-pos tables are resized
        _task("DATA.TRAIN_CROP_SIZE", "64", "MODEL.WEIGHTS", path).build_model()
    resized = [r for r in caplog.records if path in r.getMessage()]
    assert len(resized) == 1 and resized[0].levelname == "WARNING"
    assert "resized" in resized[0].getMessage()
