"""``EvalTransform`` against independent computations of each source's eval preprocessing:
SlowFast (float frames, ``F.interpolate`` bilinear, ``ceil`` offsets), torchvision's
``VideoClassification`` and the mvit repo's PIL ``Resize(bicubic) + CenterCrop``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mvit_tasks.modeling.eval_transform import EvalTransform

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def _slowfast(frames: torch.Tensor, short: int, crop: int) -> torch.Tensor:
    """SlowFast test path: uint8 T x H x W x C -> float / 255, short side scale with
    ``F.interpolate(bilinear, align_corners=False)``, uniform_crop(spatial_idx=1), normalise,
    C x T x H x W."""
    x = frames.float() / 255.0
    x = x.permute(0, 3, 1, 2)  # T C H W
    h, w = x.shape[-2:]
    if w < h:
        nh, nw = int(math.floor(float(h) / w * short)), short
    else:
        nh, nw = short, int(math.floor(float(w) / h * short))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    y0, x0 = int(math.ceil((nh - crop) / 2)), int(math.ceil((nw - crop) / 2))
    x = x[:, :, y0:y0 + crop, x0:x0 + crop]
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x.permute(1, 0, 2, 3)


@pytest.mark.parametrize("size", [(121, 163), (163, 121), (128, 128)])
def test_slowfast_semantics(size):
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (4, *size, 3), dtype=torch.uint8)
    t = EvalTransform(96, 111, MEAN, STD, "bilinear", antialias=False, crop_rounding="ceil")
    ours = t(frames.permute(0, 3, 1, 2))
    assert torch.allclose(ours, _slowfast(frames, 111, 96), atol=1e-5)


def test_torchvision_video_classification():
    from torchvision.transforms._presets import VideoClassification

    torch.manual_seed(0)
    video = torch.randint(0, 256, (2, 4, 3, 151, 203), dtype=torch.uint8)
    theirs = VideoClassification(crop_size=(112, 112), resize_size=(128,), mean=MEAN, std=STD)
    ours = EvalTransform(112, 128, MEAN, STD, "bilinear", antialias=False,
                         crop_rounding="round")(video)
    assert ours.shape == theirs(video).shape == (2, 3, 4, 112, 112)
    # torchvision resizes the uint8 frames (rounded to integers), we resize floats
    assert (ours - theirs(video)).abs().max() < 2.5 / 255 / 0.225


def test_mvit_image_pipeline_pil():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (181, 243, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pil = Image.fromarray(img)
    short = int(224 / 0.875 * 0.5)  # 128 for a 112 crop
    w, h = pil.size
    nw, nh = (int(short * w / h), short) if h < w else (short, int(short * h / w))
    pil = pil.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - 112) / 2.0)), int(round((nw - 112) / 2.0))
    ref = torch.from_numpy(np.array(pil)[top:top + 112, left:left + 112]).permute(2, 0, 1)
    ref = (ref.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    ours = EvalTransform(112, short, mean, std, "bicubic", antialias=True, crop_rounding="round",
                         video=False)(torch.from_numpy(img).permute(2, 0, 1))
    assert ours.shape == ref.shape == (3, 112, 112)
    # PIL's and torch's antialiased bicubic differ by rounding
    assert (ours - ref).abs().mean() < 0.02


def test_bad_inputs():
    t = EvalTransform(32, 36, MEAN, STD)
    with pytest.raises(ValueError, match="T x 3 x H x W"):
        t(torch.zeros(3, 40, 40))
    with pytest.raises(ValueError, match="resize_size"):
        EvalTransform(32, 30, MEAN, STD)
    with pytest.raises(ValueError, match="interpolation"):
        EvalTransform(32, 36, MEAN, STD, interpolation="nearest")
