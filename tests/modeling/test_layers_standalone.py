"""``modeling/layers`` stands alone: plain typed settings, explicit submodules, stable key names."""
from __future__ import annotations

import ast
import dataclasses
import os

import pytest
import torch

from mvit_tasks.modeling.backbone.arch import BlockSpec as ArchBlockSpec
from mvit_tasks.modeling.layers import AttentionOptions, BlockSpec, MultiScaleBlock

LAYERS = os.path.join(os.path.dirname(__file__), "..", "..", "mvit_tasks", "modeling", "layers")


def _imports(path: str):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_layers_import_nothing_from_the_backbone_or_above():
    for name in sorted(os.listdir(LAYERS)):
        if name.endswith(".py"):
            for mod in _imports(os.path.join(LAYERS, name)):
                assert not mod.startswith(".."), f"{name} imports {mod}"
                assert not mod.startswith("mvit_tasks"), f"{name} imports {mod}"


def test_block_spec_is_the_layers_one_and_options_are_typed():
    assert ArchBlockSpec is BlockSpec  # backbone/arch.py re-exports the layers' spec
    fields = {f.name: f.type for f in dataclasses.fields(AttentionOptions)}
    assert fields["pool_mode"] == "str" and fields["norm_eps"] == "float"
    assert all(t in ("bool", "str", "float") for t in fields.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        AttentionOptions().qkv_bias = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="pool_mode"):
        AttentionOptions(pool_mode="conv_unshared")


def _spec(kernel_q=(3, 3, 3), kernel_kv=(3, 3, 3)) -> BlockSpec:
    return BlockSpec(index=0, stage=1, dim_in=16, dim_out=32, att_dim=32, num_heads=2,
                     kernel_q=kernel_q, stride_q=(1, 2, 2), kernel_kv=kernel_kv,
                     stride_kv=(1, 2, 2), input_size=(2, 8, 8), window_size=0, drop_path=0.0)


def test_block_from_plain_settings_keeps_the_slowfast_key_names():
    opts = AttentionOptions(rel_pos_spatial=True, rel_pos_temporal=True, residual_pooling=True)
    blk = MultiScaleBlock(_spec(), opts)
    keys = set(blk.state_dict())
    for x in "qkv":
        assert {f"attn.pool_{x}.weight", f"attn.norm_{x}.weight", f"attn.norm_{x}.bias"} <= keys
    assert {"attn.rel_pos_h", "attn.rel_pos_w", "attn.rel_pos_t", "proj.weight"} <= keys
    attn = blk.attn
    assert attn.pool_q is not None and attn.pool_q.weight.shape == (16, 1, 3, 3, 3)
    assert isinstance(attn.norm_k, torch.nn.LayerNorm)
    y, thw = blk(torch.randn(2, 1 + 2 * 8 * 8, 16), (2, 8, 8))
    assert y.shape == (2, 1 + 2 * 4 * 4, 32) and thw == (2, 4, 4)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_max_avg_pooling_has_no_parameters(mode):
    blk = MultiScaleBlock(_spec(), AttentionOptions(pool_mode=mode, has_cls=False))
    assert blk.attn.pool_q is None and blk.attn.norm_q is None
    assert not any(".pool_" in k or ".norm_" in k for k in blk.state_dict())
    y, thw = blk(torch.randn(1, 4 * 8 * 8, 16), (4, 8, 8))  # avg_pool3d: T >= kernel
    assert y.shape == (1, 4 * 4 * 4, 32) and thw == (4, 4, 4)


def test_unpooled_kv_has_no_pool_modules():
    blk = MultiScaleBlock(_spec(kernel_kv=None), AttentionOptions())
    assert blk.attn.pool_k is None and blk.attn.pool_v is None and blk.attn.norm_v is None
    assert blk.attn.pool_q is not None
