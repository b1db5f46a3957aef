"""SlowFast / mvit / detectron2 checkpoint converters: key layout, loading, round trips, safety.

The expected key names and shapes below are written out from the upstream module attribute
names and shape rules (SlowFast ``video_model_builder.py::MViT`` + ``attention.py``,
facebookresearch/mvit ``mvit_model.py``, detectron2 ``modeling/backbone/mvit.py``) so these
tests fail if our layout drifts from theirs. Peer parity for the mvit image format runs against
timm, which loads the released mvit ``.pyth`` files through ``checkpoint_filter_fn``.
"""
from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from mvit_tasks.checkpoint.converters import detect_source, get_converter
from mvit_tasks.checkpoint.converters.detectron2 import is_detectron2_detector
from mvit_tasks.checkpoint.io import UnsafeCheckpointError, load_checkpoint_file
from mvit_tasks.checkpoint.loader import convert_state_dict, load_weights
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.families import mvitv1_video, mvitv2_video
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.meta_arch import Classifier


# ------------------------------------------------------------------------------------ helpers
def _fill(module: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic non-trivial values for every tensor (LayerNorms around 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.state_dict().items():
            v = torch.randn(p.shape, generator=g) * 0.05
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or re.search(
                r"norm(_[qkv])?\.weight$|scale\d_norm\.weight$", name
            ):
                v = v + 1.0
            p.copy_(v)
    return module


def _empty(builder):
    """Build on the meta device and allocate without running the (slow) initialisers."""
    with torch.device("meta"):
        m = builder()
    return m.to_empty(device="cpu").eval()


def _classifier(name: str, num_classes: int | None = None) -> Classifier:
    v = get_variant(name)
    return _empty(lambda: Classifier.from_arch(v.arch, num_classes or v.num_classes))


def _tiny_v1() -> Classifier:
    """A 4-block MViTv1 video classifier (v1 rules: abs pos tables, width change in the MLP)."""
    arch = mvitv1_video(depths=(1, 2, 1), num_frames=4, embed_dim=16, spatial_size=(32, 32))
    return _empty(lambda: Classifier.from_arch(arch, 5))


def _save_pyth(path, model_state) -> None:
    """A PySlowFast / mvit checkpoint file (``slowfast/utils/checkpoint.py::save_checkpoint``)."""
    torch.save(
        {"epoch": 1, "model_state": model_state, "optimizer_state": {},
         "cfg": "MVIT:\n  DEPTH: 16\n"},
        path,
    )


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def _proj_blocks(sd):
    return _blocks_with(sd, "proj.weight")


def _blocks_with(sd, suffix):
    return sorted(int(m.group(1)) for k in sd
                  if (m := re.match(rf"blocks\.(\d+)\.{re.escape(suffix)}$", k)))


# --------------------------------------------------------------- SlowFast key tables (expected)
# (key, shape) exactly as a SlowFast MViTv2-S 16x4 K400 checkpoint stores them.
SLOWFAST_V2_S = {
    "patch_embed.proj.weight": (96, 3, 3, 7, 7),
    "patch_embed.proj.bias": (96,),
    "cls_token": (1, 1, 96),
    "blocks.0.norm1.weight": (96,),
    "blocks.0.attn.qkv.weight": (288, 96),
    "blocks.0.attn.qkv.bias": (288,),
    "blocks.0.attn.proj.weight": (96, 96),
    "blocks.0.attn.pool_q.weight": (96, 1, 3, 3, 3),  # every v2 block pools q (stride 1 here)
    "blocks.0.attn.norm_q.weight": (96,),
    "blocks.0.attn.pool_k.weight": (96, 1, 3, 3, 3),
    "blocks.0.attn.pool_v.weight": (96, 1, 3, 3, 3),
    "blocks.0.attn.rel_pos_h": (111, 96),  # 2 * max(56 // 1, 56 // 8) - 1
    "blocks.0.attn.rel_pos_w": (111, 96),
    "blocks.0.attn.rel_pos_t": (15, 96),  # 2 * 8 - 1
    "blocks.0.mlp.fc1.weight": (384, 96),
    "blocks.0.mlp.fc2.weight": (96, 384),
    "blocks.1.attn.qkv.weight": (576, 96),  # DIM_MUL_IN_ATT: 96 -> 192 inside attention
    "blocks.1.attn.proj.weight": (192, 192),
    "blocks.1.attn.pool_q.weight": (96, 1, 3, 3, 3),  # head_dim stays 96
    "blocks.1.attn.rel_pos_h": (55, 96),  # 2 * max(56 // 2, 56 // 4) - 1
    "blocks.1.proj.weight": (192, 96),
    "blocks.1.norm2.weight": (192,),
    "blocks.1.mlp.fc1.weight": (768, 192),
    "blocks.3.attn.rel_pos_h": (27, 96),
    "blocks.3.proj.weight": (384, 192),
    "blocks.14.attn.qkv.weight": (2304, 384),
    "blocks.14.attn.rel_pos_h": (27, 96),  # 2 * max(14 // 2, 14 // 1) - 1
    "blocks.14.proj.weight": (768, 384),
    "blocks.15.attn.rel_pos_h": (13, 96),
    "blocks.15.attn.rel_pos_t": (15, 96),
    "norm.weight": (768,),
    "norm.bias": (768,),
    "head.projection.weight": (400, 768),
    "head.projection.bias": (400,),
}

# MViTv1-B 16x4 K400 (``MVIT_B_16x4_CONV``): separate abs position tables, v1 width rule.
SLOWFAST_V1_B = {
    "patch_embed.proj.weight": (96, 3, 3, 7, 7),
    "cls_token": (1, 1, 96),
    "pos_embed_spatial": (1, 3136, 96),
    "pos_embed_temporal": (1, 8, 96),
    "pos_embed_class": (1, 1, 96),
    "blocks.0.attn.qkv.weight": (288, 96),
    "blocks.0.attn.pool_k.weight": (96, 1, 3, 3, 3),
    "blocks.0.norm2.weight": (96,),
    "blocks.0.mlp.fc2.weight": (192, 384),  # v1: the MLP changes the width ...
    "blocks.0.proj.weight": (192, 96),  # ... and the skip is proj(norm2(x))
    "blocks.1.attn.pool_q.weight": (96, 1, 3, 3, 3),
    "blocks.1.attn.qkv.weight": (576, 192),
    "blocks.13.proj.weight": (768, 384),
    "blocks.14.attn.pool_k.weight": (96, 1, 3, 3, 3),  # kv stride 1, kernel 3 still applied
    "blocks.15.attn.pool_v.weight": (96, 1, 3, 3, 3),
    "norm.weight": (768,),
    "head.projection.weight": (400, 768),
}


def test_slowfast_layout_mvitv2_s_16x4():
    sd = get_converter("slowfast").from_native(_classifier("mvitv2_s_16x4").state_dict())
    shapes = _shapes(sd)
    for k, shape in SLOWFAST_V2_S.items():
        assert shapes.get(k) == shape, (k, shapes.get(k), shape)
    assert _proj_blocks(sd) == [1, 3, 14]
    assert _blocks_with(sd, "attn.pool_q.weight") == list(range(16))
    assert not any(k.startswith("pos_embed") for k in sd)  # USE_ABS_POS: False
    assert not any(k.startswith("backbone.") or "scale" in k for k in sd)
    assert len(sd) == 397
    assert detect_source(sd) == "slowfast"
    _assert_maps_onto_torchvision(sd, "mvit_v2_s")


def test_slowfast_layout_mvit_b_16x4():
    sd = get_converter("slowfast").from_native(_classifier("mvit_b_16x4").state_dict())
    shapes = _shapes(sd)
    for k, shape in SLOWFAST_V1_B.items():
        assert shapes.get(k) == shape, (k, shapes.get(k), shape)
    assert _proj_blocks(sd) == [0, 2, 13]
    assert _blocks_with(sd, "attn.pool_q.weight") == [1, 3, 14]
    assert _blocks_with(sd, "attn.pool_k.weight") == list(range(16))
    assert not any("rel_pos" in k for k in sd)
    assert sum(v.numel() for v in sd.values()) == 36_610_672  # torchvision mvit_v1_b
    assert detect_source(sd) == "slowfast"
    _assert_maps_onto_torchvision(sd, "mvit_v1_b")


@pytest.mark.parametrize("name", ["mvitv2_s_16x4", "mvit_b_16x4"])
def test_slowfast_pyth_loads_with_identical_outputs_and_round_trips(tmp_path, name):
    src = _fill(_classifier(name))
    sf = get_converter("slowfast").from_native(src.state_dict())
    path = str(tmp_path / "k400.pyth")
    _save_pyth(path, sf)

    dst = _classifier(name)
    report = load_weights(dst, path)  # strict, source auto-detected
    assert report.source == "slowfast" and not report.notes and not report.missing
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))

    # round trip slowfast -> native -> slowfast: the same keys and the same tensors
    native, source = convert_state_dict(load_checkpoint_file(path), "auto")
    back = get_converter("slowfast").from_native(native)
    assert source == "slowfast" and back.keys() == sf.keys()
    assert all(torch.equal(back[k], sf[k]) for k in sf)


def test_slowfast_separate_qkv_is_fused(tmp_path):
    """SEPARATE_QKV (POOL_FIRST off) checkpoints: q/k/v rows concatenate into qkv."""
    src = _fill(_tiny_v1())
    sf = get_converter("slowfast").from_native(src.state_dict())
    split = {}
    for k, v in sf.items():
        m = re.match(r"(blocks\.\d+\.attn)\.qkv\.(weight|bias)$", k)
        if m:
            for name, part in zip("qkv", v.chunk(3, dim=0)):
                split[f"{m.group(1)}.{name}.{m.group(2)}"] = part.clone()
        else:
            split[k] = v
    assert "blocks.0.attn.q.weight" in split and "blocks.0.attn.qkv.weight" not in split
    assert detect_source(split) == "slowfast"
    path = str(tmp_path / "split.pyth")
    _save_pyth(path, split)
    dst = _tiny_v1()
    load_weights(dst, path)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    incomplete = {k: v for k, v in split.items() if k != "blocks.2.attn.v.bias"}
    with pytest.raises(ValueError, match="blocks.2.attn"):
        get_converter("slowfast").to_native(incomplete)


def test_slowfast_patch_2d_image_model():
    """SlowFast ImageNet configs (PATCH_2D): Conv2d stem, Conv3d (1x3x3) pooling -> 'slowfast'."""
    sf = get_converter("slowfast").from_native(_classifier("mvitv2_t").state_dict())
    sf["patch_embed.proj.weight"] = sf["patch_embed.proj.weight"][:, :, 0]  # Conv2d stem
    assert sf["blocks.0.attn.pool_q.weight"].shape == (96, 1, 1, 3, 3)
    assert detect_source(sf) == "slowfast"
    native = get_converter("slowfast").to_native(sf)
    assert native["backbone.patch_embed.proj.weight"].shape == (96, 3, 1, 7, 7)


def _slowfast_to_torchvision(sd, target):
    """The key renames of the script that ported SlowFast's MViTv2-S weights to torchvision
    (pytorch/vision PR #6373); tables are reshaped to torchvision's shapes."""
    rules = [
        (r"^patch_embed\.proj\.", "conv_proj."),
        (r"^cls_token$", "pos_encoding.class_token"),
        (r"^pos_embed_spatial$", "pos_encoding.spatial_pos"),
        (r"^pos_embed_temporal$", "pos_encoding.temporal_pos"),
        (r"^pos_embed_class$", "pos_encoding.class_pos"),
        (r"\.attn\.proj\.", ".attn.project.0."),
        (r"\.attn\.pool_([qkv])\.weight$", r".attn.pool_\1.pool.weight"),
        (r"\.attn\.norm_([qkv])\.", r".attn.pool_\1.norm_act.0."),
        (r"\.mlp\.fc1\.", ".mlp.0."),
        (r"\.mlp\.fc2\.", ".mlp.3."),
        (r"^(blocks\.\d+)\.proj\.", r"\1.project."),
        (r"^head\.projection\.", "head.1."),
    ]
    out = {}
    for k, v in sd.items():
        for pat, rep in rules:
            k = re.sub(pat, rep, k)
        out[k] = v.reshape(target[k].shape) if k in target else v
    return out


def _assert_maps_onto_torchvision(sd, builder: str) -> None:
    """Every SlowFast key maps onto the torchvision model (weights ported from SlowFast) with
    the element count torchvision expects, and nothing is left over."""
    import torchvision.models.video as tvv

    with torch.device("meta"):
        target = getattr(tvv, builder)(num_classes=400).state_dict()
    mapped = _slowfast_to_torchvision(sd, target)
    assert mapped.keys() == target.keys()
    assert all(mapped[k].numel() == target[k].numel() for k in target)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_slowfast_layout_matches_torchvision_port(version):
    """torchvision's MViT was checked against SlowFast with the PR #6373 renames; a SlowFast
    state dict in our export must load strictly through them and give the same logits."""
    from torchvision.models.video.mvit import MSBlockConfig
    from torchvision.models.video.mvit import MViT as TorchvisionMViT

    make = mvitv1_video if version == "v1" else mvitv2_video
    arch = make(depths=(1, 2, 1), num_frames=4, embed_dim=16, spatial_size=(32, 32),
                pool_kv_stride_adaptive=(1, 4, 4))
    ours = _fill(_empty(lambda: Classifier.from_arch(arch, 7)))
    setting = [
        MSBlockConfig(s.num_heads, s.dim_in, s.dim_out, list(s.kernel_q or (1, 1, 1)),
                      list(s.kernel_kv or (1, 1, 1)), list(s.stride_q), list(s.stride_kv))
        for s in arch.block_specs()
    ]
    v2 = version == "v2"
    peer = TorchvisionMViT((32, 32), 4, setting, residual_pool=v2, residual_with_cls_embed=False,
                           rel_pos_embed=v2, proj_after_attn=v2, num_classes=7).eval()
    sd = get_converter("slowfast").from_native(ours.state_dict())
    peer.load_state_dict(_slowfast_to_torchvision(sd, peer.state_dict()), strict=True)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ mvit image format (4-D)
MVIT_V2_T = {
    "patch_embed.proj.weight": (96, 3, 7, 7),  # Conv2d
    "blocks.0.attn.pool_q.weight": (96, 1, 3, 3),  # Conv2d depthwise
    "blocks.0.attn.pool_k.weight": (96, 1, 3, 3),
    "blocks.0.attn.rel_pos_h": (111, 96),  # 2 * max(56, 56 // 4) - 1
    "blocks.1.attn.rel_pos_h": (55, 96),
    "blocks.1.proj.weight": (192, 96),
    "blocks.8.proj.weight": (768, 384),
    "blocks.9.attn.rel_pos_w": (13, 96),
    "norm.weight": (768,),
    "head.projection.weight": (1000, 768),
}


def test_mvit_image_layout_and_detection():
    conv = get_converter("mvit")
    sd = conv.from_native(_fill(_classifier("mvitv2_t")).state_dict())
    shapes = _shapes(sd)
    for k, shape in MVIT_V2_T.items():
        assert shapes.get(k) == shape, (k, shapes.get(k), shape)
    assert _proj_blocks(sd) == [1, 3, 8]
    assert "cls_token" not in sd and not any(k.endswith("rel_pos_t") for k in sd)
    assert detect_source(sd) == "mvit"
    # a Conv3d (T=1) save of the same model (CHECKPOINT_SQUEEZE_TEMPORAL files): 'slowfast',
    # and it converts to the same native state dict
    sd5 = {k: (v.unsqueeze(2) if v.ndim == 4 else v) for k, v in sd.items()}
    assert detect_source(sd5) == "slowfast"
    a, b = conv.to_native(sd), get_converter("slowfast").to_native(sd5)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name,classes", [("mvitv2_t", 1000), ("mvitv2_s_cls", 1000)])
def test_mvit_pyth_loads_with_identical_outputs_and_round_trips(tmp_path, name, classes):
    src = _fill(_classifier(name, classes))
    sd = get_converter("mvit").from_native(src.state_dict())
    assert sd["patch_embed.proj.weight"].ndim == 4
    assert ("cls_token" in sd) == name.endswith("_cls")
    path = str(tmp_path / "in1k.pyth")
    _save_pyth(path, sd)
    dst = _classifier(name, classes)
    assert load_weights(dst, path).source == "mvit"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    native, _ = convert_state_dict(load_checkpoint_file(path))
    back = get_converter("mvit").from_native(native)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


def test_mvit_in21k_cls_layout():
    """IN-21K ``MViTv2_B_in21k.pyth`` form: cls token, 19168 classes (timm mvitv2_base_cls)."""
    with torch.device("meta"):
        m = Classifier.from_arch(get_variant("mvitv2_b_cls").arch, 19168)
        sd = get_converter("mvit").from_native(m.state_dict())
    shapes = _shapes(sd)
    assert shapes["cls_token"] == (1, 1, 96)
    assert shapes["head.projection.weight"] == (19168, 768)
    assert shapes["blocks.2.proj.weight"] == (192, 96)
    assert _proj_blocks(sd) == [2, 5, 21]
    assert sum(v.numel() for v in sd.values()) == 65_444_032  # timm mvitv2_base_cls
    assert detect_source(sd) == "mvit"


def test_mvit_export_refuses_video_models():
    with pytest.raises(ValueError, match="temporal kernel"):
        get_converter("mvit").from_native(_classifier("mvitv2_s_16x4").state_dict())


@pytest.mark.slow
@pytest.mark.parametrize(
    "ours,theirs", [("mvitv2_t", "mvitv2_tiny"), ("mvitv2_s_cls", "mvitv2_small_cls")]
)
def test_mvit_format_matches_timm(ours, theirs):
    """Our export in the mvit layout loads strictly into timm (via the filter timm uses for the
    released ``.pyth`` URLs) and both models give the same logits."""
    timm = pytest.importorskip("timm")
    from timm.models.mvitv2 import checkpoint_filter_fn

    model = _fill(_classifier(ours, 1000))
    sd = get_converter("mvit").from_native(model.state_dict())
    peer = timm.create_model(theirs, pretrained=False).eval()
    peer.load_state_dict(checkpoint_filter_fn({"model_state": sd}, peer), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), peer(x), rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------- detectron2
# detectron2 keys outside the MViT, which the converter passes through for the COCO project
D2_OTHER = {
    "backbone.fpn_lateral2.weight": (256, 96, 1, 1),
    "backbone.fpn_output5.bias": (256,),
    "proposal_generator.rpn_head.conv.weight": (256, 256, 3, 3),
    "roi_heads.box_predictor.cls_score.weight": (81, 1024),
}


def _d2_model_dict(backbone: MViT) -> dict:
    """detectron2 names for our backbone (module attributes of detectron2's MViT), 2-D convs."""
    out = {}
    for k, v in backbone.state_dict().items():
        if k == "patch_embed.proj.weight" or re.search(r"attn\.pool_[qkv]\.weight$", k):
            assert v.shape[2] == 1
            v = v[:, :, 0]
        out["backbone.bottom_up." + k] = v.numpy().copy()
    rng = np.random.default_rng(0)
    for k, shape in D2_OTHER.items():
        out[k] = rng.standard_normal(shape).astype(np.float32)
    return out


D2_MVITV2_T = {
    "backbone.bottom_up.patch_embed.proj.weight": (96, 3, 7, 7),
    "backbone.bottom_up.blocks.0.attn.pool_q.weight": (96, 1, 3, 3),
    "backbone.bottom_up.blocks.0.attn.rel_pos_h": (111, 96),  # input 56, kv stride 4
    "backbone.bottom_up.blocks.1.attn.rel_pos_h": (55, 96),  # q stride 2: 28, kv stride 2: 28
    "backbone.bottom_up.blocks.1.proj.weight": (192, 96),
    "backbone.bottom_up.blocks.2.attn.rel_pos_w": (55, 96),  # global block, kv stride doubled
    "backbone.bottom_up.blocks.7.attn.rel_pos_h": (27, 96),  # global block, kv stride 2
    "backbone.bottom_up.blocks.8.attn.rel_pos_h": (27, 96),
    "backbone.bottom_up.blocks.9.attn.rel_pos_h": (13, 96),
    "backbone.bottom_up.blocks.9.attn.qkv.weight": (2304, 768),
    "backbone.bottom_up.scale2_norm.weight": (96,),
    "backbone.bottom_up.scale3_norm.weight": (192,),
    "backbone.bottom_up.scale4_norm.weight": (384,),
    "backbone.bottom_up.scale5_norm.bias": (768,),
}


class _Detector(nn.Module):
    """Stand-in for a detection model: the backbone under ``backbone.``."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = MViT(get_variant("mvitv2_t_coco").arch)


def test_detectron2_pkl_loads_with_identical_multiscale_outputs(tmp_path):
    src = _fill(_empty(_Detector))
    model = _d2_model_dict(src.backbone)
    shapes = _shapes(model)
    for k, shape in D2_MVITV2_T.items():
        assert shapes.get(k) == shape, (k, shapes.get(k), shape)
    assert _proj_blocks({k[len("backbone.bottom_up."):]: v for k, v in model.items()
                         if k.startswith("backbone.bottom_up.")}) == [1, 3, 8]
    path = str(tmp_path / "model_final.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "test"}, f)

    obj = load_checkpoint_file(path)  # restricted unpickler: numpy arrays only
    native, source = convert_state_dict(obj)
    assert source == "detectron2"
    for k in D2_OTHER:
        assert torch.equal(native[k], torch.from_numpy(model[k]))  # passed through unchanged
    assert native["backbone.patch_embed.proj.weight"].shape == (96, 3, 1, 7, 7)
    assert not any(k.startswith("backbone.bottom_up.") for k in native)

    dst = _empty(_Detector)
    report = load_weights(dst, path, allow_unexpected=["backbone.fpn_", "proposal_generator.",
                                                        "roi_heads."])
    assert len(report.unexpected) == 4 and not report.notes
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = src.backbone(x), dst.backbone(x)
    assert list(a) == ["scale2", "scale3", "scale4", "scale5"]
    for name in a:
        assert torch.equal(a[name], b[name]), name

    back = get_converter("detectron2").from_native(native)
    assert back.keys() == model.keys()
    assert all(np.array_equal(back[k].numpy(), model[k]) for k in model)


def test_detectron2_detection_and_pos_embed():
    conv = get_converter("detectron2")
    with torch.device("meta"):
        bb = MViT(get_variant("mvitv2_t_coco").arch)
    sd = {"backbone.bottom_up." + k: torch.zeros(v.shape) for k, v in bb.state_dict().items()}
    sd["backbone.bottom_up.pos_embed"] = torch.randn(1, 56 * 56 + 1, 96)  # pretrain cls row
    assert detect_source(sd) == "detectron2"
    native = conv.to_native(sd)
    assert native["backbone.pos_embed"].shape == (1, 3136, 96)
    assert torch.equal(native["backbone.pos_embed"], sd["backbone.bottom_up.pos_embed"][:, 1:])
    back = conv.from_native(native)
    assert back["backbone.bottom_up.pos_embed"].shape == (1, 3137, 96)
    assert torch.equal(back["backbone.bottom_up.pos_embed"][:, 1:], native["backbone.pos_embed"])
    with pytest.raises(ValueError, match="cls_token"):  # a video classifier has no d2 form
        conv.from_native(_classifier("mvitv2_s_16x4").state_dict())
    # keys neither of the MViT nor named like detectron2's detector modules: refused by name
    with pytest.raises(ValueError, match=r"2 keys have no detectron2 name: head\.projection"):
        conv.from_native({**native, "head.projection.weight": torch.zeros(2, 96),
                          "head.projection.bias": torch.zeros(2)})
    passed = {**native, "backbone.fpn_lateral2.weight": torch.zeros(1),
              "roi_heads.box_predictor.0.cls_score.bias": torch.zeros(1)}
    assert set(conv.from_native(passed)) == set(back) | set(passed) - set(native)
    assert is_detectron2_detector({**sd, "roi_heads.mask_head.predictor.weight": 0})
    assert not is_detectron2_detector({**sd, "pixel_mean": 0})


def test_converters_do_not_claim_each_other():
    v2s = _classifier("mvitv2_s_16x4").state_dict()
    assert detect_source(v2s) == "native"
    sf = get_converter("slowfast").from_native(v2s)
    z, z4 = torch.zeros(1), torch.zeros(1, 1, 1, 1)
    for foreign in (
        {"stages.0.blocks.0.attn.qkv.weight": z, "patch_embed.proj.weight": z4},  # timm
        {"conv_proj.weight": z, "blocks.0.attn.qkv.weight": z},  # torchvision
        {"patch_embed.patch_model.weight": z, "blocks.0.attn.q.weight": z},  # pytorchvideo
        {"backbone.bottom_up.patch_embed.proj.weight": z4,
         "backbone.bottom_up.blocks.0.attn.qkv.weight": z},  # detectron2
        v2s,
    ):
        assert not get_converter("slowfast").detect(foreign)
        assert not get_converter("mvit").detect(foreign)
    assert not get_converter("detectron2").detect(sf)
    assert not get_converter("detectron2").detect(v2s)


@pytest.mark.parametrize("other", ["torchvision", "timm", "pytorchvideo"])
def test_peer_layouts_are_not_claimed(other):
    """Exports by the other built-in converters are detected as theirs, never as ours."""
    try:
        conv = get_converter(other)
    except KeyError:
        pytest.skip(f"no '{other}' converter registered")
    for name in ("mvitv2_s_16x4", "mvit_b_16x4", "mvitv2_t", "mvitv2_s_cls"):
        with torch.device("meta"):
            native = Classifier.from_arch(get_variant(name).arch, 10).state_dict()
        try:
            sd = conv.from_native(native)
        except (NotImplementedError, ValueError):
            continue  # that layout cannot hold this model
        for mine in ("slowfast", "mvit", "detectron2"):
            assert not get_converter(mine).detect(sd), (other, name, mine)


# ---------------------------------------------------------------------------- unsafe pickles
class ArbitraryObject:
    """Not a tensor or container: needs full unpickling."""

    def __init__(self) -> None:
        self.note = "trained on 8 GPUs"


class _MakesADirectory:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_pyth_with_arbitrary_object_needs_opt_in(tmp_path):
    sf = get_converter("slowfast").from_native(_fill(_tiny_v1()).state_dict())
    path = str(tmp_path / "with_object.pyth")
    torch.save({"epoch": 3, "model_state": sf, "meta": ArbitraryObject()}, path)
    model = _tiny_v1()
    with pytest.raises(UnsafeCheckpointError) as err:
        load_weights(model, path)
    assert "--unsafe-pickle" in str(err.value) and "WEIGHTS_UNSAFE_PICKLE" in str(err.value)
    assert load_weights(model, path, allow_unsafe=True).source == "slowfast"


def test_malicious_pkl_is_refused_and_runs_nothing(tmp_path):
    marker = str(tmp_path / "pwned")
    path = str(tmp_path / "model_final.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": {"backbone.bottom_up.cls": np.zeros(3, np.float32)},
                     "__author__": _MakesADirectory(marker)}, f)
    with pytest.raises(UnsafeCheckpointError, match="--unsafe-pickle"):
        load_checkpoint_file(path)
    assert not os.path.exists(marker)
    # the explicit opt-in really unpickles (and so runs the payload): that is why it is opt-in
    obj = load_checkpoint_file(path, allow_unsafe=True)
    assert torch.equal(obj["model"]["backbone.bottom_up.cls"], torch.zeros(3))
    assert os.path.isdir(marker)
