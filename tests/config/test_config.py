"""Tests of mvit_tasks.config: _BASE_ chains, overrides, error messages, safe YAML, dump."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path
from typing import Dict

import pytest

from mvit_tasks.config import (
    CfgNode,
    ConfigError,
    ConfigTypeError,
    UnknownKeyError,
    UnsafeYAMLError,
    arch_from_cfg,
    cfg_from_arch,
    get_cfg,
    load_config,
)
from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.modeling.backbone.variants import get_variant, list_variants


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def add_toy_task_config(cfg: CfgNode) -> None:
    """What a task's add_config does: its own namespace, plus changing a core default."""
    cfg.TOY = CfgNode()
    cfg.TOY.LR = 0.1
    cfg.TOY.NAMES = ["a", "b"]
    cfg.TOY.SIZES = (1, 2)
    cfg.MODEL.HEAD.POOL = "mean"


# ---------------------------------------------------------------------------- defaults
def test_get_cfg_is_fresh_and_has_core_keys() -> None:
    cfg = get_cfg()
    cfg.MODEL.NUM_CLASSES = 3
    cfg.DATA.MEAN.append(1.0)
    fresh = get_cfg()
    assert fresh.MODEL.NUM_CLASSES == 400 and fresh.DATA.MEAN == [0.45, 0.45, 0.45]
    assert fresh.MODEL.VARIANT == "" and "ARCH" not in fresh.MODEL
    assert "INPUT_CHANNEL_NUM" not in fresh.DATA
    assert fresh.MODEL.HEAD.POOL == "auto" and fresh.MODEL.WEIGHTS_SOURCE == "auto"
    assert fresh.MODEL.WEIGHTS_UNSAFE_PICKLE is False
    assert (fresh.OUTPUT_DIR, fresh.SEED) == ("./output", 0)
    assert set(fresh.keys()) == {"MODEL", "DATA", "OUTPUT_DIR", "SEED"}


def test_mvit_keys_follow_the_dataclass() -> None:
    cfg = get_cfg()
    assert list(cfg.MODEL.MVIT.keys()) == [f.name.upper() for f in dataclasses.fields(MViTArch)]
    assert all(v is None for v in cfg.MODEL.MVIT.values())
    assert {"EMBED_DIM", "POOL_Q_STRIDE", "OUT_FEATURES", "ACT_CHECKPOINT"} <= set(cfg.MODEL.MVIT)


# ---------------------------------------------------------------------------- _BASE_
def test_base_chain_with_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "configs/backbones/base.yaml", "MODEL:\n  NUM_CLASSES: 10\nSEED: 1\n")
    write(
        tmp_path / "configs/mid.yaml",
        "_BASE_: backbones/base.yaml\nMODEL:\n  NUM_CLASSES: 20\nDATA:\n  NUM_FRAMES: 8\n",
    )
    top = write(
        tmp_path / "projects/x/configs/top.yaml", "_BASE_: ../../../configs/mid.yaml\nSEED: 3\n"
    )
    cfg = get_cfg()
    cfg.merge_from_file(top)
    assert (cfg.MODEL.NUM_CLASSES, cfg.DATA.NUM_FRAMES, cfg.SEED) == (20, 8, 3)


def test_list_of_bases_later_wins(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "MODEL:\n  NUM_CLASSES: 1\n  WEIGHTS: a.pyth\n")
    write(tmp_path / "b.yaml", "MODEL:\n  NUM_CLASSES: 2\n")
    top = write(tmp_path / "top.yaml", "_BASE_: [a.yaml, b.yaml]\nSEED: 5\n")
    cfg = get_cfg()
    cfg.merge_from_file(top)
    assert (cfg.MODEL.NUM_CLASSES, cfg.MODEL.WEIGHTS, cfg.SEED) == (2, "a.pyth", 5)
    merged = CfgNode.load_yaml_with_base(top)
    assert merged == {"MODEL": {"NUM_CLASSES": 2, "WEIGHTS": "a.pyth"}, "SEED": 5}


def test_base_cycle_and_missing_base(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "_BASE_: b.yaml\n")
    write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        get_cfg().merge_from_file(str(tmp_path / "a.yaml"))
    top = write(tmp_path / "c.yaml", "_BASE_: nope.yaml\n")
    with pytest.raises(FileNotFoundError, match="nope.yaml.*a _BASE_ of.*c.yaml"):
        get_cfg().merge_from_file(top)


# ---------------------------------------------------------------------------- overrides
def test_merge_from_list_literal_eval() -> None:
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.NUM_CLASSES", "7",
            "MODEL.HEAD.DROPOUT_RATE", "0",  # int accepted for a float key
            "DATA.MEAN", "[0.5, 0.5, 0.5]",
            "MODEL.WEIGHTS", "/ckpt/model.pyth",  # not a literal: stays a string
            "MODEL.WEIGHTS_ALLOW_MISSING", "['head.']",
            "MODEL.WEIGHTS_UNSAFE_PICKLE", "True",
            "MODEL.MVIT.DEPTH", "4",
            "MODEL.MVIT.POOL_KVQ_KERNEL", "(3, 3, 3)",
        ]
    )  # fmt: skip
    assert cfg.MODEL.NUM_CLASSES == 7
    assert cfg.MODEL.HEAD.DROPOUT_RATE == 0.0 and isinstance(cfg.MODEL.HEAD.DROPOUT_RATE, float)
    assert cfg.DATA.MEAN == [0.5, 0.5, 0.5] and cfg.MODEL.WEIGHTS == "/ckpt/model.pyth"
    assert cfg.MODEL.WEIGHTS_ALLOW_MISSING == ["head."] and cfg.MODEL.WEIGHTS_UNSAFE_PICKLE is True
    assert cfg.MODEL.MVIT.DEPTH == 4 and cfg.MODEL.MVIT.POOL_KVQ_KERNEL == [3, 3, 3]


def test_merge_from_list_errors() -> None:
    cfg = get_cfg()
    with pytest.raises(ConfigError, match="odd length"):
        cfg.merge_from_list(["SEED"])
    with pytest.raises(ConfigError, match="_BASE_"):
        cfg.merge_from_list(["_BASE_", "x.yaml"])
    with pytest.raises(ConfigTypeError, match="'MODEL.HEAD' given on the command line.*section"):
        cfg.merge_from_list(["MODEL.HEAD", "1"])
    with pytest.raises(ConfigTypeError, match="DATA.NUM_FRAMES.*command line.*int.*str"):
        cfg.merge_from_list(["DATA.NUM_FRAMES", "many"])


def test_unknown_key_on_command_line() -> None:
    cfg = get_cfg()
    with pytest.raises(UnknownKeyError) as err:
        cfg.merge_from_list(["SEED", "1", "MODEL.NUM_CLASS", "3"])
    msg = str(err.value)
    assert "'MODEL.NUM_CLASS'" in msg and "command line" in msg
    assert "Did you mean: MODEL.NUM_CLASSES" in msg
    assert cfg.SEED == 0, "a failed merge must leave the config unchanged"
    with pytest.raises(KeyError, match="SOLVER.LR.*command line.*add_config"):
        cfg.merge_from_list(["SOLVER.LR", "0.1"])


# ---------------------------------------------------------------------------- file errors
def test_unknown_key_in_file_names_key_file_and_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg.yaml", "MODEL:\n  MVIT:\n    EMBED_DIMS: 64\n")
    with pytest.raises(UnknownKeyError) as err:
        get_cfg().merge_from_file(path)
    msg = str(err.value)
    assert "'MODEL.MVIT.EMBED_DIMS'" in msg and path in msg
    assert "Did you mean: MODEL.MVIT.EMBED_DIM" in msg


def test_unknown_key_in_base_names_the_base_and_includer(tmp_path: Path) -> None:
    base = write(tmp_path / "fragments/base.yaml", "SOLVER:\n  BASE_LR: 0.1\n")
    top = write(tmp_path / "top.yaml", "_BASE_: fragments/base.yaml\nSEED: 2\n")
    with pytest.raises(UnknownKeyError) as err:
        get_cfg().merge_from_file(top)
    msg = str(err.value)
    assert "'SOLVER.BASE_LR'" in msg
    assert f"in file '{base}' (a _BASE_ of '{top}')" in msg
    assert "add_config" in msg


def test_type_mismatch_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "DATA:\n  TRAIN_CROP_SIZE: large\n")
    cfg = get_cfg()
    with pytest.raises(ConfigTypeError) as err:
        cfg.merge_from_file(path)
    assert "'DATA.TRAIN_CROP_SIZE'" in str(err.value) and path in str(err.value)
    assert cfg.DATA.TRAIN_CROP_SIZE == 224
    section = write(tmp_path / "section.yaml", "MODEL:\n  HEAD: 3\n")
    with pytest.raises(ConfigTypeError, match="MODEL.HEAD.*section.yaml.*section"):
        cfg.merge_from_file(section)
    leaf = write(tmp_path / "leaf.yaml", "SEED:\n  A: 1\n")
    with pytest.raises(ConfigTypeError, match="SEED.*leaf.yaml.*not a mapping"):
        cfg.merge_from_file(leaf)


def test_unsafe_yaml_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(
        tmp_path / "evil.yaml",
        f"OUTPUT_DIR: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(UnsafeYAMLError, match="evil.yaml.*safe_load"):
        get_cfg().merge_from_file(path)
    with pytest.raises(UnsafeYAMLError):
        get_cfg().merge_from_file(path, allow_unsafe=True)
    assert not marker.exists()
    py = write(tmp_path / "cfg.py", "cfg = {}\n")
    with pytest.raises(UnsafeYAMLError, match="Python configs"):
        get_cfg().merge_from_file(py)


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        get_cfg().merge_from_file(write(tmp_path / "a.yaml", "SEED: [1\n"))
    with pytest.raises(ConfigError, match="mapping"):
        get_cfg().merge_from_file(write(tmp_path / "b.yaml", "- 1\n- 2\n"))
    cfg = get_cfg()
    cfg.merge_from_file(write(tmp_path / "empty.yaml", ""))
    assert cfg == get_cfg()


def test_frozen_config_refuses_merges() -> None:
    cfg = get_cfg()
    cfg.freeze()
    with pytest.raises(AttributeError, match="frozen"):
        cfg.merge_from_list(["SEED", "1"])
    with pytest.raises(AttributeError):
        cfg.SEED = 1


# ---------------------------------------------------------------------------- dump / load_config
def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = get_cfg()
    add_toy_task_config(cfg)
    cfg.merge_from_list(
        ["MODEL.MVIT.DIM_MUL", "[[1, 2.0], [3, 2.0]]", "MODEL.MVIT.SPATIAL_SIZE", "(64, 64)",
         "MODEL.MVIT.OUT_FEATURES", "['scale2', 'scale5']", "TOY.SIZES", "[3, 4]",
         "MODEL.WEIGHTS", "''", "OUTPUT_DIR", "'123'"]
    )  # fmt: skip
    text = cfg.dump()
    assert "MEAN: [0.45, 0.45, 0.45]" in text
    path = write(tmp_path / "dumped.yaml", text)
    again = get_cfg()
    add_toy_task_config(again)
    again.merge_from_file(path)
    assert again == cfg
    assert again.TOY.SIZES == (3, 4) and again.OUTPUT_DIR == "123"


def test_load_config_order_and_freeze(tmp_path: Path) -> None:
    path = write(tmp_path / "toy.yaml", "TOY:\n  LR: 0.5\nMODEL:\n  NUM_CLASSES: 5\n")
    cfg = load_config(path, ["TOY.LR", "0.25"], extra_config_fns=[add_toy_task_config])
    assert cfg.is_frozen()
    assert (cfg.TOY.LR, cfg.MODEL.NUM_CLASSES, cfg.MODEL.HEAD.POOL) == (0.25, 5, "mean")
    with pytest.raises(UnknownKeyError, match="TOY.LR.*toy.yaml"):
        load_config(path, [])
    assert load_config(None, []) == get_cfg()


def test_removed_keys_load_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    """MODEL.ARCH / DATA.INPUT_CHANNEL_NUM were never read: old files still load, said so."""
    path = write(tmp_path / "old.yaml",
                 "MODEL:\n  ARCH: classifier\n  NUM_CLASSES: 7\nDATA:\n  INPUT_CHANNEL_NUM: 3\n")
    with caplog.at_level("WARNING", logger="mvit_tasks.config.config"):
        cfg = load_config(path, ["MODEL.ARCH", "toy"])
    assert cfg.MODEL.NUM_CLASSES == 7 and "ARCH" not in cfg.MODEL
    assert "INPUT_CHANNEL_NUM" not in cfg.DATA
    text = caplog.text
    assert "'MODEL.ARCH' in file" in text and "old.yaml" in text and "deprecated and ignored" in text
    assert "'DATA.INPUT_CHANNEL_NUM' in file" in text
    assert "'MODEL.ARCH' given on the command line" in text
    with pytest.raises(UnknownKeyError, match="MODEL.ARCHH"):
        load_config(None, ["MODEL.ARCHH", "x"])


def test_new_allowed_nodes_accept_new_keys(tmp_path: Path) -> None:
    cfg = get_cfg()
    cfg.EXTRA = CfgNode(new_allowed=True)
    cfg.merge_from_file(write(tmp_path / "x.yaml", "EXTRA:\n  ANY: 1\n  SUB: {A: [1, 2]}\n"))
    assert cfg.EXTRA.ANY == 1 and cfg.EXTRA.SUB.A == [1, 2]


# ---------------------------------------------------------------------------- arch <-> cfg
def test_arch_from_cfg_defaults_and_overrides() -> None:
    cfg = get_cfg()
    assert arch_from_cfg(cfg) == MViTArch()
    cfg.merge_from_list(
        ["MODEL.MVIT.DEPTH", "2", "MODEL.MVIT.DIM_MUL", "[[1, 2.0]]",
         "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]", "MODEL.MVIT.POOL_Q_STRIDE", "[[1, 1, 2, 2]]",
         "MODEL.MVIT.SPATIAL_SIZE", "[32, 32]", "MODEL.MVIT.NUM_FRAMES", "4",
         "MODEL.MVIT.DROP_PATH_RATE", "0"]
    )  # fmt: skip
    arch = arch_from_cfg(cfg)
    assert arch.depth == 2 and arch.num_frames == 4 and arch.drop_path_rate == 0.0
    assert arch.dim_mul == ((1, 2.0),) and arch.pool_q_stride == ((1, 1, 2, 2),)
    assert arch.spatial_size == (32, 32) and isinstance(arch.spatial_size, tuple)
    assert len(arch.block_specs()) == 2


def test_arch_from_cfg_errors() -> None:
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.MVIT.DEPTH", "'deep'"])
    with pytest.raises(ValueError, match="MODEL.MVIT.DEPTH"):
        arch_from_cfg(cfg)
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.MVIT.POOL_MODE", "'conv_unshared'"])
    with pytest.raises(ValueError, match="POOL_MODE.*conv_unshared"):
        arch_from_cfg(cfg)


@pytest.fixture
def fake_variants(monkeypatch: pytest.MonkeyPatch) -> Dict[str, MViTArch]:
    """Stand-in for mvit_tasks.modeling.backbone.variants (only ``get_variant(name).arch``)."""
    archs = {"tiny_test": MViTArch(depth=2, embed_dim=32, num_heads=2, dim_mul=(), head_mul=())}
    module = types.ModuleType("mvit_tasks.modeling.backbone.variants")

    def get_variant(name: str) -> types.SimpleNamespace:
        if name not in archs:
            raise KeyError(f"No variant named '{name}'. Registered: {', '.join(archs)}")
        return types.SimpleNamespace(name=name, arch=archs[name])

    module.get_variant = get_variant  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return archs


def test_arch_from_cfg_starts_from_variant(fake_variants: Dict[str, MViTArch]) -> None:
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.VARIANT", "tiny_test", "MODEL.MVIT.EMBED_DIM", "16"])
    arch = arch_from_cfg(cfg)
    assert arch == fake_variants["tiny_test"].replace(embed_dim=16)
    cfg.MODEL.VARIANT = "missing"
    with pytest.raises(KeyError, match="tiny_test"):
        arch_from_cfg(cfg)


def test_arch_from_cfg_with_a_real_variant() -> None:
    names = list_variants()
    assert names, "no variant registered"
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.VARIANT", names[0]])
    assert arch_from_cfg(cfg) == get_variant(names[0]).arch


def test_cfg_from_arch_round_trip(tmp_path: Path) -> None:
    arch = MViTArch(depth=3, embed_dim=48, pool_q_stride=((1, 1, 2, 2),), out_features=("scale3",))
    data = cfg_from_arch(arch)
    assert data["MODEL"]["MVIT"]["EMBED_DIM"] == 48
    cfg = get_cfg()
    cfg.merge_from_other_cfg(data)
    assert arch_from_cfg(cfg) == arch
    delta = cfg_from_arch(arch, relative_to=MViTArch())
    assert delta["MODEL"]["MVIT"] == {
        "EMBED_DIM": 48, "DEPTH": 3, "POOL_Q_STRIDE": [[1, 1, 2, 2]], "OUT_FEATURES": ["scale3"]
    }  # fmt: skip
    import yaml

    path = write(tmp_path / "arch.yaml", yaml.safe_dump(delta))
    cfg = get_cfg()
    cfg.merge_from_file(path)
    assert arch_from_cfg(cfg) == arch
