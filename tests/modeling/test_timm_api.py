"""The classifier speaks timm's model API; ``create_model(num_classes=0)`` gives pooled
features and ``features_only=True`` the multi-scale dict; ``pretrained_cfg`` and ``meta``."""
from __future__ import annotations

import pytest
import torch

import mvit_tasks
from mvit_tasks.modeling import create_transform, get_variant
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.meta_arch import Classifier


def _tiny(classes: int = 5, video: bool = True) -> Classifier:
    name = "mvitv2_s_16x4" if video else "mvitv2_t"
    arch = get_variant(name).arch.shallow(2).replace(embed_dim=8, spatial_size=(32, 32),
                                                     num_frames=4 if video else 1)
    return Classifier.from_arch(arch, classes, dropout=0.3)


@pytest.mark.parametrize("video", [True, False])
def test_forward_features_head_reset(video):
    model = _tiny(video=video).eval()
    x = torch.randn(2, 3, 4, 32, 32) if video else torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert isinstance(feats, dict) and "scale5" in feats
        logits = model.forward_head(feats)
        assert torch.equal(logits, model(x)) and logits.shape == (2, 5)
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, model.num_features) == (2, 64)
        assert torch.allclose(model.get_classifier()(pooled), logits)
    assert model.num_classes == 5
    model.reset_classifier(3)
    assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3
    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.allclose(model(x), pooled) and model.num_classes == 0
    assert isinstance(model.get_classifier(), torch.nn.Identity)
    assert not [k for k in model.state_dict() if k.startswith("head.")]


def test_create_model_num_classes_zero_and_features_only():
    m = mvit_tasks.create_model("mvitv2_t", num_classes=0).eval()
    assert isinstance(m, Classifier)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 224, 224)).shape == (1, 768)
    assert m.pretrained_cfg["num_classes"] == 0 and m.pretrained_cfg["label_names"] is None
    f = mvit_tasks.create_model("mvitv2_t", features_only=True)
    assert isinstance(f, MViT) and list(f.output_shape()) == ["scale2", "scale3", "scale4",
                                                              "scale5"]
    assert isinstance(mvit_tasks.create_model("mvitv2_t_coco"), MViT)  # unchanged
    with pytest.raises(ValueError, match="features_only"):
        mvit_tasks.create_model("mvitv2_t", features_only=True, num_classes=5)


def test_pretrained_cfg_of_created_models_and_variants():
    m = mvit_tasks.create_model("mvitv2_t")
    cfg = m.pretrained_cfg
    assert cfg["architecture"] == "mvitv2_t" and cfg["tag"] == "in1k"
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875
    assert cfg["interpolation"] == "bicubic" and cfg["num_classes"] == 1000
    assert cfg["label_names"][:2] == ["tench", "goldfish"] and m.default_cfg is cfg
    video = get_variant("mvitv2_s_16x4").pretrained_cfg("ssv2")
    assert video["num_classes"] == 174 and len(video["label_names"]) == 174
    assert video["input_size"] == (3, 16, 224, 224) and video["resize_size"] == 224
    large = get_variant("mvitv2_l_40x3").pretrained_cfg()
    assert large["mean"] == (0.485, 0.456, 0.406) and large["resize_size"] == 312  # SlowFast YAML
    none = get_variant("mvitv2_s_cls").pretrained_cfg()
    assert none["tag"] == "" and none["url"] == "" and none["num_classes"] == 1000
    new_head = mvit_tasks.create_model("mvitv2_t", num_classes=10)
    assert new_head.pretrained_cfg["num_classes"] == 10
    assert new_head.pretrained_cfg["label_names"] is None


def test_meta_like_torchvision():
    meta = get_variant("mvitv2_t").meta()
    assert meta["num_params"] == 24_173_320 and len(meta["categories"]) == 1000
    assert meta["_metrics"] == {"ImageNet-1K": {"top1": 82.3}} and meta["_ops"] == 4.7
    assert meta["verified"] is False and "min_temporal_size" not in meta
    video = get_variant("mvitv2_s_16x4").meta("ssv2")
    assert video["min_temporal_size"] == 16 and video["num_params"] == 34_363_950
    coco = get_variant("mvitv2_t_coco").meta()
    assert coco["num_params"] == 23_405_664 and coco["categories"] is None
    with pytest.raises(ValueError, match="detection backbones"):
        get_variant("mvitv2_t_coco").transforms()


def test_variant_transforms_feed_the_model():
    t = get_variant("mvitv2_t").transforms()
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    assert t(img).shape == (3, 224, 224)
    assert t(img[None].expand(2, -1, -1, -1)).shape == (2, 3, 224, 224)
    v = create_transform(get_variant("mvitv2_s_16x4").pretrained_cfg())
    clip = torch.randint(0, 256, (16, 3, 240, 320), dtype=torch.uint8)
    assert v(clip).shape == (3, 16, 224, 224)
    assert v(clip[None]).shape == (1, 3, 16, 224, 224)
