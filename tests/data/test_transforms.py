"""Clip transforms: SlowFast crop geometry, seeded reproducibility, clip-consistent RandAugment
and random erasing, normalisation."""
from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from mvit_tasks.data.transforms import (
    ClipTestTransform, ClipTrainTransform, RandAugmentConfig, VideoRandAugment,
    parse_rand_augment, random_erase_, resize_short_side, sample_resized_crop, short_side_size,
    to_normalized_float, uniform_crop_offsets,
)

ID_NORM = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_video(t=4, h=40, w=56, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=_gen(seed))


def _column_video(t=2, h=32, w=64) -> torch.Tensor:
    """Pixel value = its column index (0..w-1): a crop tells where it was taken."""
    cols = torch.arange(w, dtype=torch.uint8).view(1, 1, 1, w)
    return cols.expand(t, 3, h, w).contiguous()


def test_parse_rand_augment():
    assert parse_rand_augment("rand-m7-n4-mstd0.5-inc1") == RandAugmentConfig(4, 7.0, 0.5, 10, True)
    assert parse_rand_augment("rand-m9-mstd0.5-inc1").num_ops == 2  # timm default n
    for bad, msg in [("autoaug-m7", "rand-"), ("rand-m7-w0-inc1", "unsupported key 'w'"),
                     ("rand-m7-n2", "inc1"), ("rand-mx-inc1", "cannot parse"),
                     ("rand-m12-inc1", "0 <= m <= mmax")]:
        with pytest.raises(ValueError, match=msg):
            parse_rand_augment(bad)


def test_short_side_geometry_matches_slowfast():
    assert short_side_size(256, 340, 224) == (224, 297)  # floor(340 / 256 * 224)
    assert short_side_size(340, 256, 224) == (297, 224)
    v = _random_video(h=256, w=340)
    assert resize_short_side(v, 256) is v  # already there: no resampling
    assert resize_short_side(v, 224).shape == (4, 3, 224, 297)


def test_uniform_crop_offsets_three_crops():
    # landscape 224 x 298: left, centre (ceil(74 / 2) = 37), right
    assert [uniform_crop_offsets(224, 298, 224, i) for i in range(3)] == [(0, 0), (0, 37), (0, 74)]
    # portrait: top, centre, bottom
    assert [uniform_crop_offsets(298, 224, 224, i) for i in range(3)] == [(0, 0), (37, 0), (74, 0)]
    with pytest.raises(ValueError, match="larger"):
        uniform_crop_offsets(100, 100, 224, 1)


def test_test_transform_three_crops_cover_left_centre_right():
    video = _column_video(h=32, w=64)  # short side already 32: no resize
    tf = ClipTestTransform(crop_size=32, **ID_NORM)
    crops = [tf(video, i) for i in range(3)]
    for c in crops:
        assert c.shape == (3, 2, 32, 32) and c.dtype == torch.float32
    first_cols = [int(round(float(c[0, 0, 0, 0]) * 255)) for c in crops]
    last_cols = [int(round(float(c[0, 0, 0, -1]) * 255)) for c in crops]
    assert first_cols == [0, 16, 32] and last_cols == [31, 47, 63]
    # resize to the short side first: 64 x 128 -> 32 x 64, then the centre crop
    big = ClipTestTransform(crop_size=32, short_side=32, **ID_NORM)(
        torch.zeros(1, 3, 64, 128, dtype=torch.uint8), 1)
    assert big.shape == (3, 1, 32, 32)


def test_normalisation_formula():
    v = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = to_normalized_float(v, (0.1, 0.2, 0.3), (0.5, 0.25, 0.125))
    assert out.shape == (3, 2, 2, 2) and out.is_contiguous()
    expect = torch.tensor([(0 - 0.1) / 0.5, (0.2 - 0.2) / 0.25, (1.0 - 0.3) / 0.125])
    assert torch.allclose(out[:, 0, 0, 0], expect, atol=1e-5)


def test_train_transform_reproducible_from_the_generator():
    video = _random_video(h=48, w=64)
    tf = ClipTrainTransform(crop_size=32, jitter_scales=(36, 44), flip=True,
                            rand_augment="rand-m7-n4-mstd0.5-inc1", random_erasing_prob=0.5)
    a, pa = tf(video, _gen(1))
    b, pb = tf(video, _gen(1))
    c, _ = tf(video, _gen(2))
    assert a.shape == (3, 4, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and pa == pb
    assert not torch.equal(a, c)
    # the global RNG is neither used nor advanced
    torch.manual_seed(123)
    state = torch.get_rng_state()
    tf(video, _gen(3))
    assert torch.equal(state, torch.get_rng_state())


def test_train_transform_is_resize_crop_flip_normalise():
    video = _random_video(h=48, w=64)
    tf = ClipTrainTransform(crop_size=32, jitter_scales=(36, 44), flip=True, **ID_NORM)
    seen_flip = set()
    for seed in range(12):
        out, p = tf(video, _gen(seed))
        top, left, h, w = p["crop"]
        ref = resize_short_side(video, p["short_side"])[..., top:top + h, left:left + w]
        if p["flipped"]:
            ref = ref.flip(-1)
        assert 36 <= p["short_side"] <= 44 and (h, w) == (32, 32)
        assert torch.allclose(out, ref.permute(1, 0, 2, 3).float() / 255, atol=1e-6)
        seen_flip.add(p["flipped"])
    assert seen_flip == {True, False}


def test_random_resized_crop():
    box = sample_resized_crop(40, 60, (0.08, 1.0), (0.75, 4 / 3), _gen(0))
    top, left, h, w = box
    assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 60
    # whole-frame area with the frame's own aspect: the whole frame
    assert sample_resized_crop(40, 60, (1.0, 1.0), (1.5, 1.5), _gen(0)) == (0, 0, 40, 60)
    # impossible aspect: centre crop with the aspect clamped to the range
    assert sample_resized_crop(40, 60, (1.0, 1.0), (0.5, 0.5), _gen(0)) == (0, 20, 40, 20)
    tf = ClipTrainTransform(crop_size=24, random_resized_crop=True, flip=False, **ID_NORM)
    out, p = tf(_random_video(h=40, w=60), _gen(4))
    assert out.shape == (3, 4, 24, 24) and p["short_side"] is None


def test_rand_augment_same_ops_for_every_frame():
    frame = _random_video(t=1, h=32, w=32, seed=7)
    video = frame.expand(4, 3, 32, 32).contiguous()
    ra = VideoRandAugment(parse_rand_augment("rand-m9-n3-mstd0.5-inc1"))
    changed = 0
    for seed in range(6):
        out = ra(video, _gen(seed))
        assert out.dtype == torch.uint8 and out.shape == video.shape
        assert type(out) is torch.Tensor and not isinstance(out, tv_tensors.Video)
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4))
        changed += int(not torch.equal(out, video))
        assert torch.equal(out, ra(video, _gen(seed)))
    assert changed >= 4  # 3 ops of magnitude ~9 change the frames (Identity aside)
    assert torch.equal(VideoRandAugment(RandAugmentConfig(0, 9.0))(video, _gen(0)), video)


def test_random_erasing_same_box_in_every_frame():
    clip = torch.zeros(3, 4, 32, 32)
    box = random_erase_(clip, _gen(0))
    assert box is not None
    top, left, h, w = box
    erased = clip != 0
    for t in range(4):
        assert erased[:, t, top:top + h, left:left + w].float().mean() > 0.99
        assert not erased[:, t].sum() - erased[:, t, top:top + h, left:left + w].sum()
    assert not torch.equal(clip[:, 0], clip[:, 1])  # fresh noise per frame, SlowFast "pixel"
    area = h * w / (32 * 32)
    assert 0.02 - 0.01 <= area <= 1 / 3 + 0.02
    tf = ClipTrainTransform(crop_size=32, jitter_scales=(32, 32), random_erasing_prob=1.0)
    assert tf(_random_video(h=32, w=32), _gen(0))[1]["erased"] is not None
    tf0 = ClipTrainTransform(crop_size=32, jitter_scales=(32, 32), random_erasing_prob=0.0)
    assert tf0(_random_video(h=32, w=32), _gen(0))[1]["erased"] is None


def test_images_are_three_dimensional():
    image = _random_video(t=1, h=40, w=50)[0]
    out, _ = ClipTrainTransform(crop_size=32, jitter_scales=(36, 40))(image, _gen(0))
    assert out.shape == (3, 32, 32)
    assert ClipTestTransform(crop_size=32, short_side=36)(image, 0).shape == (3, 32, 32)
    assert ClipTestTransform(crop_size=32)(tv_tensors.Image(image)).shape == (3, 32, 32)


def test_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        ClipTestTransform(32)(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="crop_size <= jitter"):
        ClipTrainTransform(crop_size=224, jitter_scales=(200, 320))
    with pytest.raises(ValueError, match="short side"):
        ClipTestTransform(crop_size=224, short_side=200)
