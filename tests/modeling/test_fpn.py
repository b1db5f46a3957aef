"""FPN neck: geometry from ``output_shape()``, detectron2 semantics and names, padding."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from mvit_tasks.modeling.backbone.base import FeatureSpec
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.necks import FPN, FPNBackbone

SHAPES = {n: FeatureSpec(c, s) for n, c, s in
          (("scale2", 8, 4), ("scale3", 16, 8), ("scale4", 24, 16), ("scale5", 32, 32))}


def _backbone(kind: str) -> MViT:
    """Narrow 2-blocks-per-stage MViTv2-T: global attention (ImageNet form) or detectron2's
    hybrid window attention with a 16-token window, so a 128 x 96 input splits scale2 (32 x 24
    tokens) into 2 x 2 zero-padded windows."""
    if kind == "global":
        arch = get_variant("mvitv2_t").arch.shallow(2).replace(embed_dim=16)
    else:
        arch = get_variant("mvitv2_t_coco").arch.shallow(2).replace(embed_dim=16, window_size=16)
    return MViT(arch).eval()


@pytest.mark.parametrize("kind", ["global", "window"])
def test_pyramid_geometry_follows_output_shape_and_size_divisibility(kind: str) -> None:
    backbone = _backbone(kind)
    assert bool(backbone.arch.window_size) == (kind == "window")
    model = FPNBackbone.build(backbone, out_channels=32).eval()
    shapes = model.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    assert {s.channels for s in shapes.values()} == {32} and model.out_channels == 32
    assert model.fpn.size_divisibility == 32 and model.size_divisibility == 32
    assert model.fpn.lateral_levels == ["p2", "p3", "p4", "p5"]

    x = torch.randn(1, 3, 100, 75)  # neither side is a multiple of 32
    with torch.no_grad():
        raw = backbone(x)
        # unpadded, the maps round up and are not H / stride (scale5: 4 x 3 for 100 x 75) ...
        assert any(t.shape[-2] * backbone.output_shape()[n].stride != 100 for n, t in raw.items())
        d = model.size_divisibility
        padded = F.pad(x, (0, -75 % d, 0, -100 % d))
        assert tuple(padded.shape[-2:]) == (128, 96)
        out = model(padded)
    # ... padded to the size divisibility, every level is exactly (H / stride, W / stride)
    for name, spec in shapes.items():
        if name == "p6":  # stride-2 subsampling of p5 (4 x 3 -> 2 x 2)
            assert tuple(out[name].shape) == (1, 32, 2, 2)
        else:
            assert tuple(out[name].shape) == (1, 32, 128 // spec.stride, 96 // spec.stride)
    assert torch.isfinite(torch.stack([o.sum() for o in out.values()])).all()


def test_top_down_semantics_match_detectron2() -> None:
    """p5 = out(lat(c5)); p4 = out(lat(c4) + nearest_2x(lat(c5))); p6 = p5[::2, ::2]."""
    fpn = FPN(SHAPES, out_channels=12).eval()
    g = torch.Generator().manual_seed(0)
    feats = {n: torch.randn(2, s.channels, 64 // s.stride, 96 // s.stride, generator=g)
             for n, s in SHAPES.items()}
    with torch.no_grad():
        for p in fpn.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        out = fpn(feats)

        def lat(i, x):
            conv = fpn.inner_blocks[i][0]
            return F.conv2d(x, conv.weight, conv.bias)

        def outc(i, x):
            conv = fpn.layer_blocks[i][0]
            return F.conv2d(x, conv.weight, conv.bias, padding=1)

        top = lat(3, feats["scale5"])
        torch.testing.assert_close(out["p5"], outc(3, top), rtol=0, atol=1e-6)
        mid = lat(2, feats["scale4"]) + F.interpolate(top, scale_factor=2.0, mode="nearest")
        torch.testing.assert_close(out["p4"], outc(2, mid), rtol=0, atol=1e-6)
    assert torch.equal(out["p6"], out["p5"][..., ::2, ::2])
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]


@pytest.mark.parametrize("norm", ["", "LN"])
def test_detectron2_names_cover_every_tensor(norm: str) -> None:
    fpn = FPN(SHAPES, in_features=("scale3", "scale4", "scale5"), norm=norm, top_block="")
    names = fpn.detectron2_names()
    assert set(names) == set(fpn.state_dict()), "every tensor has a detectron2 name"
    expected = set()
    for k in (3, 4, 5):
        for kind in ("lateral", "output"):
            expected |= ({f"fpn_{kind}{k}.weight", f"fpn_{kind}{k}.norm.weight",
                          f"fpn_{kind}{k}.norm.bias"} if norm else
                         {f"fpn_{kind}{k}.weight", f"fpn_{kind}{k}.bias"})
    assert set(names.values()) == expected
    assert names["inner_blocks.0.0.weight"] == "fpn_lateral3.weight"
    assert names["layer_blocks.2.0.weight"] == "fpn_output5.weight"
    assert fpn.inner_blocks[0][0].weight.shape[1] == 16  # lateral 3 reads scale3 (16 channels)
    assert list(fpn.output_shape()) == ["p3", "p4", "p5"] and fpn.size_divisibility == 32
    if norm:  # convs followed by a norm have no bias, as in detectron2
        assert fpn.inner_blocks[0][0].bias is None
        assert fpn.inner_blocks[0][1].eps == 1e-6


def test_built_from_output_shape_only() -> None:
    fpn = FPN(SHAPES, out_channels=8)
    assert [b[0].in_channels for b in fpn.inner_blocks] == [8, 16, 24, 32]


def test_bad_inputs_raise_clear_errors() -> None:
    video = dict(SHAPES, scale2=FeatureSpec(8, 4, temporal_stride=2))
    with pytest.raises(ValueError, match=r"scale2.*temporal stride.*2-D image"):
        FPN(video)
    with pytest.raises(ValueError, match=r"\['res9'\] are not among"):
        FPN(SHAPES, in_features=("scale2", "res9"))
    with pytest.raises(ValueError, match="fine to coarse"):
        FPN(SHAPES, in_features=("scale3", "scale2"))
    with pytest.raises(ValueError, match="not a power of two"):
        FPN({"a": FeatureSpec(4, 4), "b": FeatureSpec(4, 12)}, in_features=("a", "b"))
    with pytest.raises(ValueError, match="unknown norm"):
        FPN(SHAPES, norm="BatchNorm")
    with pytest.raises(ValueError, match="top_block"):
        FPN(SHAPES, top_block="p6p7")
    fpn = FPN(SHAPES)
    feats = OrderedDict((n, torch.zeros(1, s.channels, 2, 64 // s.stride, 64 // s.stride))
                        for n, s in SHAPES.items())
    with pytest.raises(ValueError, match=r"'scale2'.*video feature pyramids are out of scope"):
        fpn(feats)
    with pytest.raises(KeyError, match="no 'scale5'"):
        fpn({n: v[:, :, 0] for n, v in feats.items() if n != "scale5"})


@pytest.mark.parametrize("name", ["mvitv2_t_coco", "mvitv2_s_coco", "mvitv2_b_coco",
                                  "mvitv2_l_coco", "mvitv2_h_coco"])
def test_hybrid_windows_add_no_input_constraint_beyond_the_max_stride(name: str) -> None:
    """Every windowed block's window is a multiple of its q and kv strides, so the internally
    zero-padded q and kv grids always hold the same number of windows at any input size; the
    only constraint left is the largest stride (32)."""
    arch = get_variant(name).arch
    windowed = [s for s in arch.block_specs() if s.window_size]
    assert windowed and len(windowed) < arch.depth  # hybrid: some global blocks
    for s in windowed:
        assert s.window_size % s.stride_q[1] == 0 and s.window_size % s.stride_kv[1] == 0, s
    assert FPN(_shapes(arch)).size_divisibility == 32


def _shapes(arch) -> dict:
    """Stage geometry from the architecture alone (what ``MViT.output_shape()`` reports)."""
    return {n: FeatureSpec(1, s) for n, (s, _) in zip(arch.stage_names(), arch.stage_strides())}
