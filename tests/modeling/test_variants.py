"""Every registered variant: exact parameter counts, tiny forward/backward, output geometry."""
import math

import pytest
import torch

from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant, list_variants
from mvit_tasks.modeling.meta_arch import Classifier

# Reference counts: torchvision (mvit_v1_b with 400 classes, mvit_v2_s) and timm (mvitv2_*),
# measured on the installed packages; video B/L follow from SlowFast's published 51.2 M and the
# SSv2 L (174 classes) 213.1 M.
EXACT_PARAMS = {
    "mvit_b_16x4": 36_610_672,  # torchvision mvit_v1_b(num_classes=400)
    "mvit_b_32x3": 36_611_440,  # + 8 more temporal position rows x 96 (pytorchvideo 32x3)
    "mvit_b_24_32x3": 53_115_280,  # SlowFast MVIT_B_32x3_CONV.yaml (24 blocks, stride kernels)
    "mvitv2_s_16x4": 34_537_744,  # torchvision mvit_v2_s
    "mvitv2_b_32x3": 51_230_128,
    "mvitv2_l_40x3": 213_390_112,
    "mvitv2_t": 24_173_320,  # timm mvitv2_tiny
    "mvitv2_s": 34_870_216,  # timm mvitv2_small
    "mvitv2_b": 51_472_744,  # timm mvitv2_base
    "mvitv2_l": 217_992_952,  # timm mvitv2_large
    "mvitv2_s_cls": 34_870_312,  # timm mvitv2_small_cls
    "mvitv2_b_cls": 65_444_032,  # timm mvitv2_base_cls (19168 classes)
    "mvitv2_l_cls": 234_583_216,  # timm mvitv2_large_cls
    "mvitv2_h_cls": 694_804_128,  # timm mvitv2_huge_cls
}
BIG = {"mvitv2_l_40x3", "mvitv2_l", "mvitv2_l_cls", "mvitv2_h_cls", "mvitv2_l_coco", "mvitv2_h_coco"}


def _build(name: str) -> torch.nn.Module:
    v = get_variant(name)
    return Classifier.from_arch(v.arch, v.num_classes) if v.num_classes else MViT(v.arch)


def test_every_variant_has_a_reference_count_or_is_a_detection_backbone():
    for name in list_variants():
        assert name in EXACT_PARAMS or get_variant(name).num_classes == 0, name


@pytest.mark.parametrize("name", list_variants())
def test_parameter_count(name):
    with torch.device("meta"):
        model = _build(name)
    n = sum(p.numel() for p in model.parameters())
    v = get_variant(name)
    if name in EXACT_PARAMS:
        assert n == EXACT_PARAMS[name]
    if v.params_m is not None and v.num_classes:
        assert abs(n / 1e6 - v.params_m) < 0.06 * v.params_m  # published value, rounded


def _tiny_input(name: str) -> torch.Tensor:
    v = get_variant(name)
    if v.arch.video:
        return torch.randn(2, 3, 4, 64, 64)
    return torch.randn(2, 3, 64, 96)


@pytest.mark.parametrize("name", list_variants())
def test_forward_backward_and_output_shape(name):
    """Full-width model on a tiny input; variants deeper than 16 blocks keep 2 blocks per stage
    (``MViTArch.shallow``: stage starts, last blocks, global blocks and all widths kept)."""
    torch.manual_seed(0)
    v = get_variant(name)
    arch = v.arch.shallow(2) if v.arch.depth > 16 else v.arch
    backbone = MViT(arch.replace(out_features=None, drop_path_rate=0.0))
    x = _tiny_input(name)
    feats = backbone(x)
    specs = backbone.output_shape()
    assert list(specs) == [f"scale{i}" for i in range(2, 6)]
    strides = [s.stride for s in specs.values()]
    assert strides == [4, 8, 16, 32]
    for key, spec in specs.items():
        y = feats[key]
        assert y.shape[0] == 2 and y.shape[1] == spec.channels
        assert y.shape[-2:] == (x.shape[-2] // spec.stride, x.shape[-1] // spec.stride)
        if v.arch.video:
            assert y.ndim == 5 and y.shape[2] == x.shape[2] // spec.temporal_stride
        else:
            assert y.ndim == 4 and spec.temporal_stride == 1
    assert ("cls" in feats) == v.arch.cls_embed
    loss = sum(f.float().pow(2).mean() for f in feats.values())
    loss.backward()
    grads = [p.grad for p in backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # every parameter takes part (no dead modules)
    assert sum(1 for g in grads if g.abs().sum() > 0) == len(grads)


@pytest.mark.parametrize("name", sorted(BIG))
def test_shallow_keeps_the_stage_structure(name):
    arch = get_variant(name).arch
    full, small = arch.block_specs(), arch.shallow(2).block_specs()
    assert len(small) == 8
    for stage in range(4):
        f = [s for s in full if s.stage == stage]
        m = [s for s in small if s.stage == stage]
        for a, b in ((f[0], m[0]), (f[-1], m[-1])):
            assert (a.dim_in, a.dim_out, a.num_heads, a.stride_q, a.stride_kv, a.window_size) == (
                b.dim_in, b.dim_out, b.num_heads, b.stride_q, b.stride_kv, b.window_size)


def test_classifier_logits_shape_video_and_image():
    m = Classifier.from_arch(get_variant("mvitv2_s_16x4").arch, 7).eval()
    assert m(torch.randn(1, 3, 4, 64, 64)).shape == (1, 7)
    m = Classifier.from_arch(get_variant("mvitv2_t").arch, 5).eval()
    assert m(torch.randn(3, 3, 64, 64)).shape == (3, 5)


def test_metadata_is_filled():
    for name in list_variants():
        v = get_variant(name)
        assert v.source and v.checkpoint and v.dataset
        assert len(v.mean) == 3 and len(v.std) == 3
        if v.arch.video:
            assert v.num_frames == v.arch.num_frames and v.sampling_rate > 1
        assert math.isclose(v.crop_size, v.arch.spatial_size[0]) or v.num_classes == 0
