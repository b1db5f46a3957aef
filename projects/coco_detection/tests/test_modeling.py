"""COCO detector: torchvision Mask R-CNN around our backbone + FPN, detectron2 weights, adapter.

The detectron2 checkpoints here are built in the test from a model's tensors with an inverse name
map written out below from detectron2's module attribute names (``GeneralizedRCNN`` > ``FPN``
``fpn_lateral{k}``/``fpn_output{k}``, ``StandardRPNHead`` ``conv``/``conv.conv{j}``,
``objectness_logits``, ``anchor_deltas``, ``FastRCNNConvFCHead`` ``conv{j}``/``fc{j}``,
``FastRCNNOutputLayers`` ``cls_score`` (background last) / ``bbox_pred`` (4K rows),
``MaskRCNNConvUpsampleHead`` ``mask_fcn{j}``/``deconv``/``predictor`` (K maps)), saved the way
detectron2 saves them, loaded back, and the detections compared exactly.
"""
from __future__ import annotations

import math
import pickle
import sys
import types
from typing import Dict, List

import pytest
import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign, roi_align

from mvit_tasks.checkpoint.converters import get_converter
from mvit_tasks.checkpoint.loader import CheckpointMismatchError
from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.modeling.layers.rel_pos import resize_rel_pos
from mvit_tasks.modeling.meta_arch import Classifier
from mvit_tasks.registry import Registry
from mvit_tasks.projects.coco_detection.modeling import (
    FixedScaleRoIAlign,
    FixedStrideAnchorGenerator,
    build_mask_rcnn,
    convert_detectron2_state_dict,
    load_backbone_init,
    load_detectron2_checkpoint,
)
from mvit_tasks.projects.coco_detection.modeling import d2_adapter

K = 3  # foreground classes; the model has K + 1 outputs
CASCADE = dict(box_head="4conv1fc", box_head_norm="BN", rpn_conv_depth=2, mask_head_norm="BN")


# ------------------------------------------------------------------------------------ helpers
def _backbone(spatial: int = 224) -> MViT:
    """MViTv2-T COCO backbone, 2 blocks per stage, width 16, 16-token windows (so 64-128 px
    images are split into several windows)."""
    arch = get_variant("mvitv2_t_coco").arch.shallow(2)
    return MViT(arch.replace(embed_dim=16, window_size=16, spatial_size=(spatial, spatial)))


def _detector(**kw) -> nn.Module:
    settings = dict(
        fpn={"out_channels": 32}, box_fc_dim=64, min_size=96, max_size=128,
        rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=30, rpn_batch_size_per_image=64, box_batch_size_per_image=32,
        box_detections_per_img=10,
    )
    settings.update(kw)
    return build_mask_rcnn(_backbone(), K + 1, **settings)


def _fill(model: nn.Module, seed: int) -> nn.Module:
    """Deterministic values for every tensor (norm scales near 1, positive running variances)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            v = torch.randn(t.shape, generator=g) * 0.1
            if name.endswith("running_var"):
                v = v.abs() + 0.5
            elif t.ndim == 1 and name.endswith("weight"):
                v = v + 1.0
            t.copy_(v)
    return model


def _images() -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, 100, 75, generator=g), torch.rand(3, 64, 96, generator=g)]


def _targets(images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
    out = []
    for im in images:
        h, w = im.shape[1:]
        boxes = torch.tensor([[5.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]])
        masks = torch.zeros(2, h, w, dtype=torch.uint8)
        masks[0, 6:50, 5:40] = 1
        masks[1, 10:30, 20:60] = 1
        out.append({"boxes": boxes, "labels": torch.tensor([1, 3]), "masks": masks})
    return out


def _detect(model: nn.Module) -> List[Dict[str, torch.Tensor]]:
    model.eval()
    with torch.no_grad():
        return model(_images())


def _same(a: List[Dict[str, torch.Tensor]], b: List[Dict[str, torch.Tensor]]) -> bool:
    return all(set(x) == set(y) and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def _conv(d2: str, ours: str, sd, out) -> None:
    """torchvision Conv2dNormActivation ``ours.{0,1}`` -> detectron2 Conv2d ``d2[.norm]``."""
    for k, v in sd.items():
        if k.startswith(ours + ".0."):
            out[f"{d2}.{k[len(ours) + 3:]}"] = v
        elif k.startswith(ours + ".1.") and not k.endswith("num_batches_tracked"):
            out[f"{d2}.norm.{k[len(ours) + 3:]}"] = v  # detectron2 .pkl files omit the counter


def to_detectron2(model: nn.Module, cascade_stage: int = -1) -> Dict[str, torch.Tensor]:
    """Inverse of the loader, written independently: our model -> detectron2 tensor names."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    bottom = {"backbone." + k[len("backbone.bottom_up."):]: v for k, v in sd.items()
              if k.startswith("backbone.bottom_up.")}
    out = get_converter("detectron2").from_native(bottom)
    for i, k in enumerate((2, 3, 4, 5)):
        _conv(f"backbone.fpn_lateral{k}", f"backbone.fpn.inner_blocks.{i}", sd, out)
        _conv(f"backbone.fpn_output{k}", f"backbone.fpn.layer_blocks.{i}", sd, out)
    rpn = "proposal_generator.rpn_head"
    depth = len(model.rpn.head.conv)
    for j in range(depth):
        _conv(f"{rpn}.conv" + (f".conv{j}" if depth > 1 else ""), f"rpn.head.conv.{j}", sd, out)
    for t in ("weight", "bias"):
        out[f"{rpn}.objectness_logits.{t}"] = sd[f"rpn.head.cls_logits.{t}"]
        out[f"{rpn}.anchor_deltas.{t}"] = sd[f"rpn.head.bbox_pred.{t}"]
        cls = sd[f"roi_heads.box_predictor.cls_score.{t}"]
        box = sd[f"roi_heads.box_predictor.bbox_pred.{t}"]
        stage = "" if cascade_stage < 0 else f".{cascade_stage}"
        out[f"roi_heads.box_predictor{stage}.cls_score.{t}"] = torch.cat((cls[1:], cls[:1]))
        # class-specific: drop the 4 background rows; cascade: class-agnostic (4 rows)
        box = box[4:] if cascade_stage < 0 else box[4:8]
        out[f"roi_heads.box_predictor{stage}.bbox_pred.{t}"] = box
        out[f"roi_heads.mask_head.deconv.{t}"] = sd[f"roi_heads.mask_predictor.conv5_mask.{t}"]
        logits = sd[f"roi_heads.mask_predictor.mask_fcn_logits.{t}"]
        out[f"roi_heads.mask_head.predictor.{t}"] = logits[1:]
        if cascade_stage < 0:
            out[f"roi_heads.box_head.fc1.{t}"] = sd[f"roi_heads.box_head.fc6.{t}"]
            out[f"roi_heads.box_head.fc2.{t}"] = sd[f"roi_heads.box_head.fc7.{t}"]
        else:
            out[f"roi_heads.box_head{stage}.fc1.{t}"] = sd[f"roi_heads.box_head.5.{t}"]
    if cascade_stage >= 0:
        for j in range(4):
            d2_name = f"roi_heads.box_head.{cascade_stage}.conv{j + 1}"
            _conv(d2_name, f"roi_heads.box_head.{j}", sd, out)
    for j in range(4):
        _conv(f"roi_heads.mask_head.mask_fcn{j + 1}", f"roi_heads.mask_head.{j}", sd, out)
    return out


# ------------------------------------------------------------------------- training / inference
def test_one_train_step_gives_finite_losses_and_backbone_gradients() -> None:
    model = _detector().train()
    assert model.transform.size_divisible == 32
    images, targets = _images(), _targets(_images())
    batch, _ = model.transform(images, targets)
    # no train-time resize (the data pipeline augments), padding to multiples of 32
    assert batch.image_sizes == [(100, 75), (64, 96)]
    assert tuple(batch.tensors.shape) == (2, 3, 128, 96)
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                           "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    bottom = model.backbone.bottom_up
    for p in (bottom.patch_embed.proj.weight, bottom.blocks[0].attn.qkv.weight,
              bottom.blocks[-1].mlp.fc2.weight, bottom.scale2_norm.weight,
              model.backbone.fpn.inner_blocks[0][0].weight,
              model.roi_heads.mask_predictor.mask_fcn_logits.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_inference_returns_torchvision_detections() -> None:
    model = _fill(_detector(), 0)
    out = _detect(model)
    assert len(out) == 2
    for det, (h, w) in zip(out, [(100, 75), (64, 96)]):
        n = det["boxes"].shape[0]
        assert 0 < n <= 10
        assert det["labels"].dtype == torch.int64
        assert det["labels"].min() >= 1 and det["labels"].max() <= K
        assert (det["scores"] >= 0.05).all() and torch.all(det["scores"][:-1] >= det["scores"][1:])
        boxes = det["boxes"]  # xyxy in input pixels, clipped to the image
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert tuple(det["masks"].shape) == (n, 1, h, w)
        assert det["masks"].min() >= 0 and det["masks"].max() <= 1


def test_faster_rcnn_without_mask_branch() -> None:
    model = _detector(mask_on=False)
    assert not hasattr(model.roi_heads, "mask_head") or model.roi_heads.mask_head is None
    assert set(_detect(_fill(model, 0))[0]) == {"boxes", "labels", "scores"}


def test_detectron2_recipe_values() -> None:
    model = _detector()
    assert tuple(model.roi_heads.box_coder.weights) == (10.0, 10.0, 5.0, 5.0)
    assert tuple(model.rpn.box_coder.weights) == (1.0, 1.0, 1.0, 1.0)
    assert model.rpn.anchor_generator.strides == [4, 8, 16, 32, 64]
    assert model.rpn.anchor_generator.num_anchors_per_location() == [3] * 5
    assert model.roi_heads.box_roi_pool.featmap_names == ["p2", "p3", "p4", "p5"]
    assert model.roi_heads.box_roi_pool.aligned and model.roi_heads.box_roi_pool.sampling_ratio == 0
    assert model.roi_heads.mask_roi_pool.output_size == (14, 14)
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 32
    with pytest.raises(ValueError, match="anchor sizes"):
        _detector(anchor_sizes=(32, 64))
    with pytest.raises(ValueError, match="background"):
        build_mask_rcnn(_backbone(), 1)


def test_full_size_mvitv2_t_mask_rcnn_has_the_published_parameter_count() -> None:
    """detectron2 reports 44 M parameters for MViTv2-T Mask R-CNN (projects/MViTv2/README.md)."""
    with torch.device("meta"):
        model = build_mask_rcnn(MViT(get_variant("mvitv2_t_coco").arch), 81)
    total = sum(p.numel() for p in model.parameters())
    assert 43.5e6 < total < 44.5e6, total
    assert isinstance(model.roi_heads.box_head, TwoMLPHead)


def test_anchors_use_fixed_strides_and_unrounded_cells() -> None:
    """detectron2 DefaultAnchorGenerator: p6 anchors every 64 px even when the padded image is
    96 px (torchvision infers 96 // 2 = 48) and cell anchors are not rounded."""
    strides = [4, 8, 16, 32, 64]
    sizes = [(32,), (64,), (128,), (256,), (512,)]
    ours = FixedStrideAnchorGenerator(sizes, [(0.5, 1.0, 2.0)] * 5, strides)
    tv = AnchorGenerator(tuple(sizes), ((0.5, 1.0, 2.0),) * 5)
    images = ImageList(torch.zeros(1, 3, 96, 128), [(96, 128)])
    maps = [torch.zeros(1, 1, 96 // s, 128 // s) for s in strides[:4]] + [torch.zeros(1, 1, 2, 2)]
    a, b = ours(images, maps)[0], tv(images, maps)[0]
    assert a.shape == b.shape == (3 * sum(m.shape[-2] * m.shape[-1] for m in maps), 4)
    w = math.sqrt(32 * 32 / 0.5)
    torch.testing.assert_close(a[0], torch.tensor([-w / 2, -0.25 * w, w / 2, 0.25 * w]))
    assert torch.equal(b[0], torch.tensor([-23.0, -11.0, 23.0, 11.0]))
    p6 = a[-12:].view(4, 3, 4)
    centres = (p6[:, 1, :2] + p6[:, 1, 2:]) / 2  # the ratio-1 anchor of each of the 2 x 2 cells
    assert torch.equal(centres, torch.tensor([[0.0, 0.0], [64.0, 0.0], [0.0, 64.0], [64.0, 64.0]]))
    tv6 = b[-12:].view(4, 3, 4)
    assert torch.equal((tv6[3, 1, :2] + tv6[3, 1, 2:]) / 2, torch.tensor([64.0, 48.0]))


def test_roi_pooler_is_roi_align_v2_on_the_fpn_level() -> None:
    g = torch.Generator().manual_seed(0)
    feats = {f"p{k}": torch.randn(2, 4, 256 >> k, 192 >> k, generator=g) for k in (2, 3, 4, 5)}
    small = torch.tensor([[3.0, 4.0, 30.0, 41.0]])  # sqrt(area) 32 -> level floor(4 - 2.8) -> p2
    large = torch.tensor([[1.0, 2.0, 180.0, 250.0]])  # 211 -> floor(4 + log2(211 / 224)) = p3
    pool = FixedScaleRoIAlign(["p2", "p3", "p4", "p5"], [4, 8, 16, 32], 7, 0, aligned=True)
    out = pool(feats, [small, large], [(256, 192)] * 2)
    ref_small = roi_align(feats["p2"], [small, large[:0]], 7, 1 / 4, 0, aligned=True)
    ref_large = roi_align(feats["p3"], [small[:0], large], 7, 1 / 8, 0, aligned=True)
    assert torch.equal(out, torch.cat((ref_small, ref_large)))
    # with aligned=False it is torchvision's MultiScaleRoIAlign
    legacy = FixedScaleRoIAlign(["p2", "p3", "p4", "p5"], [4, 8, 16, 32], 7, 2, aligned=False)
    tv = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, 2)
    assert torch.equal(legacy(feats, [small, large], [(256, 192)] * 2),
                       tv(feats, [small, large], [(256, 192)] * 2))
    assert not torch.equal(out, legacy(feats, [small, large], [(256, 192)] * 2))


# ------------------------------------------------------------------------ detectron2 weights
@pytest.mark.parametrize("fmt", ["pth", "pkl"])
def test_detectron2_checkpoint_round_trip_gives_identical_detections(tmp_path, fmt) -> None:
    a = _fill(_detector(box_score_thresh=0.0), 0)
    d2 = to_detectron2(a)
    # the checkpoint has detectron2's layout and shapes
    assert d2["roi_heads.box_predictor.cls_score.weight"].shape == (K + 1, 64)
    assert d2["roi_heads.box_predictor.bbox_pred.weight"].shape == (4 * K, 64)
    assert d2["roi_heads.mask_head.predictor.weight"].shape == (K, 32, 1, 1)
    assert d2["backbone.bottom_up.blocks.0.attn.pool_q.weight"].ndim == 4
    assert d2["backbone.fpn_lateral2.weight"].shape == (32, 16, 1, 1)
    assert "proposal_generator.rpn_head.conv.weight" in d2 and "roi_heads.box_head.fc2.bias" in d2
    path = tmp_path / f"model_final.{fmt}"
    if fmt == "pth":
        torch.save({"model": d2, "iteration": 10}, path)
    else:  # model-zoo pickle: numpy arrays, plus buffers some detectron2 versions saved
        extra = {"pixel_mean": torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1),
                 "proposal_generator.anchor_generator.cell_anchors.0": torch.zeros(3, 4)}
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in {**d2, **extra}.items()},
                         "__author__": "test"}, f)
    b = _fill(_detector(box_score_thresh=0.0), 1)
    expected = _detect(a)
    assert not _same(expected, _detect(b))
    report = load_detectron2_checkpoint(b, str(path))
    got = _detect(b)
    assert _same(expected, got) and sum(len(d["boxes"]) for d in got) > 0
    assert report.load.missing == [] and report.load.unexpected == []
    if fmt == "pth":
        assert report.unmapped == {}
    else:
        assert set(report.unmapped) == {"pixel_mean",
                                        "proposal_generator.anchor_generator.cell_anchors.0"}
        assert "image_mean" in report.unmapped["pixel_mean"]
    # every tensor equals the original except the background rows torchvision has and d2 lacks
    sb, sa = b.state_dict(), a.state_dict()
    differ = sorted(k for k in sa if not torch.equal(sa[k], sb[k]))
    assert differ == ["roi_heads.box_predictor.bbox_pred.bias",
                      "roi_heads.box_predictor.bbox_pred.weight",
                      "roi_heads.mask_predictor.mask_fcn_logits.bias",
                      "roi_heads.mask_predictor.mask_fcn_logits.weight"]
    assert not sb["roi_heads.box_predictor.bbox_pred.weight"][:4].any()
    reg = "roi_heads.box_predictor.bbox_pred.weight"
    assert torch.equal(sb[reg][4:], sa[reg][4:])


def test_class_order_and_background_rows_are_converted_exactly() -> None:
    model = _detector()
    d2 = to_detectron2(model)
    d2["roi_heads.box_predictor.cls_score.bias"] = torch.arange(K + 1.0)  # fg0, fg1, fg2, bg
    d2["roi_heads.box_predictor.cls_score.weight"] = torch.arange(K + 1.0)[:, None].repeat(1, 64)
    d2["roi_heads.box_predictor.bbox_pred.bias"] = torch.arange(1.0, 4 * K + 1)
    d2["roi_heads.mask_head.predictor.bias"] = torch.arange(1.0, K + 1)
    sd, unmapped, notes = convert_detectron2_state_dict(d2, model)
    assert unmapped == {} and any("background last -> first" in n for n in notes)
    assert sd["roi_heads.box_predictor.cls_score.bias"].tolist() == [3.0, 0.0, 1.0, 2.0]
    assert sd["roi_heads.box_predictor.cls_score.weight"][:, 0].tolist() == [3.0, 0.0, 1.0, 2.0]
    assert sd["roi_heads.box_predictor.bbox_pred.bias"].tolist() == [0.0] * 4 + list(range(1, 13))
    assert sd["roi_heads.mask_predictor.mask_fcn_logits.bias"].tolist() == [0.0, 1.0, 2.0, 3.0]
    # another class count: the class layers are not loaded, and the strict load says so
    d2["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(81, 64)
    d2["roi_heads.box_predictor.cls_score.bias"] = torch.zeros(81)
    with pytest.raises(CheckpointMismatchError, match="cls_score"):
        load_detectron2_checkpoint(model, {"model": d2})
    report = load_detectron2_checkpoint(model, {"model": d2},
                                        allow_missing=["roi_heads.box_predictor.cls_score."])
    assert report.load.missing == ["roi_heads.box_predictor.cls_score.weight",
                                   "roi_heads.box_predictor.cls_score.bias"]
    assert any("another class count" in n for n in report.notes)


def test_box_delta_weights_are_checked() -> None:
    d2 = to_detectron2(_detector())
    with pytest.raises(ValueError, match=r"bbox_reg_weights=\(10.0, 10.0, 5.0, 5.0\)"):
        load_detectron2_checkpoint(_detector(bbox_reg_weights=(20, 20, 10, 10)), {"model": d2})


def test_cascade_checkpoint_loads_one_stage_into_the_cascade_heads(tmp_path) -> None:
    kw = dict(CASCADE, bbox_reg_weights=(30.0, 30.0, 15.0, 15.0), box_score_thresh=0.0)
    a = _fill(_detector(**kw), 0)
    with torch.no_grad():  # class-agnostic regression, as in the cascade heads
        reg = a.roi_heads.box_predictor.bbox_pred
        for t in (reg.weight, reg.bias):
            t.copy_(t[4:8].repeat(K + 1, *([1] * (t.ndim - 1))))
    d2 = to_detectron2(a, cascade_stage=2)
    for s in (0, 1):  # the other stages (never used by the single-stage model)
        d2.update({k.replace(".2.", f".{s}.", 1): v + 1 for k, v in d2.items()
                   if k.startswith(("roi_heads.box_head.2.", "roi_heads.box_predictor.2."))})
    assert "roi_heads.box_head.2.conv4.norm.running_var" in d2
    assert "proposal_generator.rpn_head.conv.conv1.weight" in d2
    torch.save({"model": d2}, tmp_path / "cascade.pth")
    b = _fill(_detector(**kw), 1)
    with pytest.raises(ValueError, match="Cascade R-CNN checkpoint.*cascade_stage"):
        load_detectron2_checkpoint(b, str(tmp_path / "cascade.pth"))
    with pytest.raises(ValueError, match=r"bbox_reg_weights=\(10.0"):
        load_detectron2_checkpoint(b, str(tmp_path / "cascade.pth"), cascade_stage=0)
    report = load_detectron2_checkpoint(b, str(tmp_path / "cascade.pth"), cascade_stage=2)
    assert _same(_detect(a), _detect(b))
    assert len(report.unmapped) == 2 * (4 * 5 + 2 + 4) and all(
        "other cascade stage" in r for r in report.unmapped.values())


def test_imagenet_checkpoint_initialises_the_backbone_only(tmp_path) -> None:
    """An mvit-repo ImageNet .pyth (global attention, 160-px rel-pos tables) -> the window-
    attention COCO backbone: blocks and final norm loaded, rel-pos resized, the rest untouched."""
    arch = get_variant("mvitv2_t").arch.shallow(2).replace(embed_dim=16, spatial_size=(160, 160))
    cls = _fill(Classifier.from_arch(arch, 10), 3)
    torch.save({"model_state": get_converter("mvit").from_native(cls.state_dict()), "epoch": 300},
               tmp_path / "MViTv2_T_in1k.pyth")
    det = _fill(_detector(), 0)
    before = {k: v.clone() for k, v in det.state_dict().items()}
    report = load_backbone_init(det, str(tmp_path / "MViTv2_T_in1k.pyth"))
    assert report.source == "mvit"
    after, src = det.state_dict(), cls.state_dict()
    bottom = "backbone.bottom_up."
    for k, v in src.items():
        if k.startswith("head."):
            continue
        mine = after[bottom + k[len("backbone."):]]
        if "rel_pos" in k and v.shape != mine.shape:
            torch.testing.assert_close(mine, resize_rel_pos(v, mine.shape[0]))
        else:
            assert torch.equal(mine, v), k
    assert any("rel_pos_h: resized 79 -> 111" in n for n in report.notes)
    assert any("non-backbone tensors dropped (head.projection" in n for n in report.notes)
    untouched = [k for k in after if not k.startswith(bottom) or "scale2_norm" in k]
    assert untouched and all(torch.equal(after[k], before[k]) for k in untouched)
    assert {k for k in report.missing if k.startswith(bottom)} == {
        f"{bottom}scale{i}_norm.{p}" for i in (2, 3, 4) for p in ("weight", "bias")}


# ----------------------------------------------------------------------- detectron2 adapter
NO_D2 = "detectron2 is not installable here (no C++ sources on PyPI; see README)"


@pytest.mark.skipif(not d2_adapter.detectron2_available(), reason=NO_D2)
def test_detectron2_backbone_registry() -> None:  # pragma: no cover - needs detectron2
    from detectron2.config import get_cfg
    from detectron2.modeling import BACKBONE_REGISTRY, build_backbone

    d2_adapter.register_detectron2_backbone()
    assert d2_adapter.BUILDER_NAME in BACKBONE_REGISTRY
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = d2_adapter.BUILDER_NAME
    backbone = build_backbone(cfg)
    assert {k: v.stride for k, v in backbone.output_shape().items()} == {
        "p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}


@pytest.mark.skipif(d2_adapter.detectron2_available(), reason="detectron2 is installed")
def test_adapter_without_detectron2_says_why() -> None:
    with pytest.raises(ImportError, match="detectron2 is not installed.*build_mask_rcnn"):
        d2_adapter.register_detectron2_backbone()


def test_adapter_against_a_stub_of_detectron2_interface(monkeypatch) -> None:
    """Our side of the contract, on a stand-in for ``detectron2.modeling`` (Backbone, ShapeSpec,
    BACKBONE_REGISTRY keyed by ``__name__``); the real thing is tested above when installed."""
    stub = types.ModuleType("detectron2.modeling")
    stub.Backbone = type("Backbone", (nn.Module,), {})
    stub.ShapeSpec = lambda channels, stride: (channels, stride)
    stub.BACKBONE_REGISTRY = Registry("BACKBONE")
    monkeypatch.setitem(sys.modules, "detectron2", types.ModuleType("detectron2"))
    monkeypatch.setitem(sys.modules, "detectron2.modeling", stub)
    assert d2_adapter.detectron2_available()
    builder = d2_adapter.register_detectron2_backbone()
    assert stub.BACKBONE_REGISTRY.get(d2_adapter.BUILDER_NAME) is builder
    assert d2_adapter.register_detectron2_backbone() is builder  # idempotent
    fpn = types.SimpleNamespace(IN_FEATURES=[], OUT_CHANNELS=16, NORM="LN")
    cfg = types.SimpleNamespace(MODEL=types.SimpleNamespace(
        FPN=fpn, MVIT_TASKS=types.SimpleNamespace(VARIANT="mvitv2_t_coco")))
    net = builder(cfg, None)
    assert isinstance(net, stub.Backbone) and net.size_divisibility == 32
    assert net.output_shape() == {"p2": (16, 4), "p3": (16, 8), "p4": (16, 16), "p5": (16, 32),
                                  "p6": (16, 64)}
    small = d2_adapter.build_detectron2_backbone(out_channels=8, arch=_backbone().arch)
    with torch.no_grad():
        out = small.eval()(torch.zeros(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (1, 8, 16, 16), "p3": (1, 8, 8, 8), "p4": (1, 8, 4, 4), "p5": (1, 8, 2, 2),
        "p6": (1, 8, 1, 1)}
