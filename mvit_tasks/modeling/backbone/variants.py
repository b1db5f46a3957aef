"""Named MViT / MViTv2 variants with the official recipes and their published numbers.

Naming: ``mvit_<size>_<frames>x<stride>`` (MViTv1 video), ``mvitv2_<size>_<frames>x<stride>``
(MViTv2 video), ``mvitv2_<size>`` (ImageNet-1K image models), ``mvitv2_<size>_cls`` (image
models with a cls token, the IN-21K forms), ``mvitv2_<size>_coco`` (detectron2's hybrid-window
COCO backbones, multi-scale outputs, no head).

Architectures follow PySlowFast ``configs/Kinetics/*``, facebookresearch/mvit ``configs/*`` and
detectron2 ``projects/MViTv2/configs/*``; numbers are the ones printed by those repos (see
``../shared/reference/anchors.md`` of the project and each entry's ``source``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ...registry import VARIANT_REGISTRY
from .arch import MViTArch

if TYPE_CHECKING:
    from ...hub.weights import PretrainedWeights
    from ..eval_transform import EvalTransform

KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelVariant:
    """A registered architecture plus what users need to run it.

    Attributes:
        name: registry name.
        arch: backbone settings.
        num_classes: classes of the published head (0 for head-less detection backbones).
        num_frames / sampling_rate: clip length T and frame stride tau (1 / 1 for images).
        crop_size: training/test crop (pixels).
        mean / std: input normalisation (RGB, 0-1 range).
        dataset: what the published weights were trained on.
        metrics: published numbers, e.g. ``{"top1": 81.0, "top5": 94.6}``.
        gflops: published multiply-adds per view, in G (one multiply-add = one FLOP).
        views: test views as "crops x clips" (video).
        params_m: published parameter count in millions.
        checkpoint: official checkpoint file name (and its source format).
        source: config file the recipe comes from.
        class_names: the :mod:`mvit_tasks.data.classnames` list of the published head
            (``""``: none shipped); each weights entry names its own.

    The official weights files (addresses, hashes, eval preprocessing) are listed by
    :meth:`list_weights` (:mod:`.pretrained`); :meth:`pretrained_cfg`, :meth:`transforms` and
    :meth:`meta` describe a variant with one of them (``tag``; default: the first).
    """

    name: str
    arch: MViTArch
    num_classes: int
    num_frames: int = 1
    sampling_rate: int = 1
    crop_size: int = 224
    mean: Tuple[float, float, float] = KINETICS_MEAN
    std: Tuple[float, float, float] = KINETICS_STD
    dataset: str = ""
    metrics: Dict[str, float] = field(default_factory=dict)
    gflops: Optional[float] = None
    views: str = ""
    params_m: Optional[float] = None
    checkpoint: str = ""
    source: str = ""
    head_dropout: float = 0.5
    class_names: str = ""

    @property
    def task(self) -> str:
        if self.num_classes == 0:
            return "detection-backbone"
        return "video" if self.arch.video else "image"

    def input_shape(self, batch: int = 1) -> Tuple[int, ...]:
        if self.arch.video:
            return (batch, 3, self.num_frames, self.crop_size, self.crop_size)
        return (batch, 3, self.crop_size, self.crop_size)

    # ----------------------------------------------------------------- pretrained weights
    def list_weights(self) -> List["PretrainedWeights"]:
        """The official weights of this variant (empty when none are published)."""
        from .pretrained import weights_of

        return list(weights_of(self.name))

    def weights(self, tag: Optional[str] = None) -> "PretrainedWeights":
        """Weights ``tag`` (default: the first downloadable); KeyError if there are none."""
        from ...hub.zoo import get_weights

        return get_weights(self.name, tag)

    def pretrained_cfg(self, tag: Optional[str] = None,
                       num_classes: Optional[int] = None) -> Dict[str, Any]:
        """timm-style description of this variant with weights ``tag`` (none published: the
        recipe's values): ``input_size`` (``(3, T, H, W)`` video / ``(3, H, W)``), eval
        ``resize_size`` / ``crop_pct`` / ``interpolation``, ``mean`` / ``std``,
        ``num_classes`` (``num_classes`` overrides, e.g. a new head), ``label_names``
        (None unless the head is the published one), and the file's address and page."""
        from .pretrained_cfg import pretrained_cfg

        return pretrained_cfg(self, tag, num_classes)

    def transforms(self, tag: Optional[str] = None) -> "EvalTransform":
        """The eval preprocessing of weights ``tag`` (``T x C x H x W`` frames or
        ``C x H x W`` images in, model input layout out; see :class:`EvalTransform`)."""
        from ..eval_transform import create_transform

        return create_transform(self.pretrained_cfg(tag))

    def meta(self, tag: Optional[str] = None) -> Dict[str, Any]:
        """torchvision-style ``meta``: ``categories``, ``num_params`` (exact), ``min_size``,
        ``min_temporal_size``, ``recipe``, ``_metrics``, ``_ops`` (GFLOPs), ``_file_size``."""
        from .pretrained_cfg import meta

        return meta(self, tag)


def register_variant(v: ModelVariant) -> ModelVariant:
    VARIANT_REGISTRY.register(v.name, v)
    return v


def get_variant(name: str) -> ModelVariant:
    return VARIANT_REGISTRY.get(name)


def list_variants(task: Optional[str] = None) -> List[str]:
    return [n for n, v in VARIANT_REGISTRY if task is None or v.task == task]


def _stage_lists(starts: Sequence[int]) -> List[List[float]]:
    return [[i, 2.0] for i in starts]


def _q_strides(depth: int, starts: Sequence[int], stride: Sequence[int], every_block: bool,
               one: Sequence[int]) -> List[List[int]]:
    """POOL_Q_STRIDE list: ``stride`` at stage starts; ``one`` at other blocks if every_block."""
    out = []
    for i in range(depth):
        if i in starts:
            out.append([i, *stride])
        elif every_block:
            out.append([i, *one])
    return out


def v1_video(depth: int, starts: Sequence[int], frames: int, **kw: Any) -> MViTArch:
    """MViTv1 (SlowFast ``MVIT_B_*_CONV``): abs separate pos-embed, q pool at transitions."""
    base = dict(
        video=True, num_frames=frames, depth=depth, embed_dim=96, num_heads=1,
        dim_mul=_stage_lists(starts), head_mul=_stage_lists(starts),
        pool_q_stride=_q_strides(depth, starts, (1, 2, 2), False, (1, 1, 1)),
        pool_kv_stride_adaptive=(1, 8, 8), pool_kvq_kernel=(3, 3, 3), cls_embed=True,
        use_abs_pos=True, sep_pos_embed=True, rel_pos_spatial=False, rel_pos_temporal=False,
        residual_pooling=False, dim_mul_in_att=False, drop_path_rate=0.2,
    )
    base.update(kw)
    return MViTArch(**base)


def v2_video(depth: int, starts: Sequence[int], frames: int, **kw: Any) -> MViTArch:
    """MViTv2 video (SlowFast ``MVITv2_*``): rel-pos (h, w, t), residual pooling, q pool everywhere."""
    base = dict(
        video=True, num_frames=frames, depth=depth, embed_dim=96, num_heads=1,
        dim_mul=_stage_lists(starts), head_mul=_stage_lists(starts),
        pool_q_stride=_q_strides(depth, starts, (1, 2, 2), True, (1, 1, 1)),
        pool_kv_stride_adaptive=(1, 8, 8), pool_kvq_kernel=(3, 3, 3), cls_embed=True,
        use_abs_pos=False, rel_pos_spatial=True, rel_pos_temporal=True, residual_pooling=True,
        dim_mul_in_att=True, drop_path_rate=0.2,
    )
    base.update(kw)
    return MViTArch(**base)


def v2_image(depth: int, starts: Sequence[int], **kw: Any) -> MViTArch:
    """MViTv2 image (facebookresearch/mvit ``MVITv2_*``): 2-D, mean pooling unless cls token."""
    base = dict(
        video=False, num_frames=1, patch_kernel=(7, 7), patch_stride=(4, 4), patch_padding=(3, 3),
        depth=depth, embed_dim=96, num_heads=1,
        dim_mul=_stage_lists(starts), head_mul=_stage_lists(starts),
        pool_q_stride=_q_strides(depth, starts, (2, 2), True, (1, 1)),
        pool_kv_stride_adaptive=(4, 4), pool_kvq_kernel=(3, 3), cls_embed=False,
        use_abs_pos=False, rel_pos_spatial=True, rel_pos_temporal=False, residual_pooling=True,
        residual_pooling_cls=True, dim_mul_in_att=True, drop_path_rate=0.1,
    )
    base.update(kw)
    return MViTArch(**base)


def v2_coco(depth: int, last_blocks: Sequence[int], **kw: Any) -> MViTArch:
    """detectron2 MViTv2 backbone: hybrid window attention, 4 outputs with their own norms.

    Windows of 56 tokens in scale2 (halved per stage); the last block of scale3..scale5 attends
    globally, and the kv stride is doubled in the global blocks of scale3 and scale4.
    """
    starts = [b + 1 for b in last_blocks[:-1]]
    arch = v2_image(depth, starts, cls_embed=False, rel_pos_zero_init=True, window_size=56,
                    global_blocks=tuple(last_blocks[1:]), drop_path_rate=0.2, **kw)
    kv = {s.index: s.stride_kv for s in arch.block_specs()}
    doubled = [[b, kv[b][1] * 2, kv[b][2] * 2] for b in last_blocks[1:3]]
    return arch.replace(pool_kv_stride=doubled)


_K400 = "Kinetics-400"
_KV = dict(dataset=_K400, class_names="kinetics400")
_SF = "facebookresearch/SlowFast"

register_variant(ModelVariant(
    "mvit_b_16x4", v1_video(16, (1, 3, 14), 16), 400, 16, 4, **_KV,
    metrics={"top1": 78.4, "top5": 93.5}, gflops=70.5, views="1x5", params_m=36.6,
    checkpoint="K400_MVIT_B_16x4_CONV.pyth (SlowFast)", source=f"{_SF} configs/Kinetics/MVIT_B_16x4_CONV.yaml",
))
register_variant(ModelVariant(
    "mvit_b_32x3", v1_video(16, (1, 3, 14), 32), 400, 32, 3, **_KV,
    metrics={"top1": 80.2, "top5": 94.4}, gflops=170.0, views="1x5", params_m=36.6,
    checkpoint="MVIT_B_32x3_f294077834.pyth (pytorchvideo mvit_base_32x3)",
    source="paper Table 2 (MViT-B 32x3); facebookresearch/pytorchvideo hub mvit_base_32x3",
))
# SlowFast's configs/Kinetics/MVIT_B_32x3_CONV.yaml as published: DEPTH is set twice (16, then
# 24; the last wins) and no POOL_KVQ_KERNEL (kernels derived from strides), i.e. MViT-B-24.
register_variant(ModelVariant(
    "mvit_b_24_32x3", v1_video(24, (2, 5, 21), 32, pool_kvq_kernel=None, drop_path_rate=0.3),
    400, 32, 3, **_KV, metrics={"top1": 80.4, "top5": 94.8}, views="1x5", params_m=53.1,
    checkpoint="model_zoo/mvit/k400.pyth (SlowFast MODEL_ZOO)",
    source=f"{_SF} configs/Kinetics/MVIT_B_32x3_CONV.yaml",
))
register_variant(ModelVariant(
    "mvitv2_s_16x4", v2_video(16, (1, 3, 14), 16), 400, 16, 4, **_KV,
    metrics={"top1": 81.0, "top5": 94.6}, gflops=64.0, views="1x5", params_m=34.5,
    checkpoint="MViTv2_S_16x4_k400_f302660347.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVITv2_S_16x4.yaml",
))
register_variant(ModelVariant(
    "mvitv2_b_32x3", v2_video(24, (2, 5, 21), 32, drop_path_rate=0.3), 400, 32, 3, **_KV,
    metrics={"top1": 82.9, "top5": 95.7}, gflops=225.0, views="1x5", params_m=51.2,
    checkpoint="MViTv2_B_32x3_k400_f304025456.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVITv2_B_32x3.yaml",
))
register_variant(ModelVariant(
    "mvitv2_l_40x3", v2_video(48, (2, 8, 44), 40, embed_dim=144, num_heads=2, spatial_size=(312, 312),
                              drop_path_rate=0.75, act_checkpoint=True),
    400, 40, 3, crop_size=312, dataset="Kinetics-400 (IN-21K pre-trained)",
    class_names="kinetics400",
    metrics={"top1": 86.1, "top5": 97.0}, gflops=2828.0, views="3x5", params_m=217.6,
    checkpoint="MViTv2_L_40x3_k400_f306903192.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVITv2_L_40x3_test.yaml",
))

_MV = "facebookresearch/mvit"
_IN = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, dataset="ImageNet-1K", head_dropout=0.0,
           class_names="imagenet1k")
register_variant(ModelVariant(
    "mvitv2_t", v2_image(10, (1, 3, 8)), 1000, metrics={"top1": 82.3}, gflops=4.7, params_m=24.2,
    checkpoint="MViTv2_T_in1k.pyth (mvit)", source=f"{_MV} configs/MVITv2_T.yaml", **_IN,
))
register_variant(ModelVariant(
    "mvitv2_s", v2_image(16, (1, 3, 14)), 1000, metrics={"top1": 83.6}, gflops=7.0, params_m=34.9,
    checkpoint="MViTv2_S_in1k.pyth (mvit)", source=f"{_MV} configs/MVITv2_S.yaml", **_IN,
))
register_variant(ModelVariant(
    "mvitv2_b", v2_image(24, (2, 5, 21), drop_path_rate=0.3), 1000, metrics={"top1": 84.4},
    gflops=10.2, params_m=51.5, checkpoint="MViTv2_B_in1k.pyth (mvit)",
    source=f"{_MV} configs/MVITv2_B.yaml", **_IN,
))
register_variant(ModelVariant(
    "mvitv2_l", v2_image(48, (2, 8, 44), embed_dim=144, num_heads=2, dim_mul_in_att=False,
                         drop_path_rate=0.5), 1000,
    metrics={"top1": 85.3}, gflops=42.1, params_m=218.0, checkpoint="MViTv2_L_in1k.pyth (mvit)",
    source=f"{_MV} configs/test/MVITv2_L_test.yaml", **_IN,
))
_IN21 = dict(_IN, dataset="ImageNet-21K (IN-21K -> 1K numbers)", class_names="")
register_variant(ModelVariant(
    "mvitv2_s_cls", v2_image(16, (1, 3, 14), cls_embed=True), 1000, metrics={},
    checkpoint="(timm mvitv2_small_cls)", source="timm mvitv2_small_cls", **_IN,
))
register_variant(ModelVariant(
    "mvitv2_b_cls", v2_image(24, (2, 5, 21), cls_embed=True, drop_path_rate=0.3), 19168,
    metrics={}, checkpoint="MViTv2_B_in21k.pyth (mvit)", source="timm mvitv2_base_cls.fb_inw21k", **_IN21,
))
register_variant(ModelVariant(
    "mvitv2_l_cls", v2_image(48, (2, 8, 44), embed_dim=144, num_heads=2, cls_embed=True,
                             drop_path_rate=0.5), 19168,
    metrics={"top1_in1k_finetuned": 87.5, "params_m_in1k_finetuned": 218.0}, gflops=42.1,
    checkpoint="MViTv2_L_in21k.pyth (mvit)", source="timm mvitv2_large_cls.fb_inw21k", **_IN21,
))
register_variant(ModelVariant(
    "mvitv2_h_cls", v2_image(80, (4, 12, 72), embed_dim=192, num_heads=3, cls_embed=True,
                             drop_path_rate=0.8), 19168,
    metrics={"top1_in1k_finetuned": 88.0, "params_m_in1k_finetuned": 667.0}, gflops=120.6,
    checkpoint="MViTv2_H_in21k.pyth (mvit)", source="timm mvitv2_huge_cls.fb_inw21k", **_IN21,
))

_D2 = "facebookresearch/detectron2 projects/MViTv2"
_COCO_RECIPES = {  # the project's recipes for each backbone (published numbers in each file)
    "mvitv2_t_coco": "{mask_rcnn,cascade_mask_rcnn}_mvitv2_t_3x.yaml",
    "mvitv2_s_coco": "{mask_rcnn,cascade_mask_rcnn}_mvitv2_s_3x.yaml",
    "mvitv2_b_coco": "{mask_rcnn,cascade_mask_rcnn}_mvitv2_b_3x.yaml, "
                     "cascade_mask_rcnn_mvitv2_b_in21k_3x.yaml",
    "mvitv2_l_coco": "cascade_mask_rcnn_mvitv2_l_in21k_lsj_50ep.yaml",
    "mvitv2_h_coco": "cascade_mask_rcnn_mvitv2_h_in21k_lsj_3x.yaml",
}
_COCO = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, dataset="COCO 2017 (Mask R-CNN / Cascade)",
             crop_size=1024, head_dropout=0.0, class_names="coco80")
for _name, _depth, _last, _kw, _m, _p, _dp in (
    ("mvitv2_t_coco", 10, (0, 2, 7, 9), {}, {"box_ap_mask_rcnn": 48.3, "mask_ap_mask_rcnn": 43.8,
                                              "box_ap_cascade": 52.2}, 44.0, 0.2),
    ("mvitv2_s_coco", 16, (0, 2, 13, 15), {}, {"box_ap_cascade": 53.2, "mask_ap_cascade": 46.0}, 87.0, 0.2),
    ("mvitv2_b_coco", 24, (1, 4, 20, 23), {}, {"box_ap_cascade": 54.1, "mask_ap_cascade": 46.7}, 103.0, 0.4),
    ("mvitv2_l_coco", 48, (1, 7, 43, 47), {"embed_dim": 144, "num_heads": 2},
     {"box_ap_cascade": 55.8, "mask_ap_cascade": 48.3}, 270.0, 0.5),
    ("mvitv2_h_coco", 80, (3, 11, 71, 79), {"embed_dim": 192, "num_heads": 3},
     {"box_ap_cascade": 56.1, "mask_ap_cascade": 48.5}, 718.0, 0.6),
):
    register_variant(ModelVariant(
        _name, v2_coco(_depth, _last, **_kw).replace(drop_path_rate=_dp), 0,
        metrics=dict(_m, detector_params_m=_p),
        checkpoint="detectron2 model zoo (backbone.bottom_up.*)",
        source=f"{_D2}; ours: projects/coco_detection/configs/{_COCO_RECIPES[_name]}", **_COCO,
    ))
