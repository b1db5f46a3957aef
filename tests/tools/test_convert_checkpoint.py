"""tools/convert_checkpoint.py: official configs -> our config + weights, exports, exit codes.

For every official SlowFast / mvit fixture config, a synthetic checkpoint with the published
key names and shapes is converted with ``--source-config``; the written config must rebuild the
identical architecture with the published parameter count, and the weights must load strictly.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch

from mvit_tasks.checkpoint.converters import get_converter
from mvit_tasks.checkpoint.converters.slowfast import slowfast_patch_2d
from mvit_tasks.checkpoint.io import load_checkpoint_file
from mvit_tasks.checkpoint.loader import load_weights
from mvit_tasks.checkpoint.official_config import load_official_config
from mvit_tasks.config import arch_from_cfg, load_config
from mvit_tasks.modeling.meta_arch import Classifier

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "convert_checkpoint.py")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "official_configs")

from mvit_tasks.cli import convert_checkpoint

slow = pytest.mark.slow
# fixture, layout of the synthetic checkpoint, classes, parameter count.
# Published counts: MViT-B 16x4 36,610,672 and MViTv2-S 16x4 34,537,744 (torchvision
# mvit_v1_b / mvit_v2_s), MViTv2-T/S/B 24,173,320 / 34,870,216 / 51,472,744 (timm mvitv2_*),
# MViTv2-B 32x3 51.2 M (SlowFast README). Computed here: SSv2 heads have 174 classes, i.e.
# 400 -> 174 rows of a 768-wide head: S 34,363,950 (README: 34.4 M), B 51,056,334 (51.1 M).
# MVIT_B_32x3_CONV.yaml gives DEPTH 24 twice-defined (the last wins, as in yacs) and derived
# kv kernels (no POOL_KVQ_KERNEL): 53,115,280, not the 36.6 M of the released 32x3 model.
# SlowFast ImageNet MVIT_B_16_CONV (v1, cls token, joint pos_embed [1, 3137, 96], 1x3x3 pool
# kernels, 1000 classes): 36,982,600 = the video v1-B count with the 2-D stem, one joint table
# and 2-D kernels (derived by hand from the 16x4 count).
CASES = [
    ("slowfast/Kinetics/MVIT_B_16x4_CONV.yaml", "slowfast", 400, 36_610_672),
    pytest.param("slowfast/Kinetics/MVIT_B_32x3_CONV.yaml", "slowfast", 400, 53_115_280,
                 marks=slow),
    ("slowfast/Kinetics/MVITv2_S_16x4.yaml", "slowfast", 400, 34_537_744),
    pytest.param("slowfast/Kinetics/MVITv2_B_32x3.yaml", "slowfast", 400, 51_230_128, marks=slow),
    ("slowfast/SSv2/MVITv2_S_16x4.yaml", "slowfast", 174, 34_363_950),
    pytest.param("slowfast/SSv2/MVITv2_B_32x3.yaml", "slowfast", 174, 51_056_334, marks=slow),
    ("slowfast/ImageNet/MVITv2_T.yaml", "slowfast_2d", 1000, 24_173_320),
    pytest.param("slowfast/ImageNet/MVITv2_S.yaml", "slowfast_2d", 1000, 34_870_216, marks=slow),
    pytest.param("slowfast/ImageNet/MVITv2_B.yaml", "slowfast_2d", 1000, 51_472_744, marks=slow),
    pytest.param("slowfast/ImageNet/MVIT_B_16_CONV.yaml", "slowfast_2d", 1000, 36_982_600,
                 marks=slow),
    ("mvit/MVITv2_T.yaml", "mvit", 1000, 24_173_320),
    ("mvit/MVITv2_S.yaml", "mvit", 1000, 34_870_216),
    pytest.param("mvit/MVITv2_B.yaml", "mvit", 1000, 51_472_744, marks=slow),
]


def _meta_classifier(arch, num_classes, pool):
    with torch.device("meta"):
        return Classifier.from_arch(arch, num_classes, pool=pool)


def _synthetic_checkpoint(fixture: str, layout: str, path: str) -> dict:
    """A ``.pyth`` in the upstream layout with the shapes of the fixture's model."""
    arch, info = load_official_config(os.path.join(FIXTURES, fixture))
    shapes = _meta_classifier(arch, info["num_classes"], info["head_pool"]).state_dict()
    g = torch.Generator().manual_seed(0)
    native = {k: torch.randn(v.shape, generator=g) if v.numel() < 4096 else torch.zeros(v.shape)
              for k, v in shapes.items()}
    if layout == "mvit":
        sd = get_converter("mvit").from_native(native)
    else:
        sd = get_converter("slowfast").from_native(native)
        if layout == "slowfast_2d":  # PATCH_2D: Conv2d stem, Conv3d (1x3x3) pooling
            sd = slowfast_patch_2d(sd)
    torch.save({"epoch": 300, "model_state": sd, "optimizer_state": {}, "cfg": "..."}, path)
    return sd


@pytest.mark.parametrize("fixture,layout,num_classes,params", CASES)
def test_official_config_import(tmp_path, capsys, fixture, layout, num_classes, params):
    src, out = str(tmp_path / "official.pyth"), str(tmp_path / "converted.pth")
    original = _synthetic_checkpoint(fixture, layout, src)
    source = "mvit" if layout == "mvit" else "slowfast"
    rc = convert_checkpoint.main(
        ["--source", source, "--source-config", os.path.join(FIXTURES, fixture), src, out]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{params:,} parameters" in captured.out and "loaded strictly" in captured.out
    cfg_path = str(tmp_path / "converted.yaml")
    assert os.path.isfile(out) and os.path.isfile(cfg_path)

    # our config rebuilds the identical model
    official_arch, info = load_official_config(os.path.join(FIXTURES, fixture))
    cfg = load_config(cfg_path)
    arch = arch_from_cfg(cfg)
    assert arch.to_dict() == official_arch.to_dict()
    assert arch.block_specs() == official_arch.block_specs()
    assert cfg.MODEL.NUM_CLASSES == num_classes == info["num_classes"]
    assert cfg.MODEL.WEIGHTS == out
    model = _meta_classifier(arch, cfg.MODEL.NUM_CLASSES, cfg.MODEL.HEAD.POOL)
    assert sum(p.numel() for p in model.parameters()) == params

    # the converted weights load strictly, unchanged
    saved = load_checkpoint_file(out)
    assert saved["source"] == source and saved["converted_from"] == "official.pyth"
    model = model.to_empty(device="cpu")
    report = load_weights(model, out)
    assert report.source == "native" and not report.missing and not report.notes
    assert report.loaded == len(original)
    back = get_converter(source).from_native(saved["model"])
    if layout == "slowfast_2d":
        back = slowfast_patch_2d(back)
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)


# ------------------------------------------------------------------------------- CLI process
def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def test_cli_import_and_round_trip(tmp_path):
    """The installed entry point (a real process): import with a config, export back."""
    fixture = os.path.join(FIXTURES, "slowfast", "Kinetics", "MVITv2_S_16x4.yaml")
    src, out, back = (str(tmp_path / n) for n in ("k400.pyth", "mvitv2_s.pth", "again.pyth"))
    original = _synthetic_checkpoint("slowfast/Kinetics/MVITv2_S_16x4.yaml", "slowfast", src)
    res = _run("--source", "slowfast", "--source-config", fixture, src, out)
    assert res.returncode == 0, res.stderr
    assert "34,537,744 parameters" in res.stdout and os.path.isfile(str(tmp_path / "mvitv2_s.yaml"))

    res = _run("--to", "slowfast", out, back)
    assert res.returncode == 0, res.stderr
    exported = torch.load(back, weights_only=True)["model_state"]
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original)


def test_cli_bad_input_exit_code_2(tmp_path):
    missing = _run(str(tmp_path / "nope.pyth"), str(tmp_path / "out.pth"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = _run("--source", "caffe2", str(tmp_path / "a"), str(tmp_path / "b"))
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
    assert not os.path.exists(tmp_path / "out.pth")


class Payload:
    """An arbitrary pickled object inside a checkpoint."""


def test_unsafe_pickle_needs_opt_in(tmp_path, capsys):
    src, out = str(tmp_path / "x.pyth"), str(tmp_path / "x.pth")
    sd = _synthetic_checkpoint("mvit/MVITv2_T.yaml", "mvit", src)
    torch.save({"model_state": sd, "extra": Payload()}, src)
    assert convert_checkpoint.main([src, out]) == 2
    err = capsys.readouterr().err
    assert "--unsafe-pickle" in err and not os.path.exists(out)
    assert convert_checkpoint.main(["--unsafe-pickle", src, out]) == 0
    assert load_checkpoint_file(out)["source"] == "mvit"


def test_unreadable_and_mismatched_inputs(tmp_path, capsys):
    garbage = tmp_path / "garbage.pyth"
    garbage.write_bytes(b"this is not a checkpoint at all")
    assert convert_checkpoint.main([str(garbage), str(tmp_path / "o.pth")]) == 2
    assert "error:" in capsys.readouterr().err

    # an MViTv2-T checkpoint offered with the MViTv2-S config: refused, nothing written
    src, out = str(tmp_path / "t.pyth"), str(tmp_path / "t.pth")
    _synthetic_checkpoint("mvit/MVITv2_T.yaml", "mvit", src)
    cfg = os.path.join(FIXTURES, "mvit", "MVITv2_S.yaml")
    assert convert_checkpoint.main(["--source-config", cfg, src, out]) == 2
    assert "same architecture" in capsys.readouterr().err
    assert not os.path.exists(out) and not os.path.exists(str(tmp_path / "t.yaml"))

    # a layout nobody recognises
    torch.save({"model_state": {"foo.weight": torch.zeros(2)}}, src)
    assert convert_checkpoint.main([src, out]) == 2
    assert "could not tell which codebase" in capsys.readouterr().err
    assert convert_checkpoint.main(["--to", "mvit", "--source-config", cfg, src, out]) == 2


def test_export_detectron2_pkl(tmp_path, capsys):
    """``--to detectron2`` with a .pkl writes a model-zoo style pickle of numpy arrays."""
    from mvit_tasks.modeling.backbone.mvit import MViT
    from mvit_tasks.modeling.backbone.variants import get_variant

    with torch.device("meta"):
        bb = MViT(get_variant("mvitv2_t_coco").arch)
    native = {"backbone." + k: torch.zeros(v.shape) for k, v in bb.state_dict().items()}
    native["backbone.fpn_lateral2.weight"] = torch.ones(256, 96, 1, 1)
    src, out = str(tmp_path / "native.pth"), str(tmp_path / "model_final.pkl")
    torch.save({"model": native}, src)
    assert convert_checkpoint.main(["--to", "detectron2", src, out]) == 0
    with open(out, "rb") as f:
        obj = pickle.load(f)
    assert obj["model"]["backbone.bottom_up.patch_embed.proj.weight"].shape == (96, 3, 7, 7)
    assert obj["model"]["backbone.fpn_lateral2.weight"].shape == (256, 96, 1, 1)
    assert "__author__" in obj
    reread = load_checkpoint_file(out)  # the safe reader accepts what we write
    assert reread["model"]["backbone.bottom_up.scale5_norm.weight"].shape == (768,)
