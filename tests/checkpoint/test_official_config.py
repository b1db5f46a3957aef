"""Importing official PySlowFast / facebookresearch/mvit MViT configs.

Fixtures are the published YAMLs (``tests/fixtures/official_configs``); expected block tables
come from ``shared/reference/anchors.md`` (c) and the published parameter counts.
"""
from __future__ import annotations

import copy
import glob
import os

import pytest
import yaml

from mvit_tasks.checkpoint.official_config import (
    MVIT,
    OFFICIAL_DEFAULTS,
    SLOWFAST,
    arch_from_official,
    _read_official_yaml,
    detect_flavor,
    load_official_config,
    write_native_config,
)
from mvit_tasks.modeling.backbone.arch import MViTArch

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "official_configs")
ALL = sorted(
    os.path.relpath(p, FIXTURES)
    for p in glob.glob(os.path.join(FIXTURES, "**", "*.yaml"), recursive=True)
)
# Fixtures that must be refused, and a fragment of the message.
REFUSED = {
    "slowfast/Kinetics/REV_MVIT_B_16x4_CONV.yaml": "MVIT.REV.ENABLE=True",
    "slowfast/ImageNet/REV_MVIT_B_16_CONV.yaml": "MVIT.REV.ENABLE=True",
    "slowfast/ImageNet/MVIT_B_16_MAX.yaml": "POOL_KV_KERNEL",  # obsolete per-block kernel keys
}
LOADABLE = [p for p in ALL if p not in REFUSED]


def fx(rel: str) -> str:
    return os.path.join(FIXTURES, rel)


def raw_of(rel: str) -> dict:
    """The mapping the importer reads (after the repair of known upstream YAML defects)."""
    return _read_official_yaml(fx(rel))[0]


def test_fixture_set_and_headers():
    assert len(ALL) >= 20
    for rel in ALL:
        with open(fx(rel)) as f:
            first = f.readline()
        assert first.startswith("# fixture: copied from facebookresearch/"), rel
        assert "(config data, for import tests)" in first, rel


# ------------------------------------------------------------------------------ loading
@pytest.mark.parametrize("rel", LOADABLE)
def test_every_fixture_loads(rel):
    arch, info = load_official_config(fx(rel))
    assert isinstance(arch, MViTArch)
    specs = arch.block_specs()
    assert len(specs) == arch.depth
    assert info["flavor"] == rel.split("/")[0]
    for key in ("num_classes", "num_frames", "sampling_rate", "train_crop_size", "test_crop_size",
                "mean", "std", "head_pool", "dropout_rate", "dataset", "source_checkpoint"):
        assert key in info, key
    assert info["head_pool"] == ("cls" if arch.cls_embed else "mean")
    assert info["num_frames"] == arch.num_frames
    assert arch.video == ("ImageNet" not in rel and not rel.startswith("mvit/"))
    assert specs[-1].stage == 3  # four stages, scale2..scale5


@pytest.mark.parametrize("rel", sorted(REFUSED))
def test_unsupported_fixtures_are_refused_with_file_and_key(rel):
    with pytest.raises(ValueError) as e:
        load_official_config(fx(rel))
    msg = str(e.value)
    assert REFUSED[rel] in msg
    assert os.path.basename(rel) in msg


@pytest.mark.parametrize("rel", ALL)
def test_detect_flavor_of_fixtures(rel):
    assert detect_flavor(raw_of(rel)) == rel.split("/")[0]


def test_detect_flavor_minimal_dicts():
    assert detect_flavor({"MVIT": {"POOL_Q_STRIDE": [[1, 2, 2]]}}) == MVIT
    assert detect_flavor({"MVIT": {"POOL_Q_STRIDE": [[1, 1, 2, 2]]}}) == SLOWFAST
    assert detect_flavor({"MVIT": {"POOL_KVQ_KERNEL": [3, 3]}}) == MVIT
    assert detect_flavor({"MVIT": {"PATCH_KERNEL": "(3, 7, 7)"}}) == SLOWFAST
    squeeze = {"MVIT": {"DEPTH": 4}, "TEST": {"CHECKPOINT_SQUEEZE_TEMPORAL": True}}
    assert detect_flavor(squeeze) == MVIT
    assert detect_flavor({"MVIT": {"REL_POS_TEMPORAL": True}}) == SLOWFAST
    with pytest.raises(ValueError, match="no MVIT section"):
        detect_flavor({"MODEL": {"NUM_CLASSES": 3}})
    with pytest.raises(ValueError, match="both"):
        detect_flavor({"MVIT": {"SEP_POS_EMBED": True}, "DATA": {"VAL_CROP_RATIO": 0.9}})


# ------------------------------------------------------------------------ block tables
def test_mvitv1_b_16x4_matches_anchor_table():
    arch, info = load_official_config(fx("slowfast/Kinetics/MVIT_B_16x4_CONV.yaml"))
    assert arch.use_abs_pos and arch.sep_pos_embed and arch.cls_embed
    assert not (arch.rel_pos_spatial or arch.rel_pos_temporal or arch.residual_pooling)
    assert not arch.dim_mul_in_att and not arch.residual_pooling_cls
    assert arch.patch_grid == (8, 56, 56)
    specs = arch.block_specs()
    assert len(specs) == 16
    dims = [(s.dim_in, s.dim_out) for s in specs]
    assert dims == (
        [(96, 192), (192, 192), (192, 384)] + [(384, 384)] * 10 + [(384, 768)] + [(768, 768)] * 2
    )
    assert [s.num_heads for s in specs] == [1, 2, 2] + [4] * 11 + [8, 8]
    assert all(s.head_dim == 96 for s in specs)
    assert all(s.att_dim == s.dim_in for s in specs)  # v1: width changes in the MLP
    q_pooled = [s.index for s in specs if s.kernel_q is not None]
    assert q_pooled == [1, 3, 14]
    assert all(specs[i].stride_q == (1, 2, 2) and specs[i].kernel_q == (3, 3, 3) for i in q_pooled)
    kv = [s.stride_kv for s in specs]
    assert kv == [(1, 8, 8)] + [(1, 4, 4)] * 2 + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2
    assert all(s.kernel_kv == (3, 3, 3) for s in specs)  # kernel 3 still applied at stride 1
    assert [s.output_size for s in specs] == (
        [(8, 56, 56)] + [(8, 28, 28)] * 2 + [(8, 14, 14)] * 11 + [(8, 7, 7)] * 2
    )
    assert info["num_classes"] == 400 and info["head_pool"] == "cls"


def test_mvitv2_s_16x4_matches_anchor_table():
    arch, info = load_official_config(fx("slowfast/Kinetics/MVITv2_S_16x4.yaml"))
    assert not arch.use_abs_pos and arch.cls_embed
    assert arch.rel_pos_spatial and arch.rel_pos_temporal and arch.residual_pooling
    assert arch.dim_mul_in_att and not arch.residual_pooling_cls
    specs = arch.block_specs()
    dims = [(s.dim_in, s.dim_out) for s in specs]
    assert dims == (
        [(96, 96), (96, 192), (192, 192), (192, 384)] + [(384, 384)] * 10 + [(384, 768), (768, 768)]
    )
    assert [s.num_heads for s in specs] == [1, 2, 2] + [4] * 11 + [8, 8]
    assert all(s.att_dim == s.dim_out for s in specs)
    assert all(s.kernel_q == (3, 3, 3) for s in specs)  # every block has a q-pool conv
    assert [i for i, s in enumerate(specs) if s.stride_q != (1, 1, 1)] == [1, 3, 14]
    kv = [s.stride_kv for s in specs]
    assert kv == [(1, 8, 8)] + [(1, 4, 4)] * 2 + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2
    rows = [s.rel_pos_spatial_size for s in specs]
    assert rows == [(111, 111), (55, 55), (55, 55)] + [(27, 27)] * 12 + [(13, 13)]
    assert all(s.rel_pos_temporal_size == 15 for s in specs)
    assert info == {**info, "num_frames": 16, "sampling_rate": 4, "train_crop_size": 224,
                    "test_crop_size": 224, "mean": [0.45] * 3, "std": [0.225] * 3,
                    "dropout_rate": 0.5, "dataset": "kinetics", "source_checkpoint": "",
                    "num_ensemble_views": 5, "num_spatial_crops": 1, "reverse_input_channel": False}


IMAGE_STAGES = {  # name: (depth, blocks per stage, DIM_MUL block indices)
    "T": (10, [1, 2, 5, 2], [1, 3, 8]),
    "S": (16, [1, 2, 11, 2], [1, 3, 14]),
    "B": (24, [2, 3, 16, 3], [2, 5, 21]),
}


@pytest.mark.parametrize("size", sorted(IMAGE_STAGES))
@pytest.mark.parametrize("repo", ["mvit", "slowfast/ImageNet"])
def test_mvitv2_image_models_match_anchor_table(size, repo):
    arch, info = load_official_config(fx(f"{repo}/MVITv2_{size}.yaml"))
    depth, per_stage, starts = IMAGE_STAGES[size]
    assert not arch.video and arch.num_frames == 1 and arch.patch_grid[1:] == (56, 56)
    assert not arch.cls_embed and not arch.use_abs_pos and arch.rel_pos_spatial
    assert not arch.rel_pos_temporal and arch.residual_pooling and arch.dim_mul_in_att
    specs = arch.block_specs()
    assert len(specs) == depth
    assert [sum(1 for s in specs if s.stage == k) for k in range(4)] == per_stage
    assert [s.index for s in specs if s.stride_q != (1, 1, 1)] == starts
    for s in specs:
        assert s.dim_out == 96 * 2 ** s.stage and s.num_heads == 2 ** s.stage
        assert s.kernel_q == (1, 3, 3)  # every block has a (2-D) q-pool conv
        assert s.stride_kv == (1,) + (max(4 // 2 ** s.stage, 1),) * 2  # 4/2/1/1
        assert s.kernel_kv == (1, 3, 3)
    sizes = {k: 56 // 2 ** k for k in range(4)}
    for s in specs:  # rel-pos rows: 2 * max(q_size, kv_size) - 1 of the block's input grid
        n = s.input_size[1]
        assert s.rel_pos_spatial_size[0] == 2 * max(n // s.stride_q[1], n // s.stride_kv[1]) - 1
        assert s.output_size[1] == sizes[s.stage]
    assert info["head_pool"] == "mean" and info["num_classes"] == 1000
    assert info["mean"] == [0.485, 0.456, 0.406] and info["std"] == [0.229, 0.224, 0.225]
    assert info["dataset"] == "imagenet" and info["dropout_rate"] == 0.0


def test_image_patch_grid_has_one_frame():
    arch, _ = load_official_config(fx("slowfast/ImageNet/MVIT_B_16_CONV.yaml"))
    assert arch.patch_padding3 == (0, 3, 3)
    assert arch.patch_grid == (1, 56, 56)


def test_mvitv2_t_rel_pos_rows():
    arch, _ = load_official_config(fx("mvit/MVITv2_T.yaml"))
    rows = [s.rel_pos_spatial_size[0] for s in arch.block_specs()]
    assert rows == [111, 55, 55, 55, 27, 27, 27, 27, 27, 13]


@pytest.mark.parametrize("size", sorted(IMAGE_STAGES))
def test_slowfast_and_mvit_image_configs_give_the_same_blocks(size):
    a, _ = load_official_config(fx(f"mvit/MVITv2_{size}.yaml"))
    b, _ = load_official_config(fx(f"slowfast/ImageNet/MVITv2_{size}.yaml"))
    # 2-D [i, h, w] vs 3-D [i, 1, h, w] entries; adaptive (mvit) vs explicit (SlowFast) kv strides
    assert a.block_specs() == b.block_specs()
    assert a.residual_pooling_cls and not b.residual_pooling_cls  # flavor semantics (no cls here)


def test_mvitv2_l_image_uses_dim_mul_in_mlp():
    arch, _ = load_official_config(fx("mvit/test/MVITv2_L_test.yaml"))
    assert arch.embed_dim == 144 and arch.num_heads == 2 and arch.depth == 48
    assert not arch.dim_mul_in_att
    assert arch.block_specs()[-1].dim_out == 1152


# ------------------------------------------------------------------ upstream quirks
def test_broken_indentation_of_slowfast_imagenet_b_is_repaired_with_warning():
    rel = "slowfast/ImageNet/MVITv2_B.yaml"
    with pytest.raises(yaml.YAMLError), open(fx(rel)) as f:
        yaml.safe_load(f)
    arch, info = load_official_config(fx(rel))
    assert arch.drop_path_rate == 0.3 and arch.depth == 24
    (warning,) = info["warnings"]
    assert "MVITv2_B.yaml:29" in warning and "DROPPATH_RATE: 0.3" in warning


def test_other_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MVIT:\n  DEPTH: 4\n  DIM_MUL: [[1, 2.0]\nMODEL:\n  X: 1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML at line \d+"):
        load_official_config(str(bad))


def test_unsafe_yaml_is_refused(tmp_path):
    bad = tmp_path / "unsafe.yaml"
    bad.write_text("MVIT: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ValueError, match="unsafe.yaml"):
        load_official_config(str(bad))


def test_duplicate_keys_last_wins_with_warning_mvit_b_32x3():
    arch, info = load_official_config(fx("slowfast/Kinetics/MVIT_B_32x3_CONV.yaml"))
    # DEPTH: 16 ... DEPTH: 24 -> 24 (MViT-B-24, as yacs reads it); no POOL_KVQ_KERNEL -> derived
    assert arch.depth == 24 and arch.pool_kvq_kernel is None
    assert any("duplicate key MVIT.DEPTH" in w for w in info["warnings"])
    assert not any("SEP_POS_EMBED" in w for w in info["warnings"])  # same value twice: silent
    specs = arch.block_specs()
    assert specs[0].kernel_kv == (1, 9, 9) and specs[0].stride_kv == (1, 8, 8)
    assert specs[2].kernel_q == (1, 3, 3) and specs[2].stride_q == (1, 2, 2)
    assert specs[0].kernel_q is None
    assert specs[-1].stride_kv == (1, 1, 1) and specs[-1].kernel_kv is None  # 1x1x1: no pooling
    assert arch.use_abs_pos and arch.sep_pos_embed and info["sampling_rate"] == 3


def test_ssv2_l_duplicates_and_bgr_input():
    arch, info = load_official_config(fx("slowfast/SSv2/MVITv2_L_40x3.yaml"))
    assert tuple(arch.pool_kv_stride_adaptive) == (1, 8, 8)  # the later value wins
    assert len(arch.pool_q_stride) == 48
    assert arch.act_checkpoint and arch.spatial_size == (312, 312) and arch.num_frames == 40
    assert info["reverse_input_channel"] is True and info["num_classes"] == 174
    assert (info["num_spatial_crops"], info["num_ensemble_views"]) == (3, 1)
    assert info["dataset"] == "ssv2"


def test_adaptive_kv_stride_replaces_explicit_list():
    raw = raw_of("slowfast/Kinetics/MVITv2_S_16x4.yaml")
    raw["MVIT"]["POOL_KV_STRIDE"] = [[0, 1, 2, 2]]
    arch, info = arch_from_official(raw, source="x.yaml")
    assert arch.pool_kv_stride is None
    assert arch.block_specs()[0].stride_kv == (1, 8, 8)
    assert any("POOL_KV_STRIDE is ignored" in w for w in info["warnings"])


def test_defaults_fill_missing_keys():
    # SlowFast's default MODEL_NAME is "SlowFast": an MViT config has to name the model
    with pytest.raises(ValueError, match="MODEL.MODEL_NAME='SlowFast'"):
        arch_from_official({"MVIT": {"PATCH_KERNEL": "(3, 7, 7)", "DEPTH": 2}})
    sf, info = arch_from_official(
        {"MVIT": {"PATCH_KERNEL": "(3, 7, 7)", "DEPTH": 2}, "MODEL": {"MODEL_NAME": "MViT"}}
    )
    d = OFFICIAL_DEFAULTS[SLOWFAST]
    assert list(sf.patch_padding) == d["MVIT"]["PATCH_PADDING"] == [2, 4, 4]
    assert sf.num_frames == 8 and sf.cls_embed and sf.use_abs_pos and not sf.rel_pos_spatial
    assert info["num_classes"] == 400 and info["test_crop_size"] == 256
    assert any("TEST_CROP_SIZE" in w for w in info["warnings"])  # upstream asserts train == test
    mv, info = arch_from_official({"MVIT": {"DEPTH": 2}}, flavor=MVIT)
    assert not mv.video and not mv.cls_embed and tuple(mv.pool_kvq_kernel) == (3, 3)
    assert mv.rel_pos_spatial and mv.residual_pooling and mv.dim_mul_in_att
    assert info["num_classes"] == 1000 and info["dataset"] == "imagenet"


UNSUPPORTED = [
    ("MVIT", "USE_MEAN_POOLING", True, "mean -> norm"),
    ("MVIT", "MODE", "conv_unshared", "conv_unshared"),
    ("MVIT", "POOL_FIRST", True, "POOL_FIRST"),
    ("MVIT", "SEPARATE_QKV", True, "SEPARATE_QKV"),
    ("MVIT", "NORM", "batchnorm", "layernorm"),
    ("MVIT", "USE_FIXED_SINCOS_POS", True, "sin-cos"),
    ("MVIT", "NORM_STEM", True, "NORM_STEM"),
    ("MVIT", "LAYER_SCALE_INIT_VALUE", 0.1, "layer scale"),
    ("MVIT", "DROPOUT_RATE", 0.1, "MODEL.DROPOUT_RATE"),
    ("MVIT", "REV", {"ENABLE": True}, "REV.ENABLE"),
    ("MVIT", "POOL_KV_KERNEL", [[1, 3, 3]], "unknown MVIT key"),
    ("MODEL", "MODEL_NAME", "SlowFast", "MODEL_NAME"),
]


@pytest.mark.parametrize("section,key,value,fragment", UNSUPPORTED)
def test_unsupported_settings_raise_with_key_value_and_file(
    tmp_path, section, key, value, fragment
):
    raw = raw_of("slowfast/Kinetics/MVITv2_S_16x4.yaml")
    raw[section][key] = value
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError) as e:
        load_official_config(str(path))
    msg = str(e.value)
    assert "edited.yaml" in msg and fragment in msg
    if not isinstance(value, (dict, list)):
        assert repr(value) in msg and key in msg


def test_mvit_flavor_refuses_its_unsupported_modes():
    raw = raw_of("mvit/MVITv2_T.yaml")
    raw["MVIT"]["MODE"] = "conv_unshared"
    with pytest.raises(ValueError, match="MVIT.MODE='conv_unshared'"):
        arch_from_official(raw, source="t.yaml")
    raw = raw_of("mvit/MVITv2_T.yaml")
    raw["MVIT"]["SEP_POS_EMBED"] = True  # a SlowFast-only key
    with pytest.raises(ValueError, match="unknown MVIT key"):
        arch_from_official(raw, flavor=MVIT, source="t.yaml")


def test_image_model_checks():
    raw = raw_of("slowfast/ImageNet/MVITv2_T.yaml")
    bad = copy.deepcopy(raw)
    bad["MVIT"]["REL_POS_TEMPORAL"] = True
    with pytest.raises(ValueError, match="REL_POS_TEMPORAL"):
        arch_from_official(bad)
    bad = copy.deepcopy(raw)
    bad["DATA"]["NUM_FRAMES"] = 4
    with pytest.raises(ValueError, match="NUM_FRAMES"):
        arch_from_official(bad)
    bad = copy.deepcopy(raw)
    bad["MVIT"]["POOL_Q_STRIDE"] = [[1, 2, 2, 2]]
    with pytest.raises(ValueError, match="temporal size 1"):
        arch_from_official(bad)
    ok = copy.deepcopy(raw)  # 3-D stem settings with a temporal extent of 1 (padding 0) are fine
    ok["MVIT"].update(PATCH_KERNEL=[1, 7, 7], PATCH_STRIDE=[1, 4, 4], PATCH_PADDING=[0, 3, 3])
    assert arch_from_official(ok)[0].patch_padding3 == (0, 3, 3)
    bad = copy.deepcopy(raw)
    bad["MVIT"]["POOL_Q_STRIDE"] = [[10, 1, 2, 2]]
    with pytest.raises(ValueError, match="block index 10"):
        arch_from_official(bad)


# --------------------------------------------------------------- native config round trip
@pytest.mark.parametrize("rel", LOADABLE)
def test_native_config_round_trip(tmp_path, rel):
    arch, info = load_official_config(fx(rel))
    out = tmp_path / "sub" / "native.yaml"
    write_native_config(arch, info, str(out), weights="w.pyth")
    with open(out) as f:
        cfg = yaml.safe_load(f)
    again = MViTArch.from_dict({k.lower(): v for k, v in cfg["MODEL"]["MVIT"].items()})
    assert again == arch
    assert again.block_specs() == arch.block_specs()
    assert cfg["MODEL"]["NUM_CLASSES"] == info["num_classes"]
    assert cfg["MODEL"]["WEIGHTS"] == "w.pyth"
    assert cfg["MODEL"]["HEAD"] == {"POOL": info["head_pool"], "DROPOUT_RATE": info["dropout_rate"]}
    assert cfg["DATA"] == {
        "NUM_FRAMES": info["num_frames"], "SAMPLING_RATE": info["sampling_rate"],
        "TRAIN_CROP_SIZE": info["train_crop_size"], "TEST_CROP_SIZE": info["test_crop_size"],
        "MEAN": info["mean"], "STD": info["std"],
    }


# ------------------------------------------------------- registered variants agree
@pytest.mark.parametrize("rel,variant", [
    ("slowfast/Kinetics/MVIT_B_16x4_CONV.yaml", "mvit_b_16x4"),
    ("slowfast/Kinetics/MVIT_B_32x3_CONV.yaml", "mvit_b_24_32x3"),
    ("slowfast/Kinetics/MVITv2_S_16x4.yaml", "mvitv2_s_16x4"),
    ("slowfast/Kinetics/MVITv2_B_32x3.yaml", "mvitv2_b_32x3"),
    ("slowfast/Kinetics/MVITv2_L_40x3_test.yaml", "mvitv2_l_40x3"),
    ("mvit/MVITv2_T.yaml", "mvitv2_t"),
    ("mvit/MVITv2_S.yaml", "mvitv2_s"),
    ("mvit/MVITv2_B.yaml", "mvitv2_b"),
    ("mvit/test/MVITv2_L_test.yaml", "mvitv2_l"),
])
def test_imported_arch_equals_registered_variant(rel, variant):
    from mvit_tasks.modeling.backbone import variants

    arch, _ = load_official_config(fx(rel))
    assert arch == variants.get_variant(variant).arch


# ------------------------------------------------------------------- parameter counts
def _params_with_linear_head(arch: MViTArch, num_classes: int) -> int:
    mvit = pytest.importorskip("mvit_tasks.modeling.backbone.mvit")
    last = arch.block_specs()[-1]
    backbone = mvit.MViT(arch.replace(out_features=[f"scale{last.stage + 2}"]))  # one final norm
    c = last.dim_out
    return sum(p.numel() for p in backbone.parameters()) + c * num_classes + num_classes


@pytest.mark.parametrize("rel,expected", [
    ("slowfast/Kinetics/MVIT_B_16x4_CONV.yaml", 36_610_672),  # MViT-B 16x4, 400 classes
    ("slowfast/Kinetics/MVITv2_S_16x4.yaml", 34_537_744),  # MViTv2-S 16x4, 400 classes
    ("mvit/MVITv2_T.yaml", 24_173_320),  # MViTv2-T, 1000 classes
    ("slowfast/ImageNet/MVITv2_T.yaml", 24_173_320),
])
def test_parameter_counts(rel, expected):
    arch, info = load_official_config(fx(rel))
    assert _params_with_linear_head(arch, info["num_classes"]) == expected
