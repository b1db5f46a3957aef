"""Parameter groups and optimizers: exact weight-decay sets of tiny MViTs, layer decay, wrappers."""
import pytest
import torch
from torch import nn

from mvit_tasks.engine.optim import build_optimizer, no_weight_decay_names, param_groups
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.meta_arch import Classifier


def _tiny(variant: str) -> Classifier:
    arch = get_variant(variant).arch.shallow(2)
    arch = arch.replace(embed_dim=8, num_frames=4, spatial_size=(32, 32))
    return Classifier.from_arch(arch, 5)


def _split(groups):
    decay = {n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]}
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    return decay, no_decay


def test_mvitv2_groups_exclude_tokens_rel_pos_and_1d_params():
    model = _tiny("mvitv2_s_16x4")
    depth = len(model.backbone.blocks)
    assert depth == 7
    rel_pos = {f"backbone.blocks.{i}.attn.rel_pos_{a}" for i in range(depth) for a in "hwt"}
    assert set(no_weight_decay_names(model)) == rel_pos | {"backbone.cls_token"}
    groups = param_groups(model, weight_decay=0.05)
    decay, no_decay = _split(groups)
    one_d = {n for n, p in model.named_parameters() if p.ndim == 1}
    # counted by hand: patch-embed bias; per block norm1/norm2/norm_q/k/v (w, b) and qkv, proj,
    # fc1, fc2 biases; shortcut proj bias of blocks 1, 3, 5; scale5_norm (w, b); head bias
    assert len(one_d) == 1 + depth * 14 + 3 + 2 + 1
    assert no_decay == one_d | rel_pos | {"backbone.cls_token"}
    assert decay == {n for n in dict(model.named_parameters())} - no_decay
    for name in ("backbone.patch_embed.proj.weight", "backbone.blocks.0.attn.qkv.weight",
                 "backbone.blocks.1.attn.pool_q.weight", "head.projection.weight"):
        assert name in decay
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05]  # order of first appearance
    assert all(g["lr_scale"] == 1.0 for g in groups)
    # without the 1-D rule only the model's own list is excluded
    _, no_decay = _split(param_groups(model, 0.05, zero_wd_1d=False))
    assert no_decay == rel_pos | {"backbone.cls_token"}
    # MVIT.ZERO_DECAY_POS_CLS False (official MViTv2 K400 config): only the 1-D rule is left
    _, no_decay = _split(param_groups(model, 0.05, model_no_weight_decay=False))
    assert no_decay == one_d


def test_mvit_v1_separate_pos_embeds_and_wrappers():
    model = _tiny("mvit_b_16x4")
    expected = {"backbone.cls_token", "backbone.pos_embed_spatial", "backbone.pos_embed_temporal",
                "backbone.pos_embed_class"}
    assert set(no_weight_decay_names(model)) == expected
    # DataParallel (same unwrapping as DDP) and the bare backbone give the same names
    assert set(no_weight_decay_names(nn.DataParallel(model))) == expected
    assert set(no_weight_decay_names(model.backbone)) == {n.split(".", 1)[1] for n in expected}
    _, no_decay = _split(param_groups(nn.DataParallel(model), 0.1, zero_wd_1d=False))
    assert no_decay == expected


class _Sub(nn.Module):
    def __init__(self):
        super().__init__()
        self.rel_pos_h = nn.Parameter(torch.zeros(3, 2))
        self.tok = nn.Parameter(torch.zeros(1, 2))
        self.lin = nn.Linear(2, 2)

    def no_weight_decay(self):
        return ["rel_pos_h", "t*k"]  # bare leaf name and glob


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.sub = _Sub()
        self.other = nn.Linear(2, 2)
        self.rel_pos_h = nn.Parameter(torch.zeros(3, 2))  # not listed by its own module
        self.frozen = nn.Parameter(torch.zeros(2, 2), requires_grad=False)


def test_entries_are_scoped_to_the_defining_module_and_frozen_params_are_skipped():
    model = _Toy()
    assert no_weight_decay_names(model) == ["sub.rel_pos_h", "sub.tok"]
    groups = param_groups(model, 0.1, zero_wd_1d=False, skip_names=["other.*"])
    decay, no_decay = _split(groups)
    assert no_decay == {"sub.rel_pos_h", "sub.tok", "other.weight", "other.bias"}
    assert decay == {"sub.lin.weight", "sub.lin.bias", "rel_pos_h"}
    with pytest.raises(ValueError, match="matches no parameter"):
        param_groups(model, 0.1, skip_names=["nope"])


def test_layer_decay_and_lr_mult_scales():
    model = _tiny("mvitv2_s_16x4")
    groups = param_groups(model, 0.05, layer_decay=0.5,
                          lr_mult=lambda n: 10.0 if n.startswith("head.") else 1.0)
    scale = {n: g["lr_scale"] for g in groups for n in g["param_names"]}
    # depth 7: layer 0 = tokens / patch embed, blocks.i = i + 1, rest = 8
    assert scale["backbone.cls_token"] == 0.5 ** 8
    assert scale["backbone.patch_embed.proj.weight"] == 0.5 ** 8
    assert scale["backbone.blocks.0.attn.qkv.weight"] == 0.5 ** 7
    assert scale["backbone.blocks.6.mlp.fc2.bias"] == 0.5 ** 1
    assert scale["backbone.scale5_norm.weight"] == 1.0
    assert scale["head.projection.weight"] == 10.0
    keys = [(g["weight_decay"], g["lr_scale"]) for g in groups]
    assert len(keys) == len(set(keys))


def test_build_optimizer_kinds_lrs_and_decoupled_decay():
    model = _tiny("mvitv2_s_16x4")
    opt = build_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, layer_decay=0.5)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    assert all(g["lr"] == pytest.approx(0.1 * g["lr_scale"]) for g in opt.param_groups)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(model, "lamb", 0.1, 0.0)

    opt = build_optimizer(model, "adamw", lr=0.01, weight_decay=0.5, betas=(0.8, 0.9))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.8, 0.9)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradients: only decoupled weight decay moves the weights
    params = dict(model.named_parameters())
    w = "backbone.blocks.0.attn.qkv.weight"
    torch.testing.assert_close(params[w], before[w] * (1 - 0.01 * 0.5), rtol=0, atol=1e-7)
    for n in ("backbone.cls_token", "backbone.blocks.0.attn.rel_pos_h",
              "backbone.blocks.0.norm1.weight"):
        assert torch.equal(params[n], before[n])
