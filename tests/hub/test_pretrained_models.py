"""``create_model(name, pretrained=True)``, ``MODEL.WEIGHTS zoo:<variant>`` and
``tools/download_weights.py`` end to end, with a tiny variant whose registry entry points at a
SlowFast-format checkpoint served on 127.0.0.1 (the registry is monkeypatched; nothing leaves
this machine)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os

import pytest
import torch

import mvit_tasks
from mvit_tasks.checkpoint.converters import get_converter
from mvit_tasks.checkpoint.loader import load_weights
from mvit_tasks.hub import download as dl
from mvit_tasks.hub.download import HashMismatchError, WeightsDownloadError
from mvit_tasks.hub.weights import PretrainedWeights
from mvit_tasks.modeling.backbone import pretrained as zoo
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import ModelVariant, get_variant
from mvit_tasks.modeling.meta_arch import Classifier
from mvit_tasks.registry import VARIANT_REGISTRY

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "tiny_zoo_test"


def _arch():
    return get_variant("mvitv2_s_16x4").arch.shallow(2).replace(
        embed_dim=8, num_frames=4, spatial_size=(32, 32))


def _slowfast_bytes(model: torch.nn.Module) -> bytes:
    """The model as an official SlowFast ``.pyth`` would hold it (``model_state``)."""
    sd = get_converter("slowfast").from_native(model.state_dict())
    buf = io.BytesIO()
    torch.save({"model_state": sd, "cur_epoch": 200}, buf)
    return buf.getvalue()


@pytest.fixture
def tiny_zoo(weights_server, torch_home, monkeypatch):
    """A registered tiny variant with two served weights (``k400``: 5 classes, sha256
    published; ``other``: 3 classes, no hash) and one page-only entry."""
    torch.manual_seed(1)
    source = Classifier.from_arch(_arch(), 5).eval()
    data = _slowfast_bytes(source)
    torch.manual_seed(2)
    other = Classifier.from_arch(_arch(), 3).eval()
    other_data = _slowfast_bytes(other)
    variant = ModelVariant(name=NAME, arch=_arch(), num_classes=5, sampling_rate=2,
                           class_names="")  # 4 frames, 32 px: from the arch
    monkeypatch.setitem(VARIANT_REGISTRY._obj_map, NAME, variant)
    entries = (
        PretrainedWeights("k400", weights_server.serve("/zoo/tiny_k400.pyth", data), "test page",
                          "slowfast", "tiny", 5, sha256=hashlib.sha256(data).hexdigest(),
                          resize_size=36, crop_size=32),
        PretrainedWeights("other", weights_server.serve("/zoo/tiny_other.pyth", other_data),
                          "test page", "slowfast", "tiny", 3, resize_size=32, crop_size=32),
        PretrainedWeights("drive", "https://drive.example/view", "test page", "slowfast", "tiny",
                          5, direct=False, file="tiny_drive.pyth"),
    )
    monkeypatch.setitem(zoo.PRETRAINED, NAME, entries)
    return source, other, data, entries


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_create_model_pretrained_downloads_checks_and_converts(tiny_zoo, weights_server,
                                                              torch_home):
    source, _, data, _ = tiny_zoo
    model = mvit_tasks.create_model(NAME, pretrained=True).eval()
    _same(model, source)
    assert sorted(os.listdir(torch_home)) == ["tiny_k400.pyth", "tiny_k400.pyth.sha256"]
    cfg = model.pretrained_cfg
    assert cfg["tag"] == "k400" and cfg["num_classes"] == 5 and cfg["input_size"] == (3, 4, 32, 32)
    assert cfg["resize_size"] == 36 and cfg["sha256"] == hashlib.sha256(data).hexdigest()
    x = torch.randint(0, 256, (4, 3, 40, 50), dtype=torch.uint8)
    clip = mvit_tasks.modeling.create_transform(cfg)(x)
    assert clip.shape == (3, 4, 32, 32)
    assert model(clip[None]).shape == (1, 5)
    mvit_tasks.create_model(NAME, pretrained=True)  # from the cache: one request in all
    assert weights_server.requests == ["/zoo/tiny_k400.pyth"]


def test_tagged_weights_size_the_head(tiny_zoo):
    _, other, _, _ = tiny_zoo
    for model in (mvit_tasks.create_model(f"{NAME}.other", pretrained=True),
                  mvit_tasks.create_model(NAME, pretrained="other")):
        _same(model.eval(), other)
        assert model.num_classes == 3 and model.pretrained_cfg["tag"] == "other"
    with pytest.raises(KeyError, match="tags: \\['k400', 'other', 'drive'\\]"):
        mvit_tasks.create_model(NAME, pretrained="nope")


def test_pretrained_with_a_new_head_pooled_features_and_features_only(tiny_zoo):
    source, _, _, _ = tiny_zoo
    x = torch.randn(2, 3, 4, 32, 32)
    new = mvit_tasks.create_model(NAME, pretrained=True, num_classes=7).eval()
    assert new(x).shape == (2, 7)
    assert torch.equal(new.backbone.state_dict()["scale5_norm.weight"],
                       source.backbone.state_dict()["scale5_norm.weight"])
    pooled = mvit_tasks.create_model(NAME, pretrained=True, num_classes=0).eval()
    with torch.no_grad():
        assert torch.allclose(pooled(x), source.forward_head(source.forward_features(x),
                                                             pre_logits=True))
    feats = mvit_tasks.create_model(NAME, pretrained=True, features_only=True).eval()
    assert isinstance(feats, MViT)
    with torch.no_grad():
        out = feats(x)
        assert torch.allclose(out["scale5"], source.forward_features(x)["scale5"], atol=1e-6)
    assert set(out) >= {"scale2", "scale3", "scale4", "scale5"}


def test_wrong_published_hash_fails_and_caches_nothing(tiny_zoo, torch_home, monkeypatch):
    entries = tiny_zoo[3]
    bad = dataclasses.replace(entries[0], sha256="0" * 64)
    monkeypatch.setitem(zoo.PRETRAINED, NAME, (bad,) + entries[1:])
    with pytest.raises(HashMismatchError):
        mvit_tasks.create_model(NAME, pretrained=True)
    assert not os.path.isdir(torch_home) or os.listdir(torch_home) == []


def test_model_weights_zoo_spec_in_configs_and_load_weights(tiny_zoo, tmp_path, caplog):
    source, other, _, _ = tiny_zoo
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"MODEL:\n  VARIANT: {NAME}\n  NUM_CLASSES: 5\n  WEIGHTS: zoo:{NAME}\n"
                   "  HEAD: {DROPOUT_RATE: 0.0}\nDATA: {NUM_FRAMES: 4, TRAIN_CROP_SIZE: 32}\n")
    _same(mvit_tasks.create_model(config_file=str(cfg)).eval(), source)
    model = Classifier.from_arch(_arch(), 3)
    with caplog.at_level(logging.WARNING, logger="mvit_tasks.hub.download"):
        report = load_weights(model, f"zoo:{NAME}.other")  # no published hash
    assert report.source == "slowfast"
    assert any("UNVERIFIED" in r.getMessage() for r in caplog.records)
    _same(model.eval(), other)
    _same(mvit_tasks.create_model(NAME, weights=f"zoo:{NAME}.other", num_classes=3).eval(),
          other)


def test_offline_mirror_and_page_only_weights(tiny_zoo, tmp_path, torch_home, monkeypatch,
                                              weights_server):
    source, _, data, _ = tiny_zoo
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny_k400.pyth").write_bytes(data)
    with pytest.raises(WeightsDownloadError, match="published as a page"):
        mvit_tasks.create_model(NAME, pretrained="drive")
    (mirror / "tiny_drive.pyth").write_bytes(data)
    monkeypatch.setenv(dl.MIRROR_ENV, str(mirror))
    _same(mvit_tasks.create_model(NAME, pretrained=True).eval(), source)
    _same(mvit_tasks.create_model(NAME, pretrained="drive").eval(), source)
    assert weights_server.requests == [] and not os.path.isdir(torch_home)


def test_download_weights_tool(tiny_zoo, torch_home, capsys):
    from mvit_tasks.cli import download_weights
    assert download_weights.main(["--list"]) == 0
    table = capsys.readouterr().out
    assert f"| {NAME}.k400 | slowfast |" in table and "sha256 |" in table
    assert "(a page: download by hand)" in table
    assert download_weights.main([NAME, f"{NAME}.other", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert os.path.join(torch_home, "tiny_k400.pyth") in out and "tiny_other.pyth" in out
    assert download_weights.main(["--verify"]) == 0
    out = capsys.readouterr().out
    assert "ok (published hash)" in out and "matches the first download" in out
    with open(os.path.join(torch_home, "tiny_other.pyth"), "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    assert download_weights.main(["--verify"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert download_weights.main([f"{NAME}.nope"]) == 2
    assert download_weights.main([f"{NAME}.drive"]) == 1
