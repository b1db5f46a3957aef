"""The official weights of each registered variant: addresses, hashes, eval preprocessing.

Every address is copied verbatim from the page cited in its entry (``page``). Hashes and sizes
are recorded only where a page publishes them: torchvision's file names carry a sha256 prefix
(``mvit_v2_s-ae3be167.pth``, checked as ``torch.hub`` does) and its weight cards a size in MB
(``_file_size``); SlowFast, facebookresearch/mvit, pytorchvideo, timm and detectron2 publish
neither, so those files are UNVERIFIED on download (a WARNING says so, and the sha256 of the
first download is recorded next to the file). detectron2's ``model_final_<6 hex>.pkl`` suffix
is not documented as a hash and is not checked; SlowFast's ``_f<digits>`` is a job id.

Pages (as read for this table):

* SlowFast: ``MODEL_ZOO.md`` and ``projects/mvitv2/README.md`` (facebookresearch/SlowFast
  287ec00), test views / preprocessing from its ``configs/{Kinetics,SSv2}/*.yaml``;
* facebookresearch/mvit ``README.md`` (dfbdfdf), test transform from ``mvit/datasets/imagenet.py``
  (resize ``1 / VAL_CROP_RATIO`` = 1/0.875 of the crop, bicubic, centre crop);
* torchvision 0.29.1 ``torchvision/models/video/mvit.py`` (``MViT_V*_Weights``);
* timm 1.0.31 ``timm/models/mvitv2.py`` ``default_cfgs`` (``hf_hub_id='timm/'``);
* pytorchvideo 0.1.5 ``pytorchvideo/models/hub/vision_transformers.py`` (``checkpoint_paths``,
  root ``MODEL_ZOO_ROOT_DIR`` of ``hub/utils.py``);
* detectron2 ``projects/MViTv2/README.md`` (facebookresearch/detectron2 02b5c4e).
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ...hub.weights import PretrainedWeights

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_SF = "facebookresearch/SlowFast MODEL_ZOO.md"
_SF2 = "facebookresearch/SlowFast projects/mvitv2/README.md"
_SF_ROOT = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvitv2/pysf_video_models/"
_MV = "facebookresearch/mvit README.md"
_MV_ROOT = "https://dl.fbaipublicfiles.com/mvit/mvitv2_models/"
_TV = "torchvision 0.29.1 torchvision/models/video/mvit.py"
_TIMM = "timm 1.0.31 timm/models/mvitv2.py default_cfgs"
_PV = "pytorchvideo 0.1.5 pytorchvideo/models/hub/vision_transformers.py checkpoint_paths"
_PV_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo"  # hub/utils.py
_D2 = "facebookresearch/detectron2 projects/MViTv2/README.md"
_D2_ROOT = "https://dl.fbaipublicfiles.com/detectron2/MViTv2/"


def _tk(top1: float, top5: float) -> Dict[str, float]:
    return {"top1": top1, "top5": top5}


def _slowfast(tag: str, file: str, dataset: str, metrics: Dict[str, float], *,
              ssv2: bool = False, crop: int = 224, views: str = "1x5", page: str = _SF2,
              **kw: Any) -> PretrainedWeights:
    """A SlowFast video checkpoint. Test preprocessing as SlowFast's ``kinetics.py`` /
    ``ssv2.py``: with 1 spatial crop the short side is ``TRAIN_JITTER_SCALES[0]`` (256), with 3
    crops it is ``TEST_CROP_SIZE``; bilinear ``F.interpolate`` (no antialias), ``ceil`` offsets."""
    one_crop = views.startswith("1x")
    return PretrainedWeights(
        tag, _SF_ROOT + file, page, "slowfast", dataset,
        174 if ssv2 else 400, "ssv2" if ssv2 else "kinetics400", metrics=metrics,
        resize_size=256 if one_crop and crop == 224 else crop, crop_size=crop,
        test_views=views, **kw)


def _torchvision(tag: str, url: str, prefix: str, size_mb: float, metrics: Dict[str, float],
                 weights_enum: str) -> PretrainedWeights:
    """torchvision's ``VideoClassification(crop_size=(224, 224), resize_size=(256,))``."""
    return PretrainedWeights(
        tag, url, f"{_TV} {weights_enum}.KINETICS400_V1", "torchvision", "Kinetics-400", 400,
        "kinetics400", hash_prefix=prefix, size_mb=size_mb, metrics=metrics,
        crop_rounding="round", test_views="1x5 (frame_rate 7.5, clip_len 16)")


def _mvit_image(tag: str, file: str, dataset: str, classes: int, metrics: Dict[str, float],
                names: str = "imagenet1k", notes: str = "") -> PretrainedWeights:
    return PretrainedWeights(
        tag, _MV_ROOT + file, f"{_MV}; {_TIMM} url", "mvit", dataset, classes, names,
        metrics=metrics, resize_size=256, crop_size=224, interpolation="bicubic",
        antialias=True, crop_rounding="round", notes=notes)


def _timm_hub(tag: str, timm_name: str, dataset: str, classes: int,
              names: str = "imagenet1k") -> PretrainedWeights:
    """timm's Hugging Face copy (converted to timm's keys); timm's cfg: crop_pct 0.9, bicubic."""
    return PretrainedWeights(
        tag, f"https://huggingface.co/timm/{timm_name}/resolve/main/model.safetensors",
        f"{_TIMM}['{timm_name}'] hf_hub_id='timm/' (file: timm/models/_hub.py "
        "HF_SAFE_WEIGHTS_NAME)", "timm", dataset, classes, names, resize_size=248,
        crop_size=224, interpolation="bicubic", antialias=True, crop_rounding="round",
        file=f"{timm_name}.safetensors",
        notes="address built from timm's hub id by the Hugging Face 'resolve' convention "
              "(timm prints the hub id, not the address); same weights as the mvit file, "
              "converted by timm")


def _d2(tag: str, path: str, box: float, mask: float, pretrain: str) -> PretrainedWeights:
    return PretrainedWeights(
        tag, _D2_ROOT + path, _D2, "detectron2", f"COCO 2017 ({pretrain} pre-trained)", 0,
        "coco80", metrics={"box_ap": box, "mask_ap": mask}, resize_size=1024, crop_size=1024,
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
        notes="a whole detector: create_model takes its backbone (backbone.bottom_up.*); the "
              "COCO task loads all of it (MODEL.WEIGHTS)")


_L_VIDEO = dict(crop=312, mean=IMAGENET_MEAN, std=IMAGENET_STD)

#: variant -> its official weights; the first entry that can be downloaded is the default.
PRETRAINED: Dict[str, Tuple[PretrainedWeights, ...]] = {
    "mvit_b_16x4": (
        _torchvision("k400_torchvision", "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth",
                     "dbeb1030", 139.764, {"acc@1": 78.477, "acc@5": 93.582}, "MViT_V1_B_Weights"),
        PretrainedWeights(
            "k400_pytorchvideo", f"{_PV_ROOT}/kinetics/MVIT_B_16x4.pyth",
            f"{_PV}['mvit_base_16x4']", "pytorchvideo", "Kinetics-400", 400, "kinetics400",
            notes="pytorchvideo publishes no eval transform for it here; SlowFast's is used"),
        PretrainedWeights(
            "k400", "https://drive.google.com/file/d/194gJinVejq6A1FmySNKQ8vAN5-FOY-QL/view?usp=sharing",
            _SF, "slowfast", "Kinetics-400", 400, "kinetics400", metrics=_tk(78.4, 93.5),
            test_views="1x5", direct=False, file="K400_MVIT_B_16x4_CONV.pyth",
            notes="a Google Drive page: download it in a browser and put it in a mirror "
                  "folder or pass weights=PATH"),
    ),
    "mvit_b_32x3": (
        PretrainedWeights(
            "k400_pytorchvideo", f"{_PV_ROOT}/kinetics/MVIT_B_32x3_f294077834.pyth",
            f"{_PV}['mvit_base_32x3']", "pytorchvideo", "Kinetics-400", 400, "kinetics400",
            notes="pytorchvideo publishes no eval transform for it here; SlowFast's is used"),
    ),
    "mvit_b_24_32x3": (
        PretrainedWeights(
            "k400", "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/mvit/k400.pyth", _SF,
            "slowfast", "Kinetics-400", 400, "kinetics400", metrics=_tk(80.4, 94.8),
            test_views="1x5", file="MVIT_B_32x3_CONV_k400.pyth",
            notes="MODEL_ZOO row 'MViTv1 B-Conv 32x3 ... Kinetics/MVIT_B_32x3_CONV'; that YAML "
                  "builds this 24-block model (see README); the page publishes no size or hash"),
    ),
    "mvitv2_s_16x4": (
        _slowfast("k400", "MViTv2_S_16x4_k400_f302660347.pyth", "Kinetics-400", _tk(81.0, 94.6),
                  page=f"{_SF}; {_SF2}"),
        _torchvision("k400_torchvision", "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth",
                     "ae3be167", 131.884, {"acc@1": 80.757, "acc@5": 94.665}, "MViT_V2_S_Weights"),
        _slowfast("ssv2", "MViTv2_S_16x4_ssv2_f308341823.pyth", "Something-Something v2 (K400 "
                  "pre-trained)", _tk(68.2, 91.4), ssv2=True, views="3x1"),
    ),
    "mvitv2_b_32x3": (
        _slowfast("k400", "MViTv2_B_32x3_k400_f304025456.pyth", "Kinetics-400", _tk(82.9, 95.7),
                  page=f"{_SF}; {_SF2}"),
        _slowfast("ssv2", "MViTv2_B_32x3_ssv2_f305803282.pyth", "Something-Something v2 (K400 "
                  "pre-trained)", _tk(70.5, 92.7), ssv2=True, views="3x1"),
    ),
    "mvitv2_l_40x3": (
        _slowfast("k400", "MViTv2_L_40x3_k400_f306903192.pyth", "Kinetics-400 (IN-21K "
                  "pre-trained)", _tk(86.1, 97.0), views="3x5", **_L_VIDEO),
        _slowfast("ssv2", "MViTv2_L_40x3_ssv2_f309603968.pyth", "Something-Something v2 "
                  "(IN-21K + K400 pre-trained)", _tk(73.3, 94.1), ssv2=True, views="3x1",
                  **_L_VIDEO),
    ),
    "mvitv2_t": (_mvit_image("in1k", "MViTv2_T_in1k.pyth", "ImageNet-1K", 1000, {"top1": 82.3}),
                 _timm_hub("in1k_timm", "mvitv2_tiny.fb_in1k", "ImageNet-1K", 1000)),
    "mvitv2_s": (_mvit_image("in1k", "MViTv2_S_in1k.pyth", "ImageNet-1K", 1000, {"top1": 83.6}),
                 _timm_hub("in1k_timm", "mvitv2_small.fb_in1k", "ImageNet-1K", 1000)),
    "mvitv2_b": (_mvit_image("in1k", "MViTv2_B_in1k.pyth", "ImageNet-1K", 1000, {"top1": 84.4}),
                 _timm_hub("in1k_timm", "mvitv2_base.fb_in1k", "ImageNet-1K", 1000)),
    "mvitv2_l": (_mvit_image("in1k", "MViTv2_L_in1k.pyth", "ImageNet-1K", 1000, {"top1": 85.3}),
                 _timm_hub("in1k_timm", "mvitv2_large.fb_in1k", "ImageNet-1K", 1000)),
}
_IN21K_NOTE = ("19,168 ImageNet-21K classes, names not shipped; the page's top-1 numbers are of "
               "IN-1K fine-tuned models it does not publish")
for _v, _file, _timm_name in (("mvitv2_b_cls", "MViTv2_B_in21k.pyth", "mvitv2_base_cls.fb_inw21k"),
                              ("mvitv2_l_cls", "MViTv2_L_in21k.pyth", "mvitv2_large_cls.fb_inw21k"),
                              ("mvitv2_h_cls", "MViTv2_H_in21k.pyth", "mvitv2_huge_cls.fb_inw21k")):
    PRETRAINED[_v] = (
        _mvit_image("in21k", _file, "ImageNet-21K", 19168, {}, names="", notes=_IN21K_NOTE),
        _timm_hub("in21k_timm", _timm_name, "ImageNet-21K", 19168, names=""),
    )
PRETRAINED.update({
    "mvitv2_t_coco": (
        _d2("coco_mask_rcnn", "mask_rcnn_mvitv2_t_3x/f307611773/model_final_1a1c30.pkl", 48.3,
            43.8, "IN-1K"),
        _d2("coco_cascade", "cascade_mask_rcnn_mvitv2_t_3x/f308344828/model_final_c6967a.pkl",
            52.2, 45.0, "IN-1K"),
    ),
    "mvitv2_s_coco": (
        _d2("coco_cascade", "cascade_mask_rcnn_mvitv2_s_3x/f308344647/model_final_279baf.pkl",
            53.2, 46.0, "IN-1K"),
    ),
    "mvitv2_b_coco": (
        _d2("coco_cascade", "cascade_mask_rcnn_mvitv2_b_3x/f308109448/model_final_421a91.pkl",
            54.1, 46.7, "IN-1K"),
        _d2("coco_cascade_in21k",
            "cascade_mask_rcnn_mvitv2_b_in12k_3x/f309003202/model_final_be5168.pkl", 54.9, 47.4,
            "IN-21K"),
    ),
    "mvitv2_l_coco": (
        _d2("coco_cascade_in21k",
            "cascade_mask_rcnn_mvitv2_l_in12k_lsj_50ep/f308099658/model_final_c41c5a.pkl", 55.8,
            48.3, "IN-21K"),
    ),
    "mvitv2_h_coco": (
        _d2("coco_cascade_in21k",
            "cascade_mask_rcnn_mvitv2_h_in12k_lsj_3x/f309013744/model_final_30d36b.pkl", 56.1,
            48.5, "IN-21K"),
    ),
})


def weights_of(variant: str) -> Tuple[PretrainedWeights, ...]:
    """The official weights of ``variant`` (empty when none are published)."""
    return PRETRAINED.get(variant, ())


def all_weights() -> List[Tuple[str, PretrainedWeights]]:
    """``(variant, weights)`` for every entry, in registry order."""
    return [(v, w) for v, ws in PRETRAINED.items() for w in ws]
