"""Cascade (Mask) R-CNN RoI heads on torchvision parts, with detectron2's semantics.

Paper: Cai & Vasconcelos, "Cascade R-CNN: Delving into High Quality Object Detection", CVPR 2018;
the MViTv2 COCO models (Li et al., CVPR 2022) are Cascade Mask R-CNN. Semantics follow
detectron2's ``CascadeROIHeads`` (``detectron2/modeling/roi_heads/cascade_rcnn.py``) with the
``FastRCNNOutputLayers`` of ``configs/common/models/cascade_rcnn.py`` /
``projects/MViTv2/configs/cascade_mask_rcnn_mvitv2_t_3x.py``:

* three stages matched at IoU 0.5 / 0.6 / 0.7 (no ignore band, no low-quality matches), box
  deltas weighted (10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15), class-agnostic regression
  (4 deltas per RoI), one box head + predictor per stage;
* training: the RPN proposals + the ground-truth boxes are matched at stage 0's IoU and sampled
  (512 per image, 25 % positives). Each stage's decoded boxes, detached and clipped to the image,
  with empty boxes dropped, are the next stage's proposals, matched at that stage's IoU and *not*
  re-sampled (the ground truth is added at stage 0 only). The pooled features entering each box
  head have their gradient scaled by ``1 / num_stages``. Losses per stage: cross-entropy over
  all RoIs (``loss_cls_stage{k}``) and L1 (smooth-L1 with beta 0) on the foreground deltas,
  summed and divided by the number of RoIs (``loss_box_reg_stage{k}``). The mask branch trains on
  stage 0's positive samples (``loss_mask``, torchvision's ``maskrcnn_loss``);
* inference: stage ``k`` scores the boxes it receives (stage 0: the RPN proposals; stage
  ``k > 0``: stage ``k - 1``'s decoded boxes clipped to the image, nothing dropped so the rows stay
  aligned); the class scores are the mean of the three stages' softmax, the boxes the last
  stage's decoded boxes; then detectron2's ``fast_rcnn_inference``: non-finite rows dropped, boxes
  clipped, per-class score threshold (0.05), class-wise NMS (0.5), top 100 (every class of a RoI
  uses the same class-agnostic box). Unlike torchvision's ``RoIHeads`` no small boxes are
  removed. The mask head runs on the final boxes.

Labels are torchvision's: 0 is the background, classes are ``1..K``; ``cls_score`` has ``K + 1``
rows with the background *first* (detectron2 puts it last).

State-dict names (relative to this module; in the task's model they sit under
``detector.roi_heads.``)::

    box_heads.{s}.*             s = 0, 1, 2; the box head of stage s. 4conv1fc
                                (torchvision FastRCNNConvFCHead): box_heads.{s}.{j}.0.weight
                                (conv j = 0..3, no bias with a norm), box_heads.{s}.{j}.1.*
                                (its norm: weight, bias, running_mean, running_var,
                                num_batches_tracked for BN), box_heads.{s}.5.{weight,bias} (fc);
                                2fc (TwoMLPHead): box_heads.{s}.fc6.*, box_heads.{s}.fc7.*
    box_predictors.{s}.cls_score.{weight,bias}   (K + 1) x D, background row 0
    box_predictors.{s}.bbox_pred.{weight,bias}   4 x D, class-agnostic (dx, dy, dw, dh)
    mask_head.{j}.{0|1}.*, mask_predictor.conv5_mask.*, mask_predictor.mask_fcn_logits.*
                                as in torchvision's Mask R-CNN (mask_fcn_logits: K + 1 maps)

``box_roi_pool`` and ``mask_roi_pool`` hold no tensors. detectron2's names are
``roi_heads.box_head.{s}.conv{j+1}[.norm]`` / ``.fc1`` and ``roi_heads.box_predictor.{s}.*``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import maskrcnn_inference, maskrcnn_loss
from torchvision.ops import boxes as box_ops

CASCADE_IOUS = (0.5, 0.6, 0.7)
CASCADE_BBOX_REG_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0),
                            (30.0, 30.0, 15.0, 15.0))

Boxes = List[Tensor]  # one N_i x 4 (x1, y1, x2, y2) tensor per image


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged, its gradient multiplied by ``scale``."""
    return _ScaleGradient.apply(x, scale)


class CascadeBoxPredictor(nn.Module):
    """Class scores + class-agnostic box deltas (detectron2 ``FastRCNNOutputLayers`` with
    ``cls_agnostic_bbox_reg=True``, its init: normal std 0.01 / 0.001, zero biases).

    ``forward(x)``: ``x`` is ``R x D`` (or ``R x ...``, flattened); returns class logits
    ``R x num_classes`` (background first) and deltas ``R x 4``.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class CascadeRoIHeads(nn.Module):
    """Drop-in for torchvision's ``RoIHeads`` in a ``GeneralizedRCNN`` (``model.roi_heads``).

    Args:
        box_roi_pool: pooler, ``(features, boxes, image_shapes) -> R x C x 7 x 7``.
        box_heads: one box head per stage, ``R x C x 7 x 7 -> R x D``.
        box_predictors: one :class:`CascadeBoxPredictor` per stage.
        stage_ious: IoU threshold of each stage's matcher (foreground at ``>=``).
        stage_bbox_reg_weights: ``(wx, wy, ww, wh)`` delta weights of each stage.
        batch_size_per_image / positive_fraction: stage-0 sampling of the training RoIs.
        score_thresh / nms_thresh / detections_per_img: test-time post-processing.
        smooth_l1_beta: of the box loss; 0 (detectron2's default) is L1.
        mask_roi_pool / mask_head / mask_predictor: torchvision's mask branch (optional).

    ``forward(features, proposals, image_shapes, targets)``: ``features`` the FPN maps,
    ``proposals`` one ``P_i x 4`` xyxy tensor per image (pixels of the resized image),
    ``image_shapes`` the ``(h, w)`` of each resized image, ``targets`` (training) dicts with ``boxes`` ``N x 4``,
    ``labels`` ``N`` (``1..K``) and ``masks`` ``N x H x W``. Returns ``(detections, losses)``:
    in training ``([], {loss_cls_stage{k}, loss_box_reg_stage{k}, loss_mask})``, in evaluation
    one dict per image with ``boxes`` ``D x 4``, ``labels`` ``D``, ``scores`` ``D`` and (with
    masks) ``masks`` ``D x 1 x 28 x 28`` probabilities (the transform pastes them) and ``{}``.
    """

    def __init__(
        self,
        box_roi_pool: nn.Module,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[nn.Module],
        stage_ious: Sequence[float] = CASCADE_IOUS,
        stage_bbox_reg_weights: Sequence[Sequence[float]] = CASCADE_BBOX_REG_WEIGHTS,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        smooth_l1_beta: float = 0.0,
        mask_roi_pool: Optional[nn.Module] = None,
        mask_head: Optional[nn.Module] = None,
        mask_predictor: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        num = len(box_heads)
        if not num or not len(box_predictors) == len(stage_ious) == len(stage_bbox_reg_weights) \
                == num:
            raise ValueError(f"one box head, predictor, IoU and weight set per stage; got "
                             f"{num} heads, {len(box_predictors)} predictors, "
                             f"{len(stage_ious)} IoUs, {len(stage_bbox_reg_weights)} weights")
        if any(len(w) != 4 for w in stage_bbox_reg_weights):
            raise ValueError(f"box-delta weights are 4 numbers each, got {stage_bbox_reg_weights}")
        self.num_stages = num
        self.box_roi_pool = box_roi_pool
        self.box_heads = nn.ModuleList(box_heads)
        self.box_predictors = nn.ModuleList(box_predictors)
        self.stage_ious = tuple(float(t) for t in stage_ious)
        self.proposal_matchers = [det_utils.Matcher(t, t, allow_low_quality_matches=False)
                                  for t in self.stage_ious]
        self.box_coders = [det_utils.BoxCoder(tuple(float(x) for x in w))
                           for w in stage_bbox_reg_weights]
        self.fg_bg_sampler = det_utils.BalancedPositiveNegativeSampler(batch_size_per_image,
                                                                       positive_fraction)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.smooth_l1_beta = smooth_l1_beta
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor

    def has_mask(self) -> bool:
        return self.mask_roi_pool is not None and self.mask_head is not None \
            and self.mask_predictor is not None

    # -------------------------------------------------------------------------- matching
    def _match(self, boxes: Boxes, targets: List[Dict[str, Tensor]],
               stage: int) -> Tuple[Boxes, Boxes]:
        """Per image: ``(matched gt index (0 for background rows), label (0 = background))``."""
        matcher = self.proposal_matchers[stage]
        matched, labels = [], []
        for b, t in zip(boxes, targets):
            gt = t["boxes"]
            if gt.numel() == 0 or len(b) == 0:
                matched.append(torch.zeros(len(b), dtype=torch.int64, device=b.device))
                labels.append(torch.zeros(len(b), dtype=torch.int64, device=b.device))
                continue
            idx = matcher(box_ops.box_iou(gt.to(b.dtype), b))
            lab = t["labels"][idx.clamp(min=0)].to(torch.int64)
            lab[idx < 0] = 0
            matched.append(idx.clamp(min=0))
            labels.append(lab)
        return matched, labels

    def _sample(self, proposals: Boxes,
                targets: List[Dict[str, Tensor]]) -> Tuple[Boxes, Boxes, Boxes]:
        """Stage 0: proposals + ground truth, matched at ``stage_ious[0]``, sampled."""
        boxes = [torch.cat((p, t["boxes"].to(p.dtype))) for p, t in zip(proposals, targets)]
        matched, labels = self._match(boxes, targets, 0)
        pos, neg = self.fg_bg_sampler(labels)
        keep = [torch.where(p | n)[0] for p, n in zip(pos, neg)]
        return ([b[k] for b, k in zip(boxes, keep)], [m[k] for m, k in zip(matched, keep)],
                [lab[k] for lab, k in zip(labels, keep)])

    # ---------------------------------------------------------------------------- stages
    def _run_stage(self, features: Dict[str, Tensor], boxes: Boxes,
                   image_shapes: List[Tuple[int, int]], stage: int) -> Tuple[Tensor, Tensor]:
        """``(class logits R x (K+1), deltas R x 4)`` of stage ``stage`` on ``boxes``."""
        x = self.box_roi_pool(features, boxes, image_shapes)
        if self.training:
            x = scale_gradient(x, 1.0 / self.num_stages)
        return self.box_predictors[stage](self.box_heads[stage](x))

    def _decode(self, deltas: Tensor, boxes: Boxes, stage: int) -> Boxes:
        """Stage ``stage``'s deltas applied (in fp32) to its input boxes, split per image."""
        if not boxes:
            return []
        ref = torch.cat(boxes).float()
        out = self.box_coders[stage].decode_single(deltas.float(), ref)
        return list(out.split([len(b) for b in boxes]))

    def _next_proposals(self, boxes: Boxes, image_shapes: List[Tuple[int, int]]) -> Boxes:
        """Detached, clipped to the image; in training boxes of zero width / height dropped."""
        out = []
        for b, shape in zip(boxes, image_shapes):
            b = box_ops.clip_boxes_to_image(b.detach(), shape)
            if self.training:
                b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
            out.append(b)
        return out

    def _stage_losses(self, logits: Tensor, deltas: Tensor, boxes: Boxes, matched: Boxes,
                      labels: Boxes, targets: List[Dict[str, Tensor]],
                      stage: int) -> Tuple[Tensor, Tensor]:
        """Cross-entropy (mean over RoIs) and L1 of the foreground deltas / number of RoIs."""
        lab = torch.cat(labels)
        if lab.numel() == 0:
            zero = logits.sum() * 0 + deltas.sum() * 0
            return zero, zero
        loss_cls = F.cross_entropy(logits.float(), lab)
        gt = torch.cat([t["boxes"][m] if t["boxes"].numel() else torch.zeros_like(b)
                        for t, m, b in zip(targets, matched, boxes)])
        fg = torch.where(lab > 0)[0]
        ref = torch.cat(boxes)
        wanted = self.box_coders[stage].encode_single(gt[fg].float(), ref[fg].float())
        loss_box = F.smooth_l1_loss(deltas[fg].float(), wanted, beta=self.smooth_l1_beta,
                                    reduction="sum") / lab.numel()
        return loss_cls, loss_box

    # ---------------------------------------------------------------------------- forward
    def forward(
        self,
        features: Dict[str, Tensor],
        proposals: Boxes,
        image_shapes: List[Tuple[int, int]],
        targets: Optional[List[Dict[str, Tensor]]] = None,
    ) -> Tuple[List[Dict[str, Tensor]], Dict[str, Tensor]]:
        if self.training:
            return [], self._forward_train(features, proposals, image_shapes,
                                           self._check_targets(targets))
        return self._forward_test(features, proposals, image_shapes), {}

    def _check_targets(self, targets: Optional[List[Dict[str, Tensor]]]
                       ) -> List[Dict[str, Tensor]]:
        if targets is None:
            raise ValueError("training needs targets")
        needed = ("boxes", "labels", "masks") if self.has_mask() else ("boxes", "labels")
        for t in targets:
            missing = [k for k in needed if k not in t]
            if missing:
                raise ValueError(f"every target needs {needed}; one lacks {missing}")
            if not t["boxes"].is_floating_point():
                raise TypeError(f"target boxes must be float, got {t['boxes'].dtype}")
            if t["labels"].dtype != torch.int64:
                raise TypeError(f"target labels must be int64, got {t['labels'].dtype}")
        return targets

    def _forward_train(self, features: Dict[str, Tensor], proposals: Boxes,
                       image_shapes: List[Tuple[int, int]],
                       targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        boxes, matched, labels = self._sample(proposals, targets)
        first = (boxes, matched, labels)
        losses: Dict[str, Tensor] = {}
        for k in range(self.num_stages):
            logits, deltas = self._run_stage(features, boxes, image_shapes, k)
            cls, box = self._stage_losses(logits, deltas, boxes, matched, labels, targets, k)
            losses[f"loss_cls_stage{k}"] = cls
            losses[f"loss_box_reg_stage{k}"] = box
            if k + 1 < self.num_stages:  # this stage's boxes are the next one's proposals
                boxes = self._next_proposals(self._decode(deltas, boxes, k), image_shapes)
                matched, labels = self._match(boxes, targets, k + 1)
        if self.has_mask():
            losses["loss_mask"] = self._mask_loss(features, image_shapes, targets, *first)
        return losses

    def _mask_loss(self, features: Dict[str, Tensor], image_shapes: List[Tuple[int, int]],
                   targets: List[Dict[str, Tensor]], boxes: Boxes, matched: Boxes,
                   labels: Boxes) -> Tensor:
        """torchvision's ``maskrcnn_loss`` on stage 0's positive samples."""
        pos = [torch.where(lab > 0)[0] for lab in labels]
        mask_boxes = [b[p] for b, p in zip(boxes, pos)]
        logits = self.mask_predictor(self.mask_head(
            self.mask_roi_pool(features, mask_boxes, image_shapes)))
        return maskrcnn_loss(logits, mask_boxes, [t["masks"] for t in targets],
                             [t["labels"] for t in targets], [m[p] for m, p in zip(matched, pos)])

    def _forward_test(self, features: Dict[str, Tensor], proposals: Boxes,
                      image_shapes: List[Tuple[int, int]]) -> List[Dict[str, Tensor]]:
        boxes, decoded, probs = proposals, proposals, []
        for k in range(self.num_stages):
            if k > 0:  # the previous stage's boxes, clipped; none dropped (rows stay aligned)
                boxes = self._next_proposals(decoded, image_shapes)
            logits, deltas = self._run_stage(features, boxes, image_shapes, k)
            probs.append(F.softmax(logits.float(), dim=-1))
            decoded = self._decode(deltas, boxes, k)
        scores = sum(probs) * (1.0 / self.num_stages)
        result = [self._postprocess(b, s, shape) for b, s, shape in
                  zip(decoded, scores.split([len(b) for b in boxes]), image_shapes)]
        if self.has_mask():
            dets = [r["boxes"] for r in result]
            logits = self.mask_predictor(self.mask_head(
                self.mask_roi_pool(features, dets, image_shapes)))
            for r, m in zip(result, maskrcnn_inference(logits, [r["labels"] for r in result])):
                r["masks"] = m
        return result

    def _postprocess(self, boxes: Tensor, scores: Tensor,
                     shape: Tuple[int, int]) -> Dict[str, Tensor]:
        """detectron2 ``fast_rcnn_inference_single_image`` for class-agnostic boxes ``R x 4``
        and scores ``R x (K+1)`` (background column 0)."""
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        boxes, scores = boxes[valid], scores[valid, 1:]
        boxes = box_ops.clip_boxes_to_image(boxes, shape)
        keep_mask = scores > self.score_thresh
        where = keep_mask.nonzero()  # (row, class - 1) in row-major order
        boxes, scores, classes = boxes[where[:, 0]], scores[keep_mask], where[:, 1]
        keep = box_ops.batched_nms(boxes, scores, classes, self.nms_thresh)
        if self.detections_per_img >= 0:
            keep = keep[: self.detections_per_img]
        return {"boxes": boxes[keep], "labels": classes[keep] + 1, "scores": scores[keep]}


__all__ = ["CASCADE_BBOX_REG_WEIGHTS", "CASCADE_IOUS", "CascadeBoxPredictor",
           "CascadeRoIHeads", "scale_gradient"]
