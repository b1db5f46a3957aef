"""The model's frames and spatial size have one source in the clip / image tasks: DATA.*."""
from __future__ import annotations

import pytest

from mvit_tasks.config import arch_from_cfg, load_config


def _cfg(*opts: str):
    return load_config(None, list(opts))


def test_video_geometry_comes_from_data():
    cfg = _cfg("MODEL.VARIANT", "mvitv2_s_16x4", "DATA.NUM_FRAMES", "32",
               "DATA.TRAIN_CROP_SIZE", "256")
    arch = arch_from_cfg(cfg, input_from_data=True)
    assert arch.num_frames == 32 and arch.spatial_size == (256, 256)
    # detection (and create_model) do not consult DATA.*
    assert arch_from_cfg(cfg).num_frames == 16 and arch_from_cfg(cfg).spatial_size == (224, 224)


@pytest.mark.parametrize("opts,message", [
    (("MODEL.MVIT.NUM_FRAMES", "16", "DATA.NUM_FRAMES", "32"),
     r"MODEL\.MVIT\.NUM_FRAMES=16 and DATA\.NUM_FRAMES=32 describe the same input differently"),
    (("MODEL.MVIT.SPATIAL_SIZE", "[224, 224]", "DATA.TRAIN_CROP_SIZE", "312"),
     r"MODEL\.MVIT\.SPATIAL_SIZE=\[224, 224\] and DATA\.TRAIN_CROP_SIZE=312"),
])
def test_two_different_values_for_one_fact_are_an_error(opts, message):
    cfg = _cfg("MODEL.VARIANT", "mvitv2_s_16x4", *opts)
    with pytest.raises(ValueError, match=message):
        arch_from_cfg(cfg, input_from_data=True)


def test_equal_values_and_image_models_are_fine():
    cfg = _cfg("MODEL.VARIANT", "mvitv2_s_16x4", "MODEL.MVIT.NUM_FRAMES", "16",
               "DATA.NUM_FRAMES", "16")
    assert arch_from_cfg(cfg, input_from_data=True).num_frames == 16
    image = arch_from_cfg(_cfg("MODEL.VARIANT", "mvitv2_t", "DATA.TRAIN_CROP_SIZE", "256"),
                          input_from_data=True)
    assert image.num_frames == 1 and image.spatial_size == (256, 256)
