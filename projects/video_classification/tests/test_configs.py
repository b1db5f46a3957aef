"""Every runnable config of the project loads with its task (no unknown keys) and builds the
architecture its name promises, with the published recipe's key settings."""
from __future__ import annotations

import glob
import os

import pytest

from mvit_tasks.config import arch_from_cfg, load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.tasks import resolve_task

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(HERE, "configs", "*.yaml"))
                 if not os.path.basename(p).startswith("_"))
TASK_OF = {"k400": "kinetics", "ssv2": "ssv2", "in1k": "imagenet", "shapes": "classification"}


def _load(path):
    stem = os.path.basename(path)[:-5]
    task = resolve_task(TASK_OF[stem.rsplit("_", 1)[-1]])
    return task, load_config(path, extra_config_fns=[add_engine_config, task.add_config])


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_and_matches_its_variant(path):
    task, cfg = _load(path)
    arch = arch_from_cfg(cfg)
    if cfg.MODEL.VARIANT:
        variant = get_variant(cfg.MODEL.VARIANT)
        assert arch.embed_dim == variant.arch.embed_dim and arch.depth == variant.arch.depth
        assert cfg.DATA.NUM_FRAMES == arch.num_frames or cfg.CLS.SAMPLING == "segment"
    assert cfg.TRAIN.BATCH_SIZE % cfg.SOLVER.ACCUM_STEPS == 0


def test_recipes_carry_the_published_settings():
    _, k = _load(os.path.join(HERE, "configs", "mvitv2_s_16x4_k400.yaml"))
    assert (k.SOLVER.OPTIMIZING_METHOD, k.SOLVER.BASE_LR, k.SOLVER.MAX_EPOCH,
            k.SOLVER.WARMUP_EPOCHS) == ("adamw", 1e-4, 200, 30.0)
    assert k.CLS.MIXUP.ENABLE and k.CLS.AUG.NUM_SAMPLE == 2 and k.CLS.AUG.RE_PROB == 0.25
    assert (k.CLS.NUM_ENSEMBLE_VIEWS, k.CLS.NUM_SPATIAL_CROPS, k.MODEL.NUM_CLASSES) == (5, 1, 400)
    assert arch_from_cfg(k).drop_path_rate == 0.2
    _, s = _load(os.path.join(HERE, "configs", "mvitv2_s_16x4_ssv2.yaml"))
    assert (s.SOLVER.OPTIMIZING_METHOD, s.SOLVER.BASE_LR, s.MODEL.NUM_CLASSES) == ("sgd", 0.0025, 174)
    assert (s.CLS.SAMPLING, s.CLS.FLIP, s.CLS.NUM_SPATIAL_CROPS) == ("segment", False, 3)
    assert arch_from_cfg(s).drop_path_rate == 0.4 and "head." in s.MODEL.WEIGHTS_ALLOW_MISSING
    _, i = _load(os.path.join(HERE, "configs", "mvitv2_t_in1k.yaml"))
    assert i.CLS.SAMPLING == "image" and not arch_from_cfg(i).video and i.MODEL.NUM_CLASSES == 1000
