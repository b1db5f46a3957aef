"""COCO instance detection / segmentation task ``coco``: MViTv2 -> FPN -> Mask R-CNN.

Recipe semantics follow detectron2's ``projects/MViTv2`` (Li et al., "MViTv2", CVPR 2022):
multi-scale short-side training resize (or large-scale jitter), horizontal flip, test resize
to short side 800 / long side <= 1333, COCO box and mask AP. Keys live under ``COCO.*``;
the backbone is core ``MODEL.VARIANT`` / ``MODEL.MVIT.*`` (default ``mvitv2_t_coco``), and
``MODEL.NUM_CLASSES`` counts the background (COCO: 81).

Weights: ``COCO.BACKBONE_WEIGHTS`` initialises only the MViT (ImageNet checkpoints of the mvit
repo / SlowFast / timm / ours); ``MODEL.WEIGHTS`` (loaded after it) is read as
``COCO.WEIGHTS_FORMAT`` says: ``native`` (this task's checkpoints, keys ``detector.*``),
``detectron2`` (detectron2 MViTv2 Mask / Cascade Mask R-CNN checkpoints, ``.pkl`` or ``.pth``),
``backbone`` (like ``COCO.BACKBONE_WEIGHTS``) or ``auto`` (told apart by the key names).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Tuple

import torch

from mvit_tasks.config import CfgNode, arch_from_cfg
from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.modeling.backbone.variants import IMAGENET_MEAN, IMAGENET_STD
from mvit_tasks.registry import TASK_REGISTRY
from mvit_tasks.tasks import Task

from .model import CocoDetector

logger = logging.getLogger(__name__)

WEIGHTS_FORMATS = ("auto", "native", "detectron2", "backbone")
_D2_PREFIXES = ("roi_heads.", "proposal_generator.", "backbone.fpn_")


def add_coco_config(cfg: CfgNode) -> None:
    """Add ``COCO.*`` and this task's defaults of core keys to ``cfg`` in place."""
    cfg.MODEL.VARIANT = "mvitv2_t_coco"
    cfg.MODEL.NUM_CLASSES = 81  # 80 COCO categories + background
    cfg.DATA.MEAN = list(IMAGENET_MEAN)
    cfg.DATA.STD = list(IMAGENET_STD)

    c = cfg.COCO = CfgNode()
    c.DATA_DIR = ""  # relative paths below are joined to it
    c.TRAIN_JSON = "annotations/instances_train2017.json"
    c.TRAIN_IMAGE_ROOT = "train2017"
    c.VAL_JSON = "annotations/instances_val2017.json"
    c.VAL_IMAGE_ROOT = "val2017"
    c.TEST_JSON = ""  # "" = the val files
    c.TEST_IMAGE_ROOT = ""
    # Generate the COCO Shapes demo set (synthetic.py) in DATA_DIR if it is not there; point
    # the paths above to its files (configs/demo_shapes.yaml).
    c.DEMO_DATA = False
    c.DEMO_NUM_TRAIN = 200
    c.DEMO_NUM_VAL = 50
    c.DEMO_IMAGE_SIZE = 128
    c.DEMO_MAX_SHAPES = 4

    c.INPUT = CfgNode()
    c.INPUT.TRAIN_SHORT_SIZES = list(range(480, 801, 32))  # detectron2 MViTv2 coco_loader
    c.INPUT.TRAIN_MAX_SIZE = 1333
    c.INPUT.FLIP_PROB = 0.5
    c.INPUT.CROP_PROB = 0.0  # DETR-style crop before the resize (MViTv2 recipe: 0.5)
    c.INPUT.LSJ = False  # large-scale jitter instead of the multi-scale resize
    c.INPUT.LSJ_SIZE = 1024
    c.INPUT.LSJ_SCALE = [0.1, 2.0]
    c.INPUT.TEST_SHORT_SIZE = 800  # the model resizes test images (outputs: original pixels)
    c.INPUT.TEST_MAX_SIZE = 1333
    # detectron2: its ResizeShortestEdge exactly (sizes rounded half up, PIL bilinear on uint8)
    # | torchvision: GeneralizedRCNNTransform's resize (sizes floored, float bilinear)
    c.INPUT.TEST_RESIZE = "detectron2"

    d = c.DETECTOR = CfgNode()
    d.MASK_ON = True
    d.FPN_CHANNELS = 256
    d.FPN_NORM = ""  # "" | BN | GN | LN
    d.ANCHOR_SIZES = [32, 64, 128, 256, 512]  # one per level p2..p6
    d.ANCHOR_ASPECT_RATIOS = [0.5, 1.0, 2.0]
    d.RPN_CONV_DEPTH = 1
    d.RPN_PRE_NMS_TOP_N_TRAIN = 2000
    d.RPN_PRE_NMS_TOP_N_TEST = 1000
    d.RPN_POST_NMS_TOP_N_TRAIN = 1000
    d.RPN_POST_NMS_TOP_N_TEST = 1000
    d.RPN_NMS_THRESH = 0.7
    d.RPN_BATCH_SIZE_PER_IMAGE = 256
    d.BOX_HEAD = "2fc"  # 2fc | 4conv1fc
    d.BOX_HEAD_NORM = ""
    d.BOX_FC_DIM = 1024
    d.BOX_BATCH_SIZE_PER_IMAGE = 512
    d.BOX_POSITIVE_FRACTION = 0.25
    d.MASK_HEAD_NORM = ""
    d.MASK_PASTE = "detectron2"  # test masks: detectron2 sub-pixel paste | torchvision int boxes
    d.SCORE_THRESH = 0.05
    d.NMS_THRESH = 0.5
    d.DETECTIONS_PER_IMAGE = 100
    # standard: torchvision's one-stage RoIHeads (Mask R-CNN); cascade: three stages
    # (modeling/cascade.py, detectron2 CascadeROIHeads) with class-agnostic boxes
    d.ROI_HEADS = "standard"
    d.CASCADE_IOUS = [0.5, 0.6, 0.7]  # foreground IoU of each stage's matcher
    d.CASCADE_BBOX_REG_WEIGHTS = [[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0],
                                  [30.0, 30.0, 15.0, 15.0]]

    c.BACKBONE_WEIGHTS = ""  # ImageNet (or any backbone) checkpoint for the MViT only
    c.WEIGHTS_FORMAT = "auto"  # how MODEL.WEIGHTS is read: auto | native | detectron2 | backbone
    c.EVAL = CfgNode()
    c.EVAL.IOU_TYPES = ["bbox", "segm"]  # segm is dropped when MASK_ON is False
    c.EVAL.BACKEND = "pycocotools"  # | faster_coco_eval


def detector_kwargs(cfg: CfgNode) -> Dict[str, Any]:
    """Keyword arguments of :func:`~mvit_tasks.projects.coco_detection.modeling.build_mask_rcnn` from
    ``cfg`` (everything but the backbone and the class count)."""
    d, i = cfg.COCO.DETECTOR, cfg.COCO.INPUT
    return dict(
        fpn={"out_channels": d.FPN_CHANNELS, "norm": d.FPN_NORM}, mask_on=d.MASK_ON,
        min_size=i.TEST_SHORT_SIZE, max_size=i.TEST_MAX_SIZE,
        image_mean=list(cfg.DATA.MEAN), image_std=list(cfg.DATA.STD),
        anchor_sizes=list(d.ANCHOR_SIZES), anchor_aspect_ratios=list(d.ANCHOR_ASPECT_RATIOS),
        rpn_conv_depth=d.RPN_CONV_DEPTH,
        rpn_pre_nms_top_n_train=d.RPN_PRE_NMS_TOP_N_TRAIN,
        rpn_pre_nms_top_n_test=d.RPN_PRE_NMS_TOP_N_TEST,
        rpn_post_nms_top_n_train=d.RPN_POST_NMS_TOP_N_TRAIN,
        rpn_post_nms_top_n_test=d.RPN_POST_NMS_TOP_N_TEST, rpn_nms_thresh=d.RPN_NMS_THRESH,
        rpn_batch_size_per_image=d.RPN_BATCH_SIZE_PER_IMAGE, box_head=d.BOX_HEAD,
        box_head_norm=d.BOX_HEAD_NORM, box_fc_dim=d.BOX_FC_DIM,
        box_batch_size_per_image=d.BOX_BATCH_SIZE_PER_IMAGE,
        box_positive_fraction=d.BOX_POSITIVE_FRACTION, box_score_thresh=d.SCORE_THRESH,
        box_nms_thresh=d.NMS_THRESH, box_detections_per_img=d.DETECTIONS_PER_IMAGE,
        mask_head_norm=d.MASK_HEAD_NORM, roi_heads=d.ROI_HEADS,
        cascade_ious=list(d.CASCADE_IOUS),
        cascade_bbox_reg_weights=[tuple(w) for w in d.CASCADE_BBOX_REG_WEIGHTS],
    )


def build_detector(cfg: CfgNode) -> CocoDetector:
    """The detector of ``cfg`` with its weights (``COCO.BACKBONE_WEIGHTS``, ``MODEL.WEIGHTS``)."""
    from mvit_tasks.modeling.backbone.mvit import MViT

    model = CocoDetector.build(MViT(arch_from_cfg(cfg)), cfg.MODEL.NUM_CLASSES,
                               **detector_kwargs(cfg))
    model.configure_inference(cfg.COCO.INPUT.TEST_RESIZE, cfg.COCO.DETECTOR.MASK_PASTE)
    if cfg.COCO.BACKBONE_WEIGHTS:
        from .modeling import load_backbone_init

        report = load_backbone_init(model.detector, cfg.COCO.BACKBONE_WEIGHTS,
                                    source=cfg.MODEL.WEIGHTS_SOURCE,
                                    allow_unsafe=cfg.MODEL.WEIGHTS_UNSAFE_PICKLE)
        logger.info("backbone init %s: %s", cfg.COCO.BACKBONE_WEIGHTS, report.summary())
    if cfg.MODEL.WEIGHTS:
        load_detector_weights(model, cfg.MODEL.WEIGHTS, cfg.COCO.WEIGHTS_FORMAT, cfg)
    return model


def weights_format(state_dict: Dict[str, Any]) -> str:
    """``native`` (keys ``detector.*``), ``detectron2`` (``roi_heads.*``,
    ``proposal_generator.*``, ``backbone.fpn_*``) or ``backbone`` (anything else)."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in state_dict]
    if any(k.startswith("detector.") for k in keys):
        return "native"
    if any(k.startswith(_D2_PREFIXES) for k in keys):
        return "detectron2"
    return "backbone"


def load_detector_weights(model: CocoDetector, path: str, fmt: str, cfg: CfgNode) -> None:
    """Load ``path`` (a file or ``zoo:<variant>[.<tag>]``, e.g. ``zoo:mvitv2_t_coco``) into
    ``model`` as ``fmt`` (one of :data:`WEIGHTS_FORMATS`)."""
    from mvit_tasks.checkpoint.io import extract_state_dict, load_checkpoint_file
    from mvit_tasks.checkpoint.loader import load_weights, resolve_weights_path

    from .modeling import load_backbone_init, load_detectron2_checkpoint

    if fmt not in WEIGHTS_FORMATS:
        raise ValueError(f"COCO.WEIGHTS_FORMAT must be one of {WEIGHTS_FORMATS}, got {fmt!r}")
    local, _ = resolve_weights_path(path)  # zoo:<variant>[.<tag>] -> the fetched official file
    obj = load_checkpoint_file(local, cfg.MODEL.WEIGHTS_UNSAFE_PICKLE)
    if fmt == "auto":
        fmt = weights_format(extract_state_dict(obj))
    allow_missing = list(cfg.MODEL.WEIGHTS_ALLOW_MISSING)
    allow_unexpected = list(cfg.MODEL.WEIGHTS_ALLOW_UNEXPECTED)
    if fmt == "native":
        report: Any = load_weights(model, obj, source="native", allow_missing=allow_missing,
                                   allow_unexpected=allow_unexpected)
    elif fmt == "detectron2":  # Mask R-CNN, or Cascade into COCO.DETECTOR.ROI_HEADS cascade
        report = load_detectron2_checkpoint(model.detector, obj, allow_missing=allow_missing,
                                            allow_unexpected=allow_unexpected)
    else:
        report = load_backbone_init(model.detector, obj, source=cfg.MODEL.WEIGHTS_SOURCE)
    logger.info("MODEL.WEIGHTS %s (%s): %s", path, fmt, report.summary())


class SeededDataset(torch.utils.data.Dataset):
    """Takes the engine's ``(index, sample_seed)`` items: the wrapped dataset's augmentation
    (torch's global RNG) is seeded with ``sample_seed``; the RNG state is restored after."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: Any) -> Any:
        index, seed = item if isinstance(item, tuple) else (item, None)
        if seed is None:
            return self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.dataset[index]


@TASK_REGISTRY.register("coco")
class CocoTask(Task):
    """COCO instances (``COCO.*`` keys): Mask R-CNN training, box / mask AP evaluation."""

    default_metric = "bbox/AP"

    def load_eval_weights(self, model: torch.nn.Module, path: str) -> None:
        """``--eval-only`` weights in any ``COCO.WEIGHTS_FORMAT`` (native, detectron2, ...)."""
        load_detector_weights(model, path, self.cfg.COCO.WEIGHTS_FORMAT, self.cfg)

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        add_coco_config(cfg)

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        from .synthetic import generate_coco_shapes

        c = cfg.COCO
        self.prepare_demo_data("COCO", lambda root: generate_coco_shapes(
            root, c.DEMO_NUM_TRAIN, c.DEMO_NUM_VAL, size=c.DEMO_IMAGE_SIZE,
            max_shapes=c.DEMO_MAX_SHAPES, seed=0))

    def _path(self, name: str) -> str:
        return name if os.path.isabs(name) else os.path.join(self.cfg.COCO.DATA_DIR, name)

    def split_files(self, split: str) -> Tuple[str, str]:
        """``(json path, image root)`` of ``split`` (``train``, ``val``, ``test``)."""
        c = self.cfg.COCO
        if split == "train":
            return self._path(c.TRAIN_JSON), self._path(c.TRAIN_IMAGE_ROOT)
        if split == "val" or (split == "test" and not c.TEST_JSON):
            return self._path(c.VAL_JSON), self._path(c.VAL_IMAGE_ROOT)
        if split == "test":
            return self._path(c.TEST_JSON), self._path(c.TEST_IMAGE_ROOT or c.VAL_IMAGE_ROOT)
        raise ValueError(f"unknown split {split!r} (train, val, test)")

    # ------------------------------------------------------------------------------ model
    def build_model(self) -> CocoDetector:
        return build_detector(self.cfg)

    # ------------------------------------------------------------------------------- data
    def build_dataset(self, split: str) -> torch.utils.data.Dataset:
        from .dataset import CocoDetectionDataset
        from .transforms import build_train_transforms

        cfg, i = self.cfg, self.cfg.COCO.INPUT
        json_path, root = self.split_files(split)
        mask_on = cfg.COCO.DETECTOR.MASK_ON
        if split != "train":  # the model resizes (COCO.INPUT.TEST_*), outputs in file pixels;
            # uint8 images, as detectron2 resizes uint8 pixels (PIL)
            return CocoDetectionDataset(json_path, root, None, train=False, with_masks=False,
                                        to_float=False)
        transforms = build_train_transforms(
            short_sizes=list(i.TRAIN_SHORT_SIZES), max_size=i.TRAIN_MAX_SIZE,
            flip_prob=i.FLIP_PROB, crop_prob=i.CROP_PROB, lsj=i.LSJ, lsj_size=i.LSJ_SIZE,
            lsj_scale=tuple(i.LSJ_SCALE))
        dataset = CocoDetectionDataset(json_path, root, transforms, train=True,
                                       with_masks=mask_on or i.LSJ)
        num = dataset.mapping.num_classes + 1
        if num != cfg.MODEL.NUM_CLASSES:
            raise ValueError(f"{json_path} has {num - 1} categories, so MODEL.NUM_CLASSES must "
                             f"be {num} (background included), not {cfg.MODEL.NUM_CLASSES}")
        if dataset.dropped:
            logger.warning("%s: %d records dropped, e.g. %s", json_path, len(dataset.dropped),
                           dataset.dropped[:5])
        if dataset.num_filtered_empty:
            logger.info("%s: %d images without annotations left out", json_path,
                        dataset.num_filtered_empty)
        return SeededDataset(dataset)

    def collate_fn(self) -> Callable[[List[Any]], Dict[str, Any]]:
        from .dataset import collate_detection

        return collate_detection

    # ------------------------------------------------------------------------ evaluation
    def build_evaluator(self, split: str) -> DatasetEvaluator:
        from .evaluator import CocoEvaluator

        e = self.cfg.COCO.EVAL
        iou_types = [t for t in e.IOU_TYPES if t != "segm" or self.cfg.COCO.DETECTOR.MASK_ON]
        return CocoEvaluator(self.split_files(split)[0], iou_types=iou_types, backend=e.BACKEND)

    def class_names(self, split: str = "val") -> List[str]:
        """Category names by contiguous label (index 0 = ``"__background__"``), from the
        ``split`` json."""
        from .converters.coco_json import load_coco_json

        mapping = load_coco_json(self.split_files(split)[0], drop_invalid=False).mapping
        return ["__background__", *mapping.names]
