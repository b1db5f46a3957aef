"""Cascade Mask R-CNN heads (``modeling/cascade.py``) against detectron2's ``CascadeROIHeads``.

The reference below is written from detectron2's documented arithmetic (``cascade_rcnn.py``
``_forward_box`` / ``_create_proposals_from_boxes``, ``box_regression.py`` ``Box2BoxTransform``
with the ``log(1000 / 16)`` scale clamp, ``fast_rcnn.py`` ``fast_rcnn_inference_single_image``,
``FastRCNNOutputLayers.losses`` with L1 box loss / number of RoIs) in detectron2's own layout:
the class scores are converted to background-*last* rows first.
"""
from __future__ import annotations

import math
import os
from typing import List, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import nms

from mvit_tasks.config import arch_from_cfg, load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.projects.coco_detection.model import CocoDetector
from mvit_tasks.projects.coco_detection.modeling import CascadeRoIHeads, build_mask_rcnn
from mvit_tasks.projects.coco_detection.task import CocoTask, detector_kwargs
from mvit_tasks.projects.coco_detection.tests.test_modeling import (
    CASCADE,
    K,
    _backbone,
    _detector,
    _fill,
    _images,
    _targets,
)

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
IOUS = (0.5, 0.6, 0.7)
CLAMP = math.log(1000.0 / 16)


# ------------------------------------------------------------------- detectron2 arithmetic
def d2_apply_deltas(deltas: Tensor, boxes: Tensor, w: Sequence[float]) -> Tensor:
    """detectron2 ``Box2BoxTransform.apply_deltas`` for ``R x 4`` deltas on ``R x 4`` boxes."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * width, boxes[:, 1] + 0.5 * height
    dx, dy = deltas[:, 0] / w[0], deltas[:, 1] / w[1]
    dw, dh = (deltas[:, 2] / w[2]).clamp(max=CLAMP), (deltas[:, 3] / w[3]).clamp(max=CLAMP)
    px, py = dx * width + cx, dy * height + cy
    pw, ph = torch.exp(dw) * width, torch.exp(dh) * height
    return torch.stack((px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph), dim=1)


def d2_get_deltas(src: Tensor, dst: Tensor, w: Sequence[float]) -> Tensor:
    """detectron2 ``Box2BoxTransform.get_deltas``."""
    sw, sh = src[:, 2] - src[:, 0], src[:, 3] - src[:, 1]
    tw, th = dst[:, 2] - dst[:, 0], dst[:, 3] - dst[:, 1]
    sx, sy = src[:, 0] + 0.5 * sw, src[:, 1] + 0.5 * sh
    tx, ty = dst[:, 0] + 0.5 * tw, dst[:, 1] + 0.5 * th
    return torch.stack((w[0] * (tx - sx) / sw, w[1] * (ty - sy) / sh,
                        w[2] * torch.log(tw / sw), w[3] * torch.log(th / sh)), dim=1)


def d2_clip(boxes: Tensor, hw: Tuple[int, int]) -> Tensor:
    """detectron2 ``Boxes.clip``: x in [0, w], y in [0, h]."""
    h, w = hw
    return torch.stack((boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                        boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)), dim=1)


def d2_iou(a: Tensor, b: Tensor) -> Tensor:
    """detectron2 ``pairwise_iou``: ``len(a) x len(b)``."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return torch.where(inter > 0, inter / (area_a[:, None] + area_b - inter),
                       torch.zeros_like(inter))


def d2_predictor(heads: CascadeRoIHeads, k: int, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Stage ``k``'s predictor in detectron2's layout: logits ``R x (K+1)`` background LAST."""
    p = heads.box_predictors[k]
    w, b = p.cls_score.weight, p.cls_score.bias
    w, b = torch.cat((w[1:], w[:1])), torch.cat((b[1:], b[:1]))
    return F.linear(x, w, b), F.linear(x, p.bbox_pred.weight, p.bbox_pred.bias)


def d2_inference(boxes: Tensor, scores: Tensor, hw: Tuple[int, int], thresh: float,
                 nms_thresh: float, topk: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``fast_rcnn_inference_single_image`` with class-agnostic boxes; per-class ``nms``."""
    scores = scores[:, :-1]  # background last
    boxes = d2_clip(boxes, hw)
    out_b, out_s, out_c = [], [], []
    for c in range(scores.shape[1]):
        rows = torch.where(scores[:, c] > thresh)[0]
        keep = rows[nms(boxes[rows], scores[rows, c], nms_thresh)]
        out_b.append(boxes[keep])
        out_s.append(scores[keep, c])
        out_c.append(torch.full((len(keep),), c))
    b, s, c = torch.cat(out_b), torch.cat(out_s), torch.cat(out_c)
    order = torch.argsort(s, descending=True)[:topk]
    return b[order], s[order], c[order]


# ---------------------------------------------------------------------------------- helpers
def _cascade(**kw) -> nn.Module:
    return _detector(roi_heads="cascade", **{**CASCADE, **kw})


def _rpn_stage(model: nn.Module, images: List[Tensor]):
    """``(features, proposals, image sizes)`` as ``GeneralizedRCNN`` hands them to roi_heads."""
    batch, _ = model.transform(images)
    features = model.backbone(batch.tensors)
    proposals, _ = model.rpn(batch, features)
    return features, proposals, batch.image_sizes


class _Capture:
    """Forward hooks on each stage's pooler call / box head / predictor."""

    def __init__(self, heads: CascadeRoIHeads) -> None:
        self.features: List[dict] = []
        self.rois: List[List[Tensor]] = []
        self.pooled: List[Tensor] = []
        self.head_in: List[Tensor] = []
        self.deltas: List[Tensor] = []
        self.handles = [heads.box_roi_pool.register_forward_hook(self._pool)]
        for h, p in zip(heads.box_heads, heads.box_predictors):
            self.handles.append(h.register_forward_hook(self._head))
            self.handles.append(p.register_forward_hook(self._pred))

    def _pool(self, module, args, out) -> None:
        self.features.append(args[0])
        self.rois.append([b.clone() for b in args[1]])
        if out.requires_grad:
            out.retain_grad()
        self.pooled.append(out)

    def _head(self, module, args, out) -> None:
        if args[0].requires_grad:
            args[0].retain_grad()
        self.head_in.append(args[0])

    def _pred(self, module, args, out) -> None:
        self.deltas.append(out[1].detach())

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


# ------------------------------------------------------------------------------- inference
def test_eval_matches_detectron2_stage_arithmetic() -> None:
    model = _fill(_cascade(box_score_thresh=0.25, box_detections_per_img=60), 0).eval()
    heads = model.roi_heads
    images = _images()
    with torch.no_grad():
        features, proposals, sizes = _rpn_stage(model, images)
        ours = heads(features, proposals, sizes)[0]

        # detectron2 _forward_box at test time, written out stage by stage
        boxes, probs, prev = proposals, [], []
        for k in range(3):
            if k > 0:  # previous stage's boxes, clipped, none dropped
                boxes = [d2_clip(b, hw) for b, hw in zip(prev, sizes)]
            x = heads.box_heads[k](heads.box_roi_pool(features, boxes, sizes))
            logits, deltas = d2_predictor(heads, k, x)
            probs.append(F.softmax(logits, dim=-1).split([len(b) for b in boxes]))
            prev = list(d2_apply_deltas(deltas, torch.cat(boxes), WEIGHTS[k]).split(
                [len(b) for b in boxes]))
        diffs, final = [], []
        for i, hw in enumerate(sizes):
            scores = sum(p[i] for p in probs) * (1.0 / 3)
            b, s, c = d2_inference(prev[i], scores, hw, 0.25, 0.5, 60)
            det = ours[i]
            assert len(det["boxes"]) == len(b) > 5  # thresholding / NMS / top-k all did work
            assert len(b) < 3 * len(proposals[i])
            assert torch.equal(det["labels"], c + 1)  # torchvision labels: class + 1
            diffs += [(det["boxes"] - b).abs().max().item(), (det["scores"] - s).abs().max().item()]
            final.append((b, c + 1))
        assert max(diffs) < 1e-5, diffs
        # the mask head ran on the final boxes, mask of the predicted class
        m = heads.mask_predictor(heads.mask_head(
            heads.mask_roi_pool(features, [b for b, _ in final], sizes))).sigmoid()
        for det, ref in zip(ours, m.split([len(b) for b, _ in final])):
            labels = det["labels"]
            assert torch.allclose(det["masks"], ref[torch.arange(len(labels)), labels][:, None],
                                  atol=1e-6)
        # scores of each stage are not the same (the mean is not a single stage's softmax)
        assert (probs[0][0] - probs[2][0]).abs().max() > 1e-3


def test_decode_clamps_large_scales_like_detectron2() -> None:
    heads = _cascade().roi_heads
    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(50, 2, generator=g) * 40
    boxes = torch.cat((boxes, boxes + 1 + torch.rand(50, 2, generator=g) * 30), dim=1)
    deltas = torch.randn(50, 4, generator=g) * 40  # many dw / dh beyond log(1000/16)
    for k in range(3):
        out = heads._decode(deltas, [boxes[:20], boxes[20:]], k)
        assert torch.allclose(torch.cat(out), d2_apply_deltas(deltas, boxes, WEIGHTS[k]),
                              rtol=1e-6, atol=1e-4)
    assert (deltas[:, 2] / 10 > CLAMP).any()


def test_full_model_output_format_is_the_standard_one() -> None:
    model = _fill(_cascade(), 0).eval()
    with torch.no_grad():
        out = model(_images())
    for det, (h, w) in zip(out, [(100, 75), (64, 96)]):
        assert set(det) == {"boxes", "labels", "scores", "masks"}
        n = len(det["boxes"])
        assert 0 < n <= 10 and tuple(det["masks"].shape) == (n, 1, h, w)
        assert det["labels"].min() >= 1 and det["labels"].max() <= K
        assert torch.all(det["scores"][:-1] >= det["scores"][1:])


# -------------------------------------------------------------------------------- training
def test_train_step_losses_match_detectron2_and_gradients_scale_by_a_third() -> None:
    torch.manual_seed(0)
    model = _cascade().train()
    heads = model.roi_heads
    images, targets = _images(), _targets(_images())
    cap = _Capture(heads)
    losses = model(images, targets)
    cap.remove()
    assert set(losses) == {f"loss_{n}_stage{k}" for n in ("cls", "box_reg") for k in range(3)} \
        | {"loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert len(cap.rois) == 3 and len(cap.head_in) == 3  # one box pooling per stage

    sizes = [tuple(im.shape[1:]) for im in images]
    for k in range(3):
        rois = cap.rois[k]
        if k == 0:  # sampled: at most 32 per image, at most 25 % positives
            assert all(len(r) <= 32 for r in rois)
        else:  # previous stage's boxes, clipped; not re-sampled, no ground truth added
            prev = d2_apply_deltas(cap.deltas[k - 1], torch.cat(cap.rois[k - 1]), WEIGHTS[k - 1])
            prev = [d2_clip(b, hw) for b, hw in zip(prev.split([len(r) for r in cap.rois[k - 1]]),
                                                    sizes)]
            prev = [b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])] for b in prev]
            assert [len(r) for r in rois] == [len(p) for p in prev]
            assert all(torch.allclose(r, p, atol=1e-4) for r, p in zip(rois, prev))
        # detectron2 FastRCNNOutputLayers.losses at this stage's IoU and weights
        with torch.no_grad():  # BN in train mode sees the same RoIs: the same statistics
            x = heads.box_heads[k](heads.box_roi_pool(cap.features[k], rois, sizes))
        labels, gt_boxes = [], []
        for r, t in zip(rois, targets):
            iou, idx = d2_iou(t["boxes"], r).max(dim=0)
            lab = t["labels"][idx] - 1  # detectron2 classes 0..K-1, background K
            lab[iou < IOUS[k]] = K
            labels.append(lab)
            gt_boxes.append(t["boxes"][idx])
        lab, gt, roi = torch.cat(labels), torch.cat(gt_boxes), torch.cat(rois)
        logits, deltas = d2_predictor(heads, k, x)
        fg = (lab >= 0) & (lab < K)
        assert fg.any()
        cls = F.cross_entropy(logits, lab)
        box = (deltas[fg] - d2_get_deltas(roi[fg], gt[fg], WEIGHTS[k])).abs().sum() / lab.numel()
        assert losses[f"loss_cls_stage{k}"].item() == pytest.approx(cls.item(), rel=1e-4)
        assert losses[f"loss_box_reg_stage{k}"].item() == pytest.approx(box.item(), rel=1e-4)

    sum(losses.values()).backward()
    for k in range(3):  # every stage is trained
        for p in list(heads.box_heads[k].parameters()) + list(heads.box_predictors[k].parameters()):
            assert p.grad is not None and torch.isfinite(p.grad).all()
        assert heads.box_predictors[k].cls_score.weight.grad.abs().sum() > 0
        assert heads.box_heads[k][0][0].weight.grad.abs().sum() > 0
        # the gradient leaving the pooler is a third of the one entering the box head
        g_pool, g_head = cap.pooled[k].grad, cap.head_in[k].grad
        assert g_head.abs().sum() > 0
        torch.testing.assert_close(g_pool, g_head / 3, rtol=1e-6, atol=1e-12)
    assert model.backbone.fpn.inner_blocks[0][0].weight.grad.abs().sum() > 0


def test_scale_gradient_is_off_in_eval_and_exact() -> None:
    from mvit_tasks.projects.coco_detection.modeling.cascade import scale_gradient

    x = torch.randn(4, 3, requires_grad=True)
    y = scale_gradient(x, 1.0 / 3)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(3.0).expand(4, 3) / 3)


def test_training_image_without_objects() -> None:
    model = _cascade().train()
    images, targets = _images(), _targets(_images())
    h, w = images[1].shape[1:]
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                  "masks": torch.zeros(0, h, w, dtype=torch.uint8)}
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())


# -------------------------------------------------------------------------------- building
def test_builder_dispatch_and_names() -> None:
    standard = _detector(**CASCADE)
    assert type(standard.roi_heads) is RoIHeads
    cascade = _cascade()
    heads = cascade.roi_heads
    assert isinstance(heads, CascadeRoIHeads) and heads.num_stages == 3
    assert [tuple(c.weights) for c in heads.box_coders] == list(WEIGHTS)
    assert heads.stage_ious == IOUS
    sd = heads.state_dict()
    for s in range(3):
        assert sd[f"box_heads.{s}.0.0.weight"].shape == (32, 32, 3, 3)
        assert f"box_heads.{s}.0.0.bias" not in sd and f"box_heads.{s}.3.1.running_var" in sd
        assert sd[f"box_heads.{s}.5.weight"].shape == (64, 32 * 7 * 7)
        assert sd[f"box_predictors.{s}.cls_score.weight"].shape == (K + 1, 64)
        assert sd[f"box_predictors.{s}.bbox_pred.weight"].shape == (4, 64)
    assert {k.split(".")[0] for k in sd} == {"box_heads", "box_predictors", "mask_head",
                                             "mask_predictor"}
    assert len(cascade.rpn.head.conv) == 2
    no_mask = _cascade(mask_on=False)
    assert not no_mask.roi_heads.has_mask()
    assert set(_fill(no_mask, 0).eval()(_images())[0]) == {"boxes", "labels", "scores"}
    with pytest.raises(ValueError, match="roi_heads"):
        _detector(roi_heads="hybrid")
    with pytest.raises(ValueError, match="per stage"):
        build_mask_rcnn(_backbone(), K + 1, roi_heads="cascade", cascade_ious=(0.5, 0.6))


def _load(name: str, opts: Sequence[str] = ()):
    return load_config(os.path.join(CONFIGS, name), list(opts),
                       extra_config_fns=[add_engine_config, CocoTask.add_config])


def test_config_selects_the_heads() -> None:
    cfg = _load("demo_shapes.yaml")
    assert cfg.COCO.DETECTOR.ROI_HEADS == "standard"
    small = ["COCO.DETECTOR.FPN_CHANNELS", "16", "COCO.DETECTOR.BOX_FC_DIM", "32"]
    std = CocoDetector.build(_backbone(128), 4, **detector_kwargs(_load("demo_shapes.yaml",
                                                                         small)))
    assert type(std.detector.roi_heads) is RoIHeads
    cas = CocoDetector.build(_backbone(128), 4, **detector_kwargs(
        _load("demo_shapes_cascade.yaml", small)))
    assert isinstance(cas.detector.roi_heads, CascadeRoIHeads) and cas.mask_on
    assert cas.detector.roi_heads.box_heads[2].fc6.in_features == 16 * 49
    with torch.no_grad():  # the task's model takes the cascade's detections as the standard ones
        out = _fill(cas, 0).eval()({"images": _images()})
    assert [set(o) for o in out] == [{"boxes", "labels", "scores", "masks"}] * 2


@pytest.mark.parametrize("name,variant,depth,dp,weights,lsj,lr,epochs", [
    ("cascade_mask_rcnn_mvitv2_t_3x", "t", 10, 0.2, "T_in1k", False, 1.6e-4, 36),
    ("cascade_mask_rcnn_mvitv2_s_3x", "s", 16, 0.2, "S_in1k", False, 1.6e-4, 36),
    ("cascade_mask_rcnn_mvitv2_b_3x", "b", 24, 0.4, "B_in1k", False, 1.6e-4, 36),
    ("cascade_mask_rcnn_mvitv2_b_in21k_3x", "b", 24, 0.4, "B_in21k", False, 1.6e-4, 36),
    ("cascade_mask_rcnn_mvitv2_l_in21k_lsj_50ep", "l", 48, 0.5, "L_in21k", True, 1e-4, 50),
    ("cascade_mask_rcnn_mvitv2_h_in21k_lsj_3x", "h", 80, 0.6, "H_in21k", True, 1.6e-4, 36),
])
def test_cascade_recipes(name, variant, depth, dp, weights, lsj, lr, epochs) -> None:
    cfg = _load(name + ".yaml")
    arch = arch_from_cfg(cfg)
    assert cfg.MODEL.VARIANT == f"mvitv2_{variant}_coco"
    assert (arch.depth, arch.drop_path_rate) == (depth, dp)
    assert arch.act_checkpoint == (variant == "h")
    d = cfg.COCO.DETECTOR
    assert (d.ROI_HEADS, d.BOX_HEAD, d.BOX_HEAD_NORM, d.MASK_HEAD_NORM, d.RPN_CONV_DEPTH,
            d.BOX_FC_DIM) == ("cascade", "4conv1fc", "BN", "BN", 2, 1024)
    assert list(d.CASCADE_IOUS) == list(IOUS)
    assert [tuple(w) for w in d.CASCADE_BBOX_REG_WEIGHTS] == list(WEIGHTS)
    assert cfg.COCO.BACKBONE_WEIGHTS.endswith(f"MViTv2_{weights}.pyth")
    assert cfg.COCO.INPUT.LSJ == lsj and cfg.COCO.INPUT.CROP_PROB == (0.0 if lsj else 0.5)
    if lsj:
        assert cfg.COCO.INPUT.LSJ_SIZE == 1024 and list(cfg.COCO.INPUT.LSJ_SCALE) == [0.1, 2.0]
    assert cfg.SOLVER.BASE_LR == pytest.approx(lr) and cfg.SOLVER.MAX_EPOCH == epochs
    assert cfg.TRAIN.BATCH_SIZE == 64 and cfg.COCO.INPUT.TEST_SHORT_SIZE == 800
    if variant == "l":  # milestones 163889 // 2 and 177546 // 2 of 184375 // 2 iterations
        assert cfg.SOLVER.STEPS[1] == pytest.approx(50 * 81944 / 92187, abs=1e-3)
        assert cfg.SOLVER.STEPS[2] == pytest.approx(50 * 88773 / 92187, abs=1e-3)


def test_full_size_cascade_parameter_counts() -> None:
    """detectron2 README: Cascade MViTv2-T 76 M, S 87 M, B 103 M parameters."""
    from mvit_tasks.modeling.backbone.mvit import MViT
    from mvit_tasks.modeling.backbone.variants import get_variant

    for v, published in (("t", 76.0), ("s", 87.0), ("b", 103.0)):
        with torch.device("meta"):
            model = build_mask_rcnn(MViT(get_variant(f"mvitv2_{v}_coco").arch), 81,
                                    roi_heads="cascade", **CASCADE)
        total = sum(p.numel() for p in model.parameters()) / 1e6
        assert abs(total - published) < 0.7, (v, total)
