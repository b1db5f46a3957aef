"""Named MViT / MViTv2 variants with the official recipes and their published numbers.

Naming: ``mvit_<size>_<frames>x<stride>`` (MViTv1 video), ``mvitv2_<size>_<frames>x<stride>``
(MViTv2 video), ``mvitv2_<size>`` (ImageNet-1K image models), ``mvitv2_<size>_cls`` (image
models with a cls token, the IN-21K forms), ``mvitv2_<size>_coco`` (detectron2's hybrid-window
COCO backbones, multi-scale outputs, no head).

One declaration convention for every kind (keyword arguments only): the architecture is a
family of :mod:`.families` given its stage ``depths`` (timm's convention) and the clip length;
the rest is metadata. What the architecture fixes (frames, crop) is read from it::

    register_variant(ModelVariant(
        name="mvitv2_s_16x4",
        arch=mvitv2_video(depths=(1, 2, 11, 2), num_frames=16),
        num_classes=400, sampling_rate=4, ...,
    ))

Architectures follow PySlowFast ``configs/Kinetics/*``, facebookresearch/mvit ``configs/*`` and
detectron2 ``projects/MViTv2/configs/*``; numbers are the ones printed by those repos (each
entry's ``source`` names the file).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ...registry import VARIANT_REGISTRY
from .arch import MViTArch
from .families import mvitv1_video, mvitv2_detection, mvitv2_image, mvitv2_video

if TYPE_CHECKING:
    from ...hub.weights import PretrainedWeights
    from ..eval_transform import EvalTransform

KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True)
class ModelVariant:
    """A registered architecture plus what users need to run it (keyword arguments only).

    Attributes:
        name: registry name.
        arch: backbone settings (a :mod:`.families` function of the stage depths).
        num_classes: classes of the published head (0 for head-less detection backbones).
        sampling_rate: frame stride tau of the clips (video); 1 for images.
        crop_size: training/test crop (pixels). Default: the size the architecture's position
            tables are built for (``arch.spatial_size``); give it only where the model runs at
            another size (the 1024 px COCO detectors).
        mean / std: input normalisation (RGB, 0-1 range).
        dataset: what the published weights were trained on.
        metrics: published numbers, e.g. ``{"top1": 81.0, "top5": 94.6}``.
        gflops: published multiply-adds per view, in G (one multiply-add = one FLOP).
        views: test views as "crops x clips" (video).
        params_m: published parameter count in millions.
        checkpoint: official checkpoint file name (and its source format).
        source: config file the recipe comes from.
        head_dropout: dropout before the classifier of the recipe.
        class_names: the :mod:`mvit_tasks.data.classnames` list of the published head
            (``""``: none shipped); each weights entry names its own.

    ``num_frames`` (clip length T) is the architecture's (1 for images).

    The official weights files (addresses, hashes, eval preprocessing) are listed by
    :meth:`list_weights` (:mod:`.pretrained`); :meth:`pretrained_cfg`, :meth:`transforms` and
    :meth:`meta` describe a variant with one of them (``tag``; default: the first).
    """

    name: str
    arch: MViTArch
    num_classes: int
    sampling_rate: int = 1
    crop_size: Optional[int] = None
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

    def __post_init__(self) -> None:
        if not self.arch.video and self.sampling_rate != 1:
            raise ValueError(f"{self.name}: image models take sampling_rate=1")
        if self.crop_size is None:
            h, w = self.arch.spatial_size
            if h != w:
                raise ValueError(f"{self.name}: non-square spatial_size {(h, w)}; give crop_size")
            object.__setattr__(self, "crop_size", int(h))

    @property
    def num_frames(self) -> int:
        """Clip length T the architecture is built for (1 for images)."""
        return self.arch.num_frames if self.arch.video else 1

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




# ------------------------------------------------------------------ video (Kinetics-400)
_K400 = dict(dataset="Kinetics-400", class_names="kinetics400")
_SF = "facebookresearch/SlowFast"

register_variant(ModelVariant(
    name="mvit_b_16x4", arch=mvitv1_video(depths=(1, 2, 11, 2), num_frames=16),
    num_classes=400, sampling_rate=4, **_K400,
    metrics={"top1": 78.4, "top5": 93.5}, gflops=70.5, views="1x5", params_m=36.6,
    checkpoint="K400_MVIT_B_16x4_CONV.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVIT_B_16x4_CONV.yaml",
))
register_variant(ModelVariant(
    name="mvit_b_32x3", arch=mvitv1_video(depths=(1, 2, 11, 2), num_frames=32),
    num_classes=400, sampling_rate=3, **_K400,
    metrics={"top1": 80.2, "top5": 94.4}, gflops=170.0, views="1x5", params_m=36.6,
    checkpoint="MVIT_B_32x3_f294077834.pyth (pytorchvideo mvit_base_32x3)",
    source="paper Table 2 (MViT-B 32x3); facebookresearch/pytorchvideo hub mvit_base_32x3",
))
# SlowFast's configs/Kinetics/MVIT_B_32x3_CONV.yaml as published: DEPTH is set twice (16, then
# 24; the last wins) and no POOL_KVQ_KERNEL (kernels derived from strides), i.e. MViT-B-24.
register_variant(ModelVariant(
    name="mvit_b_24_32x3",
    arch=mvitv1_video(depths=(2, 3, 16, 3), num_frames=32, pool_kvq_kernel=None,
                      drop_path_rate=0.3),
    num_classes=400, sampling_rate=3, **_K400,
    metrics={"top1": 80.4, "top5": 94.8}, views="1x5", params_m=53.1,
    checkpoint="model_zoo/mvit/k400.pyth (SlowFast MODEL_ZOO)",
    source=f"{_SF} configs/Kinetics/MVIT_B_32x3_CONV.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_s_16x4", arch=mvitv2_video(depths=(1, 2, 11, 2), num_frames=16),
    num_classes=400, sampling_rate=4, **_K400,
    metrics={"top1": 81.0, "top5": 94.6}, gflops=64.0, views="1x5", params_m=34.5,
    checkpoint="MViTv2_S_16x4_k400_f302660347.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVITv2_S_16x4.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_b_32x3",
    arch=mvitv2_video(depths=(2, 3, 16, 3), num_frames=32, drop_path_rate=0.3),
    num_classes=400, sampling_rate=3, **_K400,
    metrics={"top1": 82.9, "top5": 95.7}, gflops=225.0, views="1x5", params_m=51.2,
    checkpoint="MViTv2_B_32x3_k400_f304025456.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVITv2_B_32x3.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_l_40x3",
    arch=mvitv2_video(depths=(2, 6, 36, 4), num_frames=40, embed_dim=144, num_heads=2,
                      spatial_size=(312, 312), drop_path_rate=0.75, act_checkpoint=True),
    num_classes=400, sampling_rate=3, dataset="Kinetics-400 (IN-21K pre-trained)",
    class_names="kinetics400",
    metrics={"top1": 86.1, "top5": 97.0}, gflops=2828.0, views="3x5", params_m=217.6,
    checkpoint="MViTv2_L_40x3_k400_f306903192.pyth (SlowFast)",
    source=f"{_SF} configs/Kinetics/MVITv2_L_40x3_test.yaml",
))

# ------------------------------------------------------------------ image (ImageNet)
_MV = "facebookresearch/mvit"
_IN = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, dataset="ImageNet-1K", head_dropout=0.0,
           class_names="imagenet1k")
register_variant(ModelVariant(
    name="mvitv2_t", arch=mvitv2_image(depths=(1, 2, 5, 2)), num_classes=1000, **_IN,
    metrics={"top1": 82.3}, gflops=4.7, params_m=24.2,
    checkpoint="MViTv2_T_in1k.pyth (mvit)", source=f"{_MV} configs/MVITv2_T.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_s", arch=mvitv2_image(depths=(1, 2, 11, 2)), num_classes=1000, **_IN,
    metrics={"top1": 83.6}, gflops=7.0, params_m=34.9,
    checkpoint="MViTv2_S_in1k.pyth (mvit)", source=f"{_MV} configs/MVITv2_S.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_b", arch=mvitv2_image(depths=(2, 3, 16, 3), drop_path_rate=0.3),
    num_classes=1000, **_IN, metrics={"top1": 84.4}, gflops=10.2, params_m=51.5,
    checkpoint="MViTv2_B_in1k.pyth (mvit)", source=f"{_MV} configs/MVITv2_B.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_l",
    arch=mvitv2_image(depths=(2, 6, 36, 4), embed_dim=144, num_heads=2, dim_mul_in_att=False,
                      drop_path_rate=0.5),
    num_classes=1000, **_IN, metrics={"top1": 85.3}, gflops=42.1, params_m=218.0,
    checkpoint="MViTv2_L_in1k.pyth (mvit)", source=f"{_MV} configs/test/MVITv2_L_test.yaml",
))
_IN21 = dict(_IN, dataset="ImageNet-21K (IN-21K -> 1K numbers)", class_names="")
register_variant(ModelVariant(
    name="mvitv2_s_cls", arch=mvitv2_image(depths=(1, 2, 11, 2), cls_embed=True),
    num_classes=1000, **_IN, metrics={},
    checkpoint="(timm mvitv2_small_cls)", source="timm mvitv2_small_cls",
))
register_variant(ModelVariant(
    name="mvitv2_b_cls",
    arch=mvitv2_image(depths=(2, 3, 16, 3), cls_embed=True, drop_path_rate=0.3),
    num_classes=19168, **_IN21, metrics={},
    checkpoint="MViTv2_B_in21k.pyth (mvit)", source="timm mvitv2_base_cls.fb_inw21k",
))
register_variant(ModelVariant(
    name="mvitv2_l_cls",
    arch=mvitv2_image(depths=(2, 6, 36, 4), embed_dim=144, num_heads=2, cls_embed=True,
                      drop_path_rate=0.5),
    num_classes=19168, **_IN21,
    metrics={"top1_in1k_finetuned": 87.5, "params_m_in1k_finetuned": 218.0}, gflops=42.1,
    checkpoint="MViTv2_L_in21k.pyth (mvit)", source="timm mvitv2_large_cls.fb_inw21k",
))
register_variant(ModelVariant(
    name="mvitv2_h_cls",
    arch=mvitv2_image(depths=(4, 8, 60, 8), embed_dim=192, num_heads=3, cls_embed=True,
                      drop_path_rate=0.8),
    num_classes=19168, **_IN21,
    metrics={"top1_in1k_finetuned": 88.0, "params_m_in1k_finetuned": 667.0}, gflops=120.6,
    checkpoint="MViTv2_H_in21k.pyth (mvit)", source="timm mvitv2_huge_cls.fb_inw21k",
))

# ------------------------------------------------------------------ COCO detection backbones
# detectron2 gives the same T/S/B/L/H stages as last_block_indexes, e.g. S (0, 2, 13, 15) =
# depths (1, 2, 11, 2). Published numbers of the project's recipes, plus the detector's size.
_D2 = "facebookresearch/detectron2 projects/MViTv2; ours: projects/coco_detection/configs/"
_COCO = dict(num_classes=0, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_size=1024,
             dataset="COCO 2017 (Mask R-CNN / Cascade)", head_dropout=0.0, class_names="coco80",
             checkpoint="detectron2 model zoo (backbone.bottom_up.*)")
register_variant(ModelVariant(
    name="mvitv2_t_coco", arch=mvitv2_detection(depths=(1, 2, 5, 2)), **_COCO,
    metrics={"box_ap_mask_rcnn": 48.3, "mask_ap_mask_rcnn": 43.8, "box_ap_cascade": 52.2,
             "detector_params_m": 44.0},
    source=f"{_D2}{{mask_rcnn,cascade_mask_rcnn}}_mvitv2_t_3x.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_s_coco", arch=mvitv2_detection(depths=(1, 2, 11, 2)), **_COCO,
    metrics={"box_ap_cascade": 53.2, "mask_ap_cascade": 46.0, "detector_params_m": 87.0},
    source=f"{_D2}{{mask_rcnn,cascade_mask_rcnn}}_mvitv2_s_3x.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_b_coco", arch=mvitv2_detection(depths=(2, 3, 16, 3), drop_path_rate=0.4),
    **_COCO, metrics={"box_ap_cascade": 54.1, "mask_ap_cascade": 46.7, "detector_params_m": 103.0},
    source=f"{_D2}{{mask_rcnn,cascade_mask_rcnn}}_mvitv2_b_3x.yaml, "
           "cascade_mask_rcnn_mvitv2_b_in21k_3x.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_l_coco",
    arch=mvitv2_detection(depths=(2, 6, 36, 4), embed_dim=144, num_heads=2, drop_path_rate=0.5),
    **_COCO, metrics={"box_ap_cascade": 55.8, "mask_ap_cascade": 48.3, "detector_params_m": 270.0},
    source=f"{_D2}cascade_mask_rcnn_mvitv2_l_in21k_lsj_50ep.yaml",
))
register_variant(ModelVariant(
    name="mvitv2_h_coco",
    arch=mvitv2_detection(depths=(4, 8, 60, 8), embed_dim=192, num_heads=3, drop_path_rate=0.6),
    **_COCO, metrics={"box_ap_cascade": 56.1, "mask_ap_cascade": 48.5, "detector_params_m": 718.0},
    source=f"{_D2}cascade_mask_rcnn_mvitv2_h_in21k_lsj_3x.yaml",
))
