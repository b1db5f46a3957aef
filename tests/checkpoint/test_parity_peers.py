"""Numerical parity with the installed peers: torchvision, timm and pytorchvideo MViTs.

Each peer is built randomly initialised, then every tensor is re-drawn with large, non-trivial
values (weights ~N(0, 0.2), LayerNorm weights U(0.5, 1.5) and biases U(-0.5, 0.5), other biases
U(-0.5, 0.5), rel-pos / cls / pos tables ~N(0, 0.5)) so that a wrong rel-pos, norm, pos-embed
or residual cannot hide. The peer's ``state_dict()`` goes through ``load_weights(source="auto")``
into our classifier of the matching variant; both run in eval mode on the same fp32 input.

Scale: these weights give logits up to ~20, where fp32 round-off alone reaches ~2e-5. The
logits are therefore divided by ``max(1, max |peer logit|)`` before the check, which keeps an
absolute bound of 1e-5 on a unit scale (equivalently 1e-5 relative to the largest logit).
In float64 torchvision and timm agree to ~1e-13, i.e. the semantics are identical.

pytorchvideo builds its pooling norms (``attn.norm_{q,k,v}``) with eps 1e-5 where SlowFast and
ours use 1e-6; the parity check sets the peer's eps to 1e-6 and a second check bounds the
effect of the original eps (float64: ~1e-5 on logits of ~20, i.e. ~1e-6 relative).
"""
from __future__ import annotations

from typing import Callable, Tuple

import pytest
import torch
from torch import nn

from mvit_tasks.checkpoint.converters import detect_source
from mvit_tasks.checkpoint.loader import load_weights
from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.backbone.families import mvitv1_video, mvitv2_image
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.meta_arch import Classifier

ATOL = 1e-5
POOL_NORMS = ("norm_q", "norm_k", "norm_v")
SLOW = pytest.mark.slow
VIDEO = (1, 3, 16, 224, 224)
IMAGE = (2, 3, 224, 224)


# ------------------------------------------------------------------------------------ helpers
def reinit_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter of ``model`` with large non-trivial values (see module doc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm_params = set()
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
                norm_params.update((id(m.weight), id(m.bias)))
        for name, p in model.named_parameters():
            if id(p) in norm_params:
                continue
            leaf = name.rsplit(".", 1)[-1]
            if "rel_pos" in leaf or "pos" in leaf or "token" in leaf:
                p.normal_(0.0, 0.5, generator=g)
            elif p.ndim >= 2:
                p.normal_(0.0, 0.2, generator=g)
            else:
                p.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def ours_from(arch: MViTArch, num_classes: int) -> Classifier:
    """Our classifier, allocated without running its initialisers (every tensor gets loaded)."""
    with torch.device("meta"):
        model = Classifier.from_arch(arch, num_classes, dropout=0.0)
    return model.to_empty(device="cpu").eval()


def compare(peer: nn.Module, ours: nn.Module, shape: Tuple[int, ...], seed: int = 1) -> float:
    """Run both on the same input; assert scaled logits agree to ATOL; return max abs diff."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        theirs = peer(x)
        mine = ours(x)
    assert mine.shape == theirs.shape
    scale = max(1.0, theirs.abs().max().item())
    torch.testing.assert_close(mine / scale, theirs / scale, rtol=0, atol=ATOL)
    return (mine - theirs).abs().max().item()


def convert_into(peer: nn.Module, ours: nn.Module, source: str) -> None:
    sd = peer.state_dict()
    assert detect_source(sd) == source
    report = load_weights(ours, sd, source="auto")
    assert report.source == source
    assert not report.missing and not report.unexpected, report.summary()
    assert not report.notes, report.summary()  # same geometry: nothing may need resizing


def set_pool_norm_eps_(peer: nn.Module, eps: float) -> None:
    """pytorchvideo: set the eps of the ``attn.norm_{q,k,v}`` LayerNorms."""
    for name, m in peer.named_modules():
        if isinstance(m, nn.LayerNorm) and name.rsplit(".", 1)[-1] in POOL_NORMS:
            m.eps = eps


# ------------------------------------------------------------------------- full-size peers
def _tv_v1() -> nn.Module:
    from torchvision.models.video import mvit_v1_b

    return mvit_v1_b(num_classes=400)


def _tv_v2() -> nn.Module:
    from torchvision.models.video import mvit_v2_s

    return mvit_v2_s()


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        timm = pytest.importorskip("timm")
        return timm.create_model(name)

    return build


FULL = [
    pytest.param(_tv_v1, "torchvision", "mvit_b_16x4", 400, VIDEO, marks=SLOW, id="tv-mvit_v1_b"),
    pytest.param(_tv_v2, "torchvision", "mvitv2_s_16x4", 400, VIDEO, marks=SLOW, id="tv-mvit_v2_s"),
    pytest.param(_timm("mvitv2_tiny"), "timm", "mvitv2_t", 1000, IMAGE, id="timm-mvitv2_tiny"),
    pytest.param(_timm("mvitv2_small_cls"), "timm", "mvitv2_s_cls", 1000, IMAGE,
                 id="timm-mvitv2_small_cls"),
]


@pytest.mark.parametrize("build, source, variant, num_classes, shape", FULL)
def test_full_size_parity(build, source, variant, num_classes, shape):
    peer = reinit_(build())
    ours = ours_from(get_variant(variant).arch, num_classes)
    convert_into(peer, ours, source)
    compare(peer, ours, shape)


@pytest.mark.slow
def test_full_size_parity_pytorchvideo_mvit_base_16x4():
    hub = pytest.importorskip("pytorchvideo.models.hub")
    peer = reinit_(hub.mvit_base_16x4())
    ours = ours_from(get_variant("mvit_b_16x4").arch, 400)
    convert_into(peer, ours, "pytorchvideo")
    x = torch.randn(VIDEO, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine, theirs_eps5 = ours(x), peer(x)
    # pytorchvideo's own pooling-norm eps (1e-5): close, but only to ~1e-6 relative
    scale = theirs_eps5.abs().max().item()
    assert (mine - theirs_eps5).abs().max().item() / scale < 1e-4
    set_pool_norm_eps_(peer, 1e-6)
    compare(peer, ours, VIDEO)


# ------------------------------------------------------------------ tiny peers (fast, default)
def _timm_tiny(cls_token: bool, abs_pos: bool, expand_attn: bool) -> nn.Module:
    mvitv2 = pytest.importorskip("timm.models.mvitv2")
    cfg = mvitv2.MultiScaleVitCfg(depths=(1, 2, 1, 1), embed_dim=32, num_heads=1,
                                  use_cls_token=cls_token, use_abs_pos=abs_pos,
                                  expand_attn=expand_attn)
    return mvitv2.MultiScaleVit(cfg, img_size=64, num_classes=7)


@pytest.mark.parametrize("cls_token, abs_pos, expand_attn", [
    pytest.param(True, False, False, id="cls-expand_mlp"),
    pytest.param(False, False, True, id="nocls-expand_attn"),
    pytest.param(True, True, True, id="cls-abspos"),
])
def test_tiny_timm_parity(cls_token, abs_pos, expand_attn):
    """Covers ``shortcut_proj_mlp`` (timm ``expand_attn=False``, e.g. mvitv2_large) and the
    joint ``pos_embed`` with a cls row, which no registered full-size timm model has."""
    peer = reinit_(_timm_tiny(cls_token, abs_pos, expand_attn))
    arch = mvitv2_image(depths=(1, 2, 1, 1), embed_dim=32, spatial_size=(64, 64),
                        cls_embed=cls_token, use_abs_pos=abs_pos, dim_mul_in_att=expand_attn)
    ours = ours_from(arch, 7)
    convert_into(peer, ours, "timm")
    compare(peer, ours, (2, 3, 64, 64))


def _ptv_tiny(cls: bool, sep_pos: bool) -> nn.Module:
    vt = pytest.importorskip("pytorchvideo.models.vision_transformers")
    return vt.create_multiscale_vision_transformers(
        spatial_size=32, temporal_size=4, cls_embed_on=cls, sep_pos_embed=sep_pos, depth=4,
        patch_embed_dim=16, embed_dim_mul=[[1, 2.0], [3, 2.0]], atten_head_mul=[[1, 2.0], [3, 2.0]],
        pool_q_stride_size=[[1, 1, 2, 2], [3, 1, 2, 2]], pool_kv_stride_adaptive=[1, 4, 4],
        pool_kvq_kernel=[3, 3, 3], head_num_classes=7,
    )


def _ptv_tiny_arch(**kw) -> MViTArch:
    return mvitv1_video(depths=(1, 2, 1), num_frames=4, embed_dim=16, spatial_size=(32, 32),
                        pool_kv_stride_adaptive=(1, 4, 4), **kw)


@pytest.mark.parametrize("cls, sep_pos", [(True, True), (False, False)],
                         ids=["cls-sep_pos", "mean-joint_pos"])
def test_tiny_pytorchvideo_parity(cls, sep_pos):
    peer = reinit_(_ptv_tiny(cls, sep_pos))
    arch = _ptv_tiny_arch(cls_embed=cls, sep_pos_embed=sep_pos)
    ours = ours_from(arch, 7)
    convert_into(peer, ours, "pytorchvideo")
    set_pool_norm_eps_(peer, 1e-6)
    compare(peer, ours, (2, 3, 4, 32, 32))


def test_pytorchvideo_pool_norm_eps_is_the_only_difference():
    """In float64 the tiny pytorchvideo model matches ours to ~1e-12 once its ``norm_{q,k,v}``
    eps is 1e-6; with its own eps (1e-5) the logits differ measurably."""
    peer = reinit_(_ptv_tiny(True, True))
    arch = _ptv_tiny_arch()
    ours = ours_from(arch, 7)
    convert_into(peer, ours, "pytorchvideo")
    peer, ours = peer.double(), ours.double()
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        mine, theirs = ours(x), peer(x)
        set_pool_norm_eps_(peer, 1e-6)
        theirs_fixed = peer(x)
    assert (mine - theirs_fixed).abs().max().item() < 1e-10
    assert (mine - theirs).abs().max().item() > 1e-9
