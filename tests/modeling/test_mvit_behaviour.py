"""Backbone behaviour beyond peer parity: window attention, any input size, checkpointing, compile."""
import math

import pytest
import torch
import torch.nn.functional as F

from mvit_tasks.checkpoint.loader import load_weights
from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.layers.attention import MultiScaleAttention
from mvit_tasks.modeling.meta_arch import Classifier


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial weights so that position terms and norms matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _tiny_coco() -> MViTArch:
    return get_variant("mvitv2_t_coco").arch.shallow(2)


def test_window_attention_equals_global_when_one_window_covers_the_map():
    arch = _tiny_coco()
    win, glob = MViT(arch).eval(), MViT(arch.replace(window_size=0)).eval()
    _randomize(win)
    glob.load_state_dict(win.state_dict())
    x = torch.randn(1, 3, 224, 224)  # scale2 is 56 x 56 tokens = exactly one 56-token window
    with torch.no_grad():
        a, b = win(x), glob(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    x = torch.randn(1, 3, 320, 256)  # 80 x 64 tokens: several windows -> different result
    with torch.no_grad():
        assert not torch.allclose(win(x)["scale2"], glob(x)["scale2"], atol=1e-3)


def _naive_window_attention(attn: MultiScaleAttention, x: torch.Tensor, thw, win: int):
    """Reference: explicit per-window loops, zero-padded windows, explicit rel-pos lookups."""
    b, n, _ = x.shape
    nh, hd = attn.num_heads, attn.head_dim
    c = attn.att_dim
    qkv = attn.qkv(x)  # B x N x 3C (q | k | v)
    q, q_thw = attn.pool_q_tokens(qkv[..., :c], thw)  # B x Nq x nH x hd
    k, v, k_thw = attn.pool_kv_tokens(qkv[..., c:], thw)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # B x nH x N x hd
    (_, qh, qw), (_, kh, kw) = q_thw, k_thw
    wq, wk = win // attn.stride_q[1], win // attn.stride_kv[1]

    def grid(t, h, w, wsz):
        t = t.reshape(b, nh, h, w, hd)
        return F.pad(t, (0, 0, 0, (-w) % wsz, 0, (-h) % wsz))

    qg, kg, vg = grid(q, qh, qw, wq), grid(k, kh, kw, wk), grid(v, kh, kw, wk)
    out = torch.zeros_like(qg)
    table_len = 2 * max(wq, wk) - 1

    def resized(p):
        return F.interpolate(p.t()[None], size=table_len, mode="linear")[0].t() if p.shape[0] != table_len else p

    rh, rw = resized(attn.rel_pos_h), resized(attn.rel_pos_w)
    qr, kr = max(wk / wq, 1.0), max(wq / wk, 1.0)
    for wi in range(qg.shape[2] // wq):
        for wj in range(qg.shape[3] // wq):
            qq = qg[:, :, wi * wq:(wi + 1) * wq, wj * wq:(wj + 1) * wq].reshape(b, nh, -1, hd)
            kk = kg[:, :, wi * wk:(wi + 1) * wk, wj * wk:(wj + 1) * wk].reshape(b, nh, -1, hd)
            vv = vg[:, :, wi * wk:(wi + 1) * wk, wj * wk:(wj + 1) * wk].reshape(b, nh, -1, hd)
            logits = (qq * attn.scale) @ kk.transpose(-2, -1)
            for i in range(wq * wq):
                for j in range(wk * wk):
                    (ih, iw), (jh, jw) = divmod(i, wq), divmod(j, wk)
                    dh = int(ih * qr - jh * kr + (wk - 1) * kr)
                    dw = int(iw * qr - jw * kr + (wk - 1) * kr)
                    logits[:, :, i, j] += (qq[:, :, i] * rh[dh]).sum(-1) + (qq[:, :, i] * rw[dw]).sum(-1)
            o = logits.softmax(-1) @ vv
            out[:, :, wi * wq:(wi + 1) * wq, wj * wq:(wj + 1) * wq] = o.reshape(b, nh, wq, wq, hd)
    out = out[:, :, :qh, :qw].reshape(b, nh, qh * qw, hd) + q  # residual pooling
    return attn.proj(out.transpose(1, 2).reshape(b, -1, attn.att_dim)), q_thw


@pytest.mark.parametrize("block", [0, 1])
def test_window_attention_matches_naive_reference(block):
    torch.manual_seed(0)
    arch = _tiny_coco().replace(window_size=8, spatial_size=(64, 64))
    model = MViT(arch)
    _randomize(model)
    attn = model.blocks[block].attn
    spec = model.specs[block]
    assert spec.window_size == 8
    thw = (1, 14, 10)  # not a multiple of the window: padding path
    x = torch.randn(2, math.prod(thw), spec.dim_in)
    with torch.no_grad():
        ours, ours_thw = attn(x, thw)
        ref, ref_thw = _naive_window_attention(attn, x, thw, 8)
    assert ours_thw == ref_thw
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,shape", [
    ("mvitv2_s_16x4", (1, 3, 8, 160, 192)),
    ("mvit_b_16x4", (1, 3, 6, 96, 128)),
    ("mvitv2_t", (1, 3, 160, 224)),
])
def test_any_input_size_runs(name, shape):
    model = Classifier.from_arch(get_variant(name).arch.shallow(1), 3).eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (1, 3)


@pytest.mark.parametrize("name", ["mvitv2_s_16x4", "mvit_b_16x4"])
def test_load_time_and_run_time_resizing_agree(name):
    """Built for 224 and run at 128 == built for 128 with the tables resized when loading."""
    big_arch = get_variant(name).arch.shallow(1).replace(num_frames=4)
    big = Classifier.from_arch(big_arch, 5).eval()
    _randomize(big)
    small = Classifier.from_arch(big_arch.replace(spatial_size=(128, 128), num_frames=8), 5).eval()
    report = load_weights(small, big.state_dict())
    assert any("resized" in n for n in report.notes)
    x = torch.randn(1, 3, 8, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(small(x), big(x), rtol=1e-4, atol=1e-4)


def test_activation_checkpointing_gives_same_outputs_and_grads():
    arch = get_variant("mvitv2_s_16x4").arch.shallow(1).replace(out_features=("scale5",))
    plain = MViT(arch)
    ckpt = MViT(arch.replace(act_checkpoint=True))
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 4, 64, 64)
    outs = []
    for m in (plain, ckpt):
        y = m(x)["scale5"]
        y.square().mean().backward()
        outs.append((y.detach(), [p.grad.clone() for p in m.parameters()]))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for g1, g2 in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_drop_path_is_stochastic_in_training_only():
    m = MViT(get_variant("mvitv2_t").arch.shallow(1).replace(drop_path_rate=0.9))
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(0)
    a = m(x)["scale5"]
    b = m(x)["scale5"]
    assert not torch.allclose(a, b)
    m.eval()
    torch.testing.assert_close(m(x)["scale5"], m(x)["scale5"])


def test_bad_input_rank_is_rejected():
    m = MViT(get_variant("mvitv2_t").arch.shallow(1))
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        m(torch.randn(3, 64, 64))


def test_traces_without_graph_breaks():
    import torch._dynamo

    m = Classifier.from_arch(get_variant("mvitv2_s_16x4").arch.shallow(1), 4).eval()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(m)(torch.randn(1, 3, 4, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.slow
def test_torch_compile_matches_eager():
    m = Classifier.from_arch(get_variant("mvitv2_s_16x4").arch.shallow(1), 4).eval()
    x = torch.randn(1, 3, 4, 64, 64)
    torch._dynamo.reset()
    compiled = torch.compile(m)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), m(x), rtol=1e-4, atol=1e-4)


def test_stage_names_follow_strides_for_a_three_stage_model():
    """MViT-S-like layout (patch stride 8, three stages): names are scale3..scale5, not by index."""
    arch = MViTArch(patch_kernel=(3, 8, 8), patch_stride=(2, 8, 8), patch_padding=(1, 0, 0),
                    embed_dim=32, depth=3, dim_mul=[[1, 2.0], [2, 2.0]], head_mul=[[1, 2.0], [2, 2.0]],
                    pool_q_stride=[[1, 1, 2, 2], [2, 1, 2, 2]], num_frames=4, spatial_size=(64, 64))
    m = MViT(arch)
    assert arch.stage_names() == ["scale3", "scale4", "scale5"]
    assert {k: v.stride for k, v in m.output_shape().items()} == {"scale3": 8, "scale4": 16, "scale5": 32}
    out = m(torch.randn(1, 3, 4, 64, 64))
    assert out["scale3"].shape == (1, 32, 2, 8, 8)
