"""Mask R-CNN (and Faster R-CNN) over any mvit-tasks backbone + FPN, from torchvision parts.

Papers: He et al., "Mask R-CNN", ICCV 2017; Li et al., "MViTv2", CVPR 2022 (Sec. 5, COCO).
Defaults are the detectron2 recipe of ``projects/MViTv2/configs/mask_rcnn_mvitv2_t_3x.py``
(= ``configs/common/models/mask_rcnn_fpn.py`` with the MViT bottom-up): FPN 256 channels +
max-pooled p6, anchors 32..512 (one size per level, ratios 0.5/1/2), 1-conv RPN (pre-NMS top-k
2000/1000 per level, post-NMS 1000/1000, NMS 0.7, 256 anchors/image), RoIAlignV2 7x7 and 14x14
with adaptive sampling, 2fc box head (1024), class-specific box regression with weights
(10, 10, 5, 5), 512 RoIs/image at 25 % positives, 4-conv + deconv mask head, test score 0.05,
NMS 0.5, 100 detections. ``roi_heads="cascade"`` swaps torchvision's one-stage ``RoIHeads`` for
:class:`~.cascade.CascadeRoIHeads` (detectron2 ``CascadeROIHeads``: three stages at IoU
0.5 / 0.6 / 0.7, class-agnostic boxes; see :mod:`.cascade` for its semantics and tensor names);
the MViTv2 Cascade configs' heads are ``box_head="4conv1fc"``, ``box_head_norm="BN"``,
``rpn_conv_depth=2``, ``mask_head_norm="BN"``. Anchors and RoI pooling use detectron2's
geometry (:mod:`.components`).

Differences from detectron2 that torchvision does not expose (not weight-related): the RPN and
(standard heads') box regression losses are smooth-L1 with beta 1/9 (detectron2: L1; the cascade
heads use L1) and the RPN's is normalised differently; the RPN drops proposals smaller than
1e-3 px; ``masks`` are returned as probabilities pasted into the image (threshold at 0.5 for
binary masks).

Model I/O (torchvision's convention): ``model(images, targets)`` in train mode, ``images`` a list
of ``3 x H_i x W_i`` float RGB tensors in [0, 1] and ``targets`` a list of dicts with ``boxes``
(``N x 4`` absolute ``(x1, y1, x2, y2)``), ``labels`` (``N`` int64 in ``1..num_classes-1``; 0 is
background) and ``masks`` (``N x H_i x W_i`` uint8), returns a dict of scalar losses. In eval mode
``model(images)`` returns one dict per image with ``boxes`` (``D x 4`` xyxy in input pixels),
``labels`` (``D``), ``scores`` (``D``) and ``masks`` (``D x 1 x H_i x W_i`` in [0, 1]).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    TwoMLPHead,
)
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from mvit_tasks.modeling.backbone.base import Backbone
from mvit_tasks.modeling.backbone.variants import IMAGENET_MEAN, IMAGENET_STD
from mvit_tasks.modeling.necks.fpn import FPNBackbone, get_norm_layer

from .cascade import CASCADE_BBOX_REG_WEIGHTS, CASCADE_IOUS, CascadeBoxPredictor, CascadeRoIHeads
from .components import FixedScaleRoIAlign, FixedStrideAnchorGenerator

BOX_HEADS = ("2fc", "4conv1fc")
ROI_HEADS = ("standard", "cascade")


def build_box_head(
    kind: str, in_channels: int, resolution: int, fc_dim: int = 1024, norm: str = ""
) -> nn.Module:
    """``"2fc"``: torchvision ``TwoMLPHead`` (detectron2 ``fc1``/``fc2``); ``"4conv1fc"``:
    ``FastRCNNConvFCHead`` with four 3x3 convs (+ ``norm``) and one fc. Input ``R x C x res x res``,
    output ``R x fc_dim``."""
    if kind == "2fc":
        if norm:
            raise ValueError("the 2fc box head has no convs to normalise; use box_head_norm=''")
        return TwoMLPHead(in_channels * resolution**2, fc_dim)
    if kind == "4conv1fc":
        return FastRCNNConvFCHead((in_channels, resolution, resolution), [in_channels] * 4,
                                  [fc_dim], norm_layer=get_norm_layer(norm))
    raise ValueError(f"box_head must be one of {BOX_HEADS}, got {kind!r}")


def build_mask_rcnn(
    backbone: Backbone,
    num_classes: int,
    *,
    fpn: Optional[Dict[str, Any]] = None,
    mask_on: bool = True,
    min_size: Union[int, Tuple[int, ...]] = 800,
    max_size: int = 1333,
    image_mean: Sequence[float] = IMAGENET_MEAN,
    image_std: Sequence[float] = IMAGENET_STD,
    size_divisibility: Optional[int] = None,
    resize_in_training: bool = False,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    anchor_aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    rpn_conv_depth: int = 1,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_nms_thresh: float = 0.7,
    rpn_batch_size_per_image: int = 256,
    box_head: str = "2fc",
    box_head_norm: str = "",
    box_fc_dim: int = 1024,
    bbox_reg_weights: Tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
    box_batch_size_per_image: int = 512,
    box_positive_fraction: float = 0.25,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    mask_head_norm: str = "",
    roi_sampling_ratio: int = 0,
    roi_aligned: bool = True,
    roi_heads: str = "standard",
    cascade_ious: Sequence[float] = CASCADE_IOUS,
    cascade_bbox_reg_weights: Sequence[Sequence[float]] = CASCADE_BBOX_REG_WEIGHTS,
) -> FasterRCNN:
    """Assemble a torchvision ``MaskRCNN`` (``FasterRCNN`` if ``mask_on=False``) around
    ``backbone`` + FPN.

    Args:
        backbone: a head-less 2-D backbone (``forward(x) -> Dict[str, Tensor]``,
            ``output_shape()``).
        num_classes: classes *including* background (COCO: 81).
        fpn: keyword arguments of :class:`~mvit_tasks.modeling.necks.fpn.FPN` (``in_features``,
            ``out_channels``, ``top_block``, ``norm``).
        mask_on: add the mask branch.
        min_size / max_size: test-time (and, with ``resize_in_training``, train-time) resize of
            the shorter / longer side (detectron2 ``ResizeShortestEdge(800, max_size=1333)``).
        image_mean / image_std: normalisation of [0, 1] RGB inputs.
        size_divisibility: pad the batch to multiples of this; default: what the backbone + FPN
            need (32 for MViTv2, see ``mvit_tasks/modeling/necks/fpn.py``).
        resize_in_training: let the model resize training images too; ``False`` (default)
            leaves train-time scale augmentation to the data pipeline, as detectron2 does.
        anchor_sizes / anchor_aspect_ratios: one anchor size per pyramid level, shared ratios.
        rpn_conv_depth: 3x3 convs in the RPN head (1 in Mask R-CNN, 2 in the Cascade configs).
        box_head: ``"2fc"`` or ``"4conv1fc"``; box_head_norm: norm of its convs.
        bbox_reg_weights: box-delta weights of the RoI head (the RPN uses (1, 1, 1, 1)).
        mask_head_norm: norm of the four mask-head convs.
        roi_sampling_ratio / roi_aligned: RoIAlign settings (detectron2: 0 / ``True``).
        roi_heads: ``"standard"`` (torchvision ``RoIHeads``, class-specific boxes weighted by
            ``bbox_reg_weights``) or ``"cascade"`` (:class:`~.cascade.CascadeRoIHeads` at
            ``model.roi_heads``: one ``box_head`` + class-agnostic predictor per stage, matched
            at ``cascade_ious``, deltas weighted by ``cascade_bbox_reg_weights``; the box-head
            and sampling arguments apply to every stage, ``bbox_reg_weights`` is not used).
        Other arguments are torchvision's ``FasterRCNN`` arguments of the same name.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background too; got {num_classes}")
    if roi_heads not in ROI_HEADS:
        raise ValueError(f"roi_heads must be one of {ROI_HEADS}, got {roi_heads!r}")
    body = FPNBackbone.build(backbone, **(fpn or {}))
    shapes = body.output_shape()
    levels = list(shapes)
    strides = [s.stride for s in shapes.values()]
    if len(anchor_sizes) != len(levels):
        raise ValueError(f"{len(anchor_sizes)} anchor sizes for {len(levels)} FPN levels {levels}")
    roi_levels = body.fpn.lateral_levels  # RoIs pool from p2..p5, not from the extra p6
    roi_strides = [shapes[n].stride for n in roi_levels]
    channels = body.out_channels

    anchors = FixedStrideAnchorGenerator(
        [(int(s),) for s in anchor_sizes], [tuple(anchor_aspect_ratios)] * len(levels), strides
    )
    rpn_head = RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=rpn_conv_depth)
    box_pool = FixedScaleRoIAlign(roi_levels, roi_strides, 7, roi_sampling_ratio, roi_aligned)
    stages = len(cascade_ious) if roi_heads == "cascade" else 1
    box_nets = [build_box_head(box_head, channels, 7, box_fc_dim, box_head_norm)
                for _ in range(stages)]
    if roi_heads == "cascade":
        predictors: List[nn.Module] = [CascadeBoxPredictor(box_fc_dim, num_classes)
                                       for _ in range(stages)]
    else:
        predictors = [FastRCNNPredictor(box_fc_dim, num_classes)]
        # detectron2's FastRCNNOutputLayers init
        nn.init.normal_(predictors[0].cls_score.weight, std=0.01)
        nn.init.normal_(predictors[0].bbox_pred.weight, std=0.001)
        nn.init.zeros_(predictors[0].cls_score.bias)
        nn.init.zeros_(predictors[0].bbox_pred.bias)

    divisible = int(size_divisibility or body.size_divisibility)
    common = dict(
        min_size=min_size, max_size=max_size,
        image_mean=list(image_mean), image_std=list(image_std),
        rpn_anchor_generator=anchors, rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test, rpn_nms_thresh=rpn_nms_thresh,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
        box_roi_pool=box_pool, box_head=box_nets[0], box_predictor=predictors[0],
        box_score_thresh=box_score_thresh, box_nms_thresh=box_nms_thresh,
        box_detections_per_img=box_detections_per_img,
        box_batch_size_per_image=box_batch_size_per_image,
        box_positive_fraction=box_positive_fraction, bbox_reg_weights=tuple(bbox_reg_weights),
        size_divisible=divisible, _skip_resize=not resize_in_training,
    )
    if not mask_on:
        model: FasterRCNN = FasterRCNN(body, num_classes=None, **common)
    else:
        mask_pool = FixedScaleRoIAlign(roi_levels, roi_strides, 14, roi_sampling_ratio,
                                       roi_aligned)
        mask_head = MaskRCNNHeads(channels, [channels] * 4, 1,
                                  norm_layer=get_norm_layer(mask_head_norm))
        mask_predictor = MaskRCNNPredictor(channels, channels, num_classes)
        model = MaskRCNN(body, num_classes=None, mask_roi_pool=mask_pool, mask_head=mask_head,
                         mask_predictor=mask_predictor, **common)
    if roi_heads == "cascade":  # same pooler, stage-0 head and mask branch, now 3 stages
        one = model.roi_heads
        model.roi_heads = CascadeRoIHeads(
            box_pool, box_nets, predictors, cascade_ious, cascade_bbox_reg_weights,
            batch_size_per_image=box_batch_size_per_image, positive_fraction=box_positive_fraction,
            score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
            detections_per_img=box_detections_per_img, mask_roi_pool=one.mask_roi_pool,
            mask_head=one.mask_head, mask_predictor=one.mask_predictor)
    return model


__all__ = ["build_mask_rcnn", "build_box_head", "BOX_HEADS", "ROI_HEADS"]
