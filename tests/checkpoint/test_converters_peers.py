"""torchvision / timm / pytorchvideo converters: detection, key layout, round trips, head re-init.

Peers are the installed libraries' own modules (allocated on the meta device and filled with
deterministic values, so no forward and no slow initialisers run); numerical parity lives in
``test_parity_peers.py``.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict

import pytest
import torch
from torch import nn

from mvit_tasks.checkpoint.converters import detect_source, get_converter
from mvit_tasks.checkpoint.loader import CheckpointMismatchError, load_weights
from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.backbone.families import mvitv2_image
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.meta_arch import Classifier
from mvit_tasks.registry import CONVERTER_REGISTRY

StateDict = Dict[str, torch.Tensor]


# ------------------------------------------------------------------------------------ helpers
def _materialise(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Build on the meta device, allocate, fill every tensor with seeded values."""
    with torch.device("meta"):
        m = build()
    m = m.to_empty(device="cpu").eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in m.state_dict().values():
            t.copy_(torch.randn(t.shape, generator=g))
    return m


def _ours(arch: MViTArch, num_classes: int) -> Classifier:
    return _materialise(lambda: Classifier.from_arch(arch, num_classes), seed=1)


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(name)

    return build


def _timm_tiny_expand_mlp() -> nn.Module:
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    cfg = MultiScaleVitCfg(depths=(1, 2, 1, 1), embed_dim=32, use_cls_token=True, use_abs_pos=True,
                           expand_attn=False)
    return MultiScaleVit(cfg, img_size=64, num_classes=7)


def _tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models.video as tvv

        return getattr(tvv, name)()

    return build


def _ptv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        hub = pytest.importorskip("pytorchvideo.models.hub")
        with torch.device("cpu"):  # its builder calls .item(), which meta tensors refuse
            return getattr(hub, name)()

    return build


_TINY_EXPAND_MLP = mvitv2_image(depths=(1, 2, 1, 1), embed_dim=32, spatial_size=(64, 64),
                                cls_embed=True, use_abs_pos=True, dim_mul_in_att=False)

_V = lambda name: get_variant(name).arch  # noqa: E731

# (id, peer builder, source, our arch, classes)
PAIRS = [
    ("tv-mvit_v1_b", _tv("mvit_v1_b"), "torchvision", get_variant("mvit_b_16x4").arch, 400),
    ("tv-mvit_v2_s", _tv("mvit_v2_s"), "torchvision", get_variant("mvitv2_s_16x4").arch, 400),
    ("timm-mvitv2_tiny", _timm("mvitv2_tiny"), "timm", get_variant("mvitv2_t").arch, 1000),
    ("timm-mvitv2_small_cls", _timm("mvitv2_small_cls"), "timm", _V("mvitv2_s_cls"), 1000),
    ("timm-tiny-expand_mlp", _timm_tiny_expand_mlp, "timm", _TINY_EXPAND_MLP, 7),
    ("ptv-mvit_base_16x4", _ptv("mvit_base_16x4"), "pytorchvideo", _V("mvit_b_16x4"), 400),
    ("ptv-mvit_base_32x3", _ptv("mvit_base_32x3"), "pytorchvideo", _V("mvit_b_32x3"), 400),
]
IDS = [p[0] for p in PAIRS]

_cache: Dict[str, nn.Module] = {}


@pytest.fixture(autouse=True, scope="module")
def _free_peers():
    yield
    _cache.clear()


def _peer(pair_id: str) -> nn.Module:
    if pair_id not in _cache:
        _cache[pair_id] = _materialise(next(p[1] for p in PAIRS if p[0] == pair_id))
    return _cache[pair_id]


def _assert_same_sd(a: StateDict, b: StateDict) -> None:
    assert sorted(a) == sorted(b), (sorted(set(a) - set(b))[:8], sorted(set(b) - set(a))[:8])
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


def _all_converters():
    get_converter("native")  # imports load_all: every converter that exists is registered
    return [c for _, c in CONVERTER_REGISTRY]


# -------------------------------------------------------------------------------- detection
@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_detected_as_own_source_and_nothing_else(pair):
    pair_id, _, source, _, _ = pair
    sd = _peer(pair_id).state_dict()
    claims = sorted(c.name for c in _all_converters() if c.detect(sd))
    assert claims == [source]
    assert detect_source(sd) == source


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_converted_and_exported_dicts_are_not_claimed_by_the_wrong_source(pair):
    pair_id, _, source, arch, classes = pair
    native = get_converter(source).to_native(_peer(pair_id).state_dict())
    assert detect_source(native) == "native"
    exported = get_converter(source).from_native(_ours(arch, classes).state_dict())
    assert detect_source(exported) == source
    for name in ("torchvision", "timm", "pytorchvideo"):
        assert get_converter(name).detect(native) is False


# ------------------------------------------------------------------------------- key layout
@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_to_native_matches_our_model_exactly(pair):
    """Every converted key exists in our classifier with the same shape, and vice versa."""
    pair_id, _, source, arch, classes = pair
    native = get_converter(source).to_native(_peer(pair_id).state_dict())
    ours = _ours(arch, classes).state_dict()
    assert sorted(native) == sorted(ours), (sorted(set(native) - set(ours))[:8],
                                            sorted(set(ours) - set(native))[:8])
    for k, v in native.items():
        assert v.shape == ours[k].shape, (k, tuple(v.shape), tuple(ours[k].shape))


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_from_native_loads_strictly_into_the_peer(pair):
    pair_id, _, source, arch, classes = pair
    exported = get_converter(source).from_native(_ours(arch, classes).state_dict())
    peer = copy.deepcopy(_peer(pair_id))
    peer.load_state_dict(exported, strict=True)
    _assert_same_sd(peer.state_dict(), exported)


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_round_trip_from_peer(pair):
    pair_id, _, source, _, _ = pair
    conv = get_converter(source)
    sd = _peer(pair_id).state_dict()
    _assert_same_sd(conv.from_native(conv.to_native(sd)), dict(sd))


@pytest.mark.parametrize("pair", PAIRS, ids=IDS)
def test_round_trip_from_native(pair):
    _, _, source, arch, classes = pair
    conv = get_converter(source)
    native = _ours(arch, classes).state_dict()
    _assert_same_sd(conv.to_native(conv.from_native(native)), dict(native))


def test_pytorchvideo_qkv_fusion_order():
    """Fused rows are q, then k, then v (what our attention's reshape expects)."""
    sd = _peer("ptv-mvit_base_16x4").state_dict()
    native = get_converter("pytorchvideo").to_native(sd)
    w = native["backbone.blocks.3.attn.qkv.weight"]
    q, k, v = w.chunk(3)
    assert torch.equal(q, sd["blocks.3.attn.q.weight"])
    assert torch.equal(k, sd["blocks.3.attn.k.weight"])
    assert torch.equal(v, sd["blocks.3.attn.v.weight"])


def test_timm_global_block_index():
    """``stages.S.blocks.B`` -> global index: mvitv2_tiny has depths (1, 2, 5, 2)."""
    native = get_converter("timm").to_native(_peer("timm-mvitv2_tiny").state_dict())
    sd = _peer("timm-mvitv2_tiny").state_dict()
    pairs = [("backbone.blocks.8.proj.weight", "stages.3.blocks.0.shortcut_proj_attn.weight"),
             ("backbone.blocks.9.mlp.fc2.bias", "stages.3.blocks.1.mlp.fc2.bias"),
             ("backbone.blocks.2.attn.rel_pos_h", "stages.1.blocks.1.attn.rel_pos_h")]
    for ours_key, timm_key in pairs:
        assert torch.equal(native[ours_key], sd[timm_key])
    assert native["backbone.blocks.0.attn.pool_q.weight"].shape == (96, 1, 1, 3, 3)


def test_exports_refuse_what_the_peer_cannot_hold():
    """A multi-scale (detection) backbone has per-stage norms that no peer layout can hold."""
    sd = {"backbone.scale2_norm.weight": torch.ones(96),
          "backbone.blocks.0.norm1.weight": torch.ones(96)}
    for name in ("torchvision", "timm", "pytorchvideo"):
        with pytest.raises(ValueError, match="scale2_norm"):
            get_converter(name).from_native(sd)


# ---------------------------------------------------------------------------- head re-init
def test_k400_torchvision_weights_into_a_10_class_head():
    sd = _peer("tv-mvit_v1_b").state_dict()  # torchvision mvit_v1_b: K400 head (400 classes)
    model = _ours(get_variant("mvit_b_16x4").arch, 10)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(model, sd)
    msg = str(err.value)
    assert "source: torchvision" in msg
    assert "head.projection.weight" in msg and "head.projection.bias" in msg
    assert "MODEL.WEIGHTS_ALLOW_MISSING" in msg
    report = load_weights(model, sd, allow_missing=["head."])
    assert report.source == "torchvision"
    assert sorted(report.missing) == ["head.projection.bias", "head.projection.weight"]
    loaded = model.state_dict()
    assert torch.equal(loaded["backbone.blocks.5.attn.qkv.weight"], sd["blocks.5.attn.qkv.weight"])
    cls = sd["pos_encoding.class_token"].reshape(1, 1, -1)
    assert torch.equal(loaded["backbone.cls_token"], cls)
    for k, v in head_before.items():  # the new head keeps its own initialisation
        assert torch.equal(loaded[k], v)
