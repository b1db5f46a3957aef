"""configs/backbones/<variant>.yaml exists for every variant and builds exactly that variant."""
import os

import pytest

import mvit_tasks
from mvit_tasks.config import arch_from_cfg, load_config
from mvit_tasks.modeling.backbone.variants import get_variant, list_variants

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name", list_variants())
def test_fragment_matches_variant(name):
    path = os.path.join(ROOT, "configs", "backbones", f"{name}.yaml")
    cfg = load_config(path, [])
    v = get_variant(name)
    assert arch_from_cfg(cfg) == v.arch
    assert cfg.DATA.NUM_FRAMES == v.num_frames and cfg.DATA.TRAIN_CROP_SIZE == v.crop_size
    assert tuple(cfg.DATA.MEAN) == tuple(v.mean)
    if v.num_classes:
        assert cfg.MODEL.NUM_CLASSES == v.num_classes


def test_create_model_from_config_with_overrides(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "_BASE_: " + os.path.join(ROOT, "configs", "backbones", "mvitv2_s_16x4.yaml") + "\n"
        "MODEL:\n  NUM_CLASSES: 7\n  MVIT:\n    DEPTH: 4\n"
        "    DIM_MUL: [[1, 2.0], [2, 2.0], [3, 2.0]]\n    HEAD_MUL: [[1, 2.0], [2, 2.0], [3, 2.0]]\n"
        "    POOL_Q_STRIDE: [[0, 1, 1, 1], [1, 1, 2, 2], [2, 1, 2, 2], [3, 1, 2, 2]]\n"
    )
    model = mvit_tasks.create_model(config_file=str(cfg), opts=["MODEL.HEAD.DROPOUT_RATE", "0.0"]).eval()
    import torch

    assert model(torch.randn(1, 3, 4, 64, 64)).shape == (1, 7)
    assert len(model.backbone.blocks) == 4
    assert model.head.pool == "cls"
