"""The variant declaration convention: families built from stage ``depths``, keyword-only
``ModelVariant``, frames / crop read from the architecture."""
import re

import pytest

from mvit_tasks.modeling.backbone.families import (
    mvitv1_video,
    mvitv2_detection,
    mvitv2_image,
    mvitv2_video,
    stage_lists,
    stage_starts,
)
from mvit_tasks.modeling.backbone.variants import ModelVariant, get_variant, list_variants

# Stage depths of the published configs, written out independently of variants.py: timm
# ``model_cfgs`` (mvitv2_tiny .. mvitv2_huge_cls), SlowFast DEPTH + DIM_MUL indices (MViT-B 16:
# [1, 3, 14]; 24: [2, 5, 21]; L: [2, 8, 44]).
DEPTHS = {
    "mvit_b_16x4": (1, 2, 11, 2), "mvit_b_32x3": (1, 2, 11, 2), "mvit_b_24_32x3": (2, 3, 16, 3),
    "mvitv2_s_16x4": (1, 2, 11, 2), "mvitv2_b_32x3": (2, 3, 16, 3),
    "mvitv2_l_40x3": (2, 6, 36, 4),
    "mvitv2_t": (1, 2, 5, 2), "mvitv2_s": (1, 2, 11, 2), "mvitv2_b": (2, 3, 16, 3),
    "mvitv2_l": (2, 6, 36, 4), "mvitv2_s_cls": (1, 2, 11, 2), "mvitv2_b_cls": (2, 3, 16, 3),
    "mvitv2_l_cls": (2, 6, 36, 4), "mvitv2_h_cls": (4, 8, 60, 8),
    "mvitv2_t_coco": (1, 2, 5, 2), "mvitv2_s_coco": (1, 2, 11, 2), "mvitv2_b_coco": (2, 3, 16, 3),
    "mvitv2_l_coco": (2, 6, 36, 4), "mvitv2_h_coco": (4, 8, 60, 8),
}
# detectron2 projects/MViTv2/configs: ``last_block_indexes`` (the global-attention blocks are
# the last three).
D2_LAST_BLOCKS = {
    "mvitv2_t_coco": (0, 2, 7, 9), "mvitv2_s_coco": (0, 2, 13, 15),
    "mvitv2_b_coco": (1, 4, 20, 23), "mvitv2_l_coco": (1, 7, 43, 47),
    "mvitv2_h_coco": (3, 11, 71, 79),
}


def test_every_variant_has_the_published_stage_depths():
    assert set(DEPTHS) == set(list_variants())
    for name, depths in DEPTHS.items():
        assert get_variant(name).arch.stage_depths() == list(depths), name


@pytest.mark.parametrize("name", sorted(D2_LAST_BLOCKS))
def test_detection_backbones_match_detectron2_last_block_indexes(name):
    arch = get_variant(name).arch
    last = D2_LAST_BLOCKS[name]
    assert tuple(arch.stage_ends()) == last
    assert tuple(arch.global_blocks) == last[1:]
    specs = arch.block_specs()
    # kv stride doubled in the global blocks of scale3 / scale4 (detectron2 MViT)
    for b in last[1:3]:
        assert specs[b].stride_kv[1:] == tuple(2 * s for s in specs[b - 1].stride_kv[1:])
    assert specs[last[3]].stride_kv == specs[last[3] - 1].stride_kv


def test_stage_lists_are_slowfast_block_lists():
    assert stage_starts((1, 2, 11, 2)) == [1, 3, 14]
    v1 = stage_lists((1, 2, 1), (1, 2, 2), False)
    assert v1 == dict(depth=4, dim_mul=[[1, 2.0], [3, 2.0]], head_mul=[[1, 2.0], [3, 2.0]],
                      pool_q_stride=[[1, 1, 2, 2], [3, 1, 2, 2]])
    v2 = stage_lists((1, 2), (2, 2), True)
    assert v2["pool_q_stride"] == [[0, 1, 1], [1, 2, 2], [2, 1, 1]]
    with pytest.raises(ValueError, match="positive"):
        stage_lists((1, 0, 2), (2, 2), True)


@pytest.mark.parametrize("key", ["depth", "dim_mul", "head_mul", "pool_q_stride"])
def test_depths_fields_cannot_be_overridden(key):
    with pytest.raises(TypeError, match="depths"):
        mvitv2_image(depths=(1, 1), **{key: 2})


def test_families_are_keyword_only():
    for make in (mvitv1_video, mvitv2_video):
        with pytest.raises(TypeError):
            make((1, 2, 11, 2), 16)  # type: ignore[misc]
    for make in (mvitv2_image, mvitv2_detection):
        with pytest.raises(TypeError):
            make((1, 2, 11, 2))  # type: ignore[misc]


def test_model_variant_is_keyword_only_and_derives_frames_and_crop():
    arch = mvitv2_video(depths=(1, 1), num_frames=4, spatial_size=(32, 32))
    with pytest.raises(TypeError):
        ModelVariant("x", arch, 5)  # type: ignore[misc]
    v = ModelVariant(name="x", arch=arch, num_classes=5, sampling_rate=2)
    assert (v.num_frames, v.crop_size, v.input_shape(2)) == (4, 32, (2, 3, 4, 32, 32))
    assert ModelVariant(name="x", arch=arch, num_classes=0, crop_size=64).crop_size == 64
    image = mvitv2_image(depths=(1, 1), spatial_size=(48, 48))
    assert ModelVariant(name="y", arch=image, num_classes=5).input_shape() == (1, 3, 48, 48)
    with pytest.raises(ValueError, match="sampling_rate"):
        ModelVariant(name="y", arch=image, num_classes=5, sampling_rate=2)
    with pytest.raises(ValueError, match="crop_size"):
        ModelVariant(name="z", arch=image.replace(spatial_size=(48, 64)), num_classes=5)


def test_video_names_state_frames_and_stride():
    """``..._<T>x<tau>`` of a video variant is its architecture's T and its sampling rate."""
    for name in list_variants("video"):
        v = get_variant(name)
        m = re.search(r"_(\d+)x(\d+)$", name)
        assert m and (int(m[1]), int(m[2])) == (v.num_frames, v.sampling_rate), name
