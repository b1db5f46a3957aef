"""The ``ava`` task: AVA v2.2 spatiotemporal action detection from person boxes.

Data protocol of PySlowFast (``slowfast/datasets/ava_helper.py``, ``ava_dataset.py``,
``config/defaults.py`` ``AVA.*``): train on ground-truth boxes (optionally plus detected boxes,
labelled by IoU >= 0.9 to a GT box), test on detected boxes with score >= ``AVA.
DETECTION_SCORE_THRESH``; frames at ``AVA.FPS`` from the segment starting at
``AVA.SEGMENT_START_SEC``. Metric: frame-mAP@0.5 of the official ActivityNet evaluator
(:mod:`mvit_tasks.projects.ava.evaluation`). SlowFast users: ``AVA.FRAME_DIR`` / ``FRAME_LIST_DIR`` /
``ANNOTATION_DIR`` / ``TRAIN_GT_BOX_LISTS`` / ``TRAIN_PREDICT_BOX_LISTS`` /
``TEST_PREDICT_BOX_LISTS`` / ``GROUNDTRUTH_FILE`` / ``LABEL_MAP_FILE`` / ``EXCLUSION_FILE`` /
``DETECTION_SCORE_THRESH`` keep their names; ``1 / DETECTION.SPATIAL_SCALE_FACTOR`` ->
``AVA.ROI_SPATIAL_SCALE`` (0 = from the backbone stride), ``DETECTION.ROI_XFORM_RESOLUTION`` ->
``AVA.ROI_RESOLUTION``, ``DETECTION.ALIGNED`` -> ``AVA.ROI_ALIGNED`` (``tools/
convert_checkpoint.py --source-config`` writes them from a SlowFast AVA config).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional

import torch

from mvit_tasks.config import CfgNode, arch_from_cfg
from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.registry import TASK_REGISTRY
from mvit_tasks.tasks import Task

logger = logging.getLogger(__name__)
_VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def add_ava_config(cfg: CfgNode) -> None:
    """Add ``AVA.*`` (SlowFast AVA defaults) and set ``MODEL.NUM_CLASSES`` to 80."""
    a = cfg.AVA = CfgNode()
    a.DATA_DIR = ""  # root of the relative paths below
    a.VIDEO_DIR = "videos"  # <video_id>.mp4 segments (decoded on the fly) when FRAME_LIST_DIR=""
    a.FRAME_DIR = "frames"  # SlowFast layout frames/<video_id>/<video_id>_%06d.jpg
    a.FRAME_LIST_DIR = ""  # "frame_lists" to read extracted frames instead of videos
    a.TRAIN_LISTS = ["train.csv"]
    a.TEST_LISTS = ["val.csv"]
    a.ANNOTATION_DIR = "annotations"
    a.TRAIN_GT_BOX_LISTS = ["ava_train_v2.2.csv"]
    a.TRAIN_USE_DETECTED_BOXES = False  # add detector boxes to training (IoU rule below)
    a.TRAIN_PREDICT_BOX_LISTS = []  # detector boxes for training
    a.DETECTED_BOX_IOU = 0.9  # a detected box with IoU >= this to a GT box takes its labels
    a.TRAIN_INCLUDE_NEGATIVES = True  # other detected boxes train as negatives (all zeros)
    a.TEST_PREDICT_BOX_LISTS = ["ava_val_predicted_boxes.csv"]
    a.DETECTION_SCORE_THRESH = 0.8  # detector boxes kept at score >= this (SlowFast configs)
    a.GROUNDTRUTH_FILE = "ava_val_v2.2.csv"
    a.LABEL_MAP_FILE = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"  # evaluated classes
    a.EXCLUSION_FILE = "ava_val_excluded_timestamps_v2.2.csv"  # "" = none
    a.EVAL_PROTOCOL = "activitynet"  # activitynet (official) | mmaction2 (ignore empty frames)
    # Refuse rows the official tools read but that look wrong (boxes outside [0, 1], inverted,
    # zero-area, repeated); False = keep them as SlowFast / the official evaluator do, listed
    # as WARNINGs and in the evaluation's report.
    a.STRICT_INPUT = False
    a.FPS = 30.0  # AVA's time grid (SlowFast's extracted frames); videos are read by timestamp
    a.SEGMENT_START_SEC = 900.0  # second of frame 0 (AVA: the 15-min segment from 900 s)
    a.TRAIN_JITTER_SCALES = [256, 320]  # short side range, then a DATA.TRAIN_CROP_SIZE crop
    a.TEST_SHORT_SIDE = 0  # test short side, full frame (0 = DATA.TEST_CROP_SIZE)
    a.FLIP = True  # random horizontal flip in training
    a.ROI_RESOLUTION = 7  # RoIAlign output size (SlowFast DETECTION.ROI_XFORM_RESOLUTION)
    # Feature pixels per input pixel, <= 1: SlowFast's 1 / DETECTION.SPATIAL_SCALE_FACTOR (e.g.
    # 0.0625 for 16); 0 = 1 / stride of the last stage (from output_shape()).
    a.ROI_SPATIAL_SCALE = 0.0
    a.ROI_SAMPLING_RATIO = 0  # RoIAlign sampling points per bin (0 = adaptive, SlowFast)
    a.ROI_ALIGNED = True  # RoIAlign half-pixel alignment (SlowFast DETECTION.ALIGNED)
    a.SPATIAL_POOL = "max"  # max (SlowFast) | avg
    a.DECODE_THREADS = "NONE"  # FFmpeg threading for video files: AUTO | FRAME | SLICE | NONE
    a.DEMO_DATA = False  # generate the synthetic demo set into DATA_DIR if missing
    a.DEMO_TRAIN_VIDEOS = 24
    a.DEMO_VAL_VIDEOS = 8
    cfg.MODEL.NUM_CLASSES = 80


@TASK_REGISTRY.register("ava")
class AvaTask(Task):
    """AVA v2.2 action detection: MViT + RoI head, frame-mAP (``AVA.*`` keys)."""

    default_metric = "mAP"

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        add_ava_config(cfg)

    @classmethod
    def from_official_config(cls, view: Any, warnings: List[str]
                             ) -> Optional[Dict[str, Dict[str, Any]]]:
        """SlowFast ``DETECTION.ENABLE`` configs -> ``AVA.*`` (:mod:`.official_config`)."""
        from mvit_tasks.checkpoint.official_config import as_bool

        from .official_config import detection_task_config

        if not as_bool(view, "DETECTION", "ENABLE"):
            return None
        return detection_task_config(view, warnings)

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        from .synthetic import generate_demo_ava

        a = cfg.AVA
        self.prepare_demo_data("AVA", lambda root: generate_demo_ava(
            root, a.DEMO_TRAIN_VIDEOS, a.DEMO_VAL_VIDEOS, fps=int(a.FPS), seed=0))

    def path(self, name: str, folder: str = "") -> str:
        """``name`` if absolute, else ``AVA.DATA_DIR/folder/name``."""
        if os.path.isabs(name):
            return name
        return os.path.join(self.cfg.AVA.DATA_DIR, folder, name)

    def _ann(self, name: str) -> str:
        return self.path(name, self.cfg.AVA.ANNOTATION_DIR)

    # ------------------------------------------------------------------------------ model
    def build_model(self) -> torch.nn.Module:
        """:class:`AvaDetector` of ``MODEL.*`` + ``AVA.ROI_*`` (validated: a spatial scale above
        1 or a resolution below 1 stop with the key named), ``MODEL.WEIGHTS`` loaded."""
        from .model import AvaDetector

        cfg, a = self.cfg, self.cfg.AVA
        model = AvaDetector.from_arch(
            arch_from_cfg(cfg, input_from_data=True), cfg.MODEL.NUM_CLASSES, resolution=a.ROI_RESOLUTION,
            spatial_scale=a.ROI_SPATIAL_SCALE or None, sampling_ratio=a.ROI_SAMPLING_RATIO,
            aligned=a.ROI_ALIGNED, spatial_pool=a.SPATIAL_POOL,
            dropout=cfg.MODEL.HEAD.DROPOUT_RATE)
        if cfg.MODEL.WEIGHTS:
            from mvit_tasks.checkpoint.loader import load_weights

            report = load_weights(model, cfg.MODEL.WEIGHTS, source=cfg.MODEL.WEIGHTS_SOURCE,
                                  allow_missing=list(cfg.MODEL.WEIGHTS_ALLOW_MISSING),
                                  allow_unexpected=list(cfg.MODEL.WEIGHTS_ALLOW_UNEXPECTED),
                                  allow_unsafe=cfg.MODEL.WEIGHTS_UNSAFE_PICKLE)
            report.log(cfg.MODEL.WEIGHTS, logger)
        return model

    # ------------------------------------------------------------------------------- data
    def media(self, split: str) -> Dict[str, Any]:
        """``{video_id: video path | [frame paths]}`` of ``split``."""
        a = self.cfg.AVA
        if a.FRAME_LIST_DIR:
            from .converters.ava import read_frame_list

            out: Dict[str, Any] = {}
            for name in (a.TRAIN_LISTS if split == "train" else a.TEST_LISTS):
                for vid, files in read_frame_list(self.path(name, a.FRAME_LIST_DIR)).items():
                    out[vid] = [self.path(f, a.FRAME_DIR) for f in files]
            return out
        folder = self.path(a.VIDEO_DIR)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"AVA.VIDEO_DIR {folder} is not a folder")
        return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
                if f.lower().endswith(_VIDEO_EXTS)}

    def records(self, split: str) -> List[Any]:
        """Keyframe records of ``split``: GT boxes (+ detected) in training, detected boxes
        above ``AVA.DETECTION_SCORE_THRESH`` otherwise; bad rows stop with file:line."""
        from .converters.ava import group_keyframes, merge_detected_boxes, read_ava_boxes

        a = self.cfg.AVA
        valid = set(range(1, self.cfg.MODEL.NUM_CLASSES + 1))
        thresh, strict = a.DETECTION_SCORE_THRESH, a.STRICT_INPUT
        if split == "train":
            recs = group_keyframes(*[read_ava_boxes(self._ann(f), valid, strict=strict)
                                     for f in a.TRAIN_GT_BOX_LISTS])
            if a.TRAIN_USE_DETECTED_BOXES:
                det = group_keyframes(*[read_ava_boxes(self._ann(f), valid, True, thresh,
                                                       strict=strict)
                                        for f in a.TRAIN_PREDICT_BOX_LISTS])
                recs = merge_detected_boxes(recs, det, a.DETECTED_BOX_IOU,
                                            a.TRAIN_INCLUDE_NEGATIVES)
        else:
            recs = group_keyframes(*[read_ava_boxes(self._ann(f), valid, True, thresh,
                                                    strict=strict)
                                     for f in a.TEST_PREDICT_BOX_LISTS])
        return [r for r in recs.values() if len(r.boxes)]

    def build_dataset(self, split: str) -> torch.utils.data.Dataset:
        from .dataset import AvaKeyframeDataset

        cfg, a = self.cfg, self.cfg.AVA
        records = self.records(split)
        logger.info("AVA %s: %d keyframes, %d boxes", split, len(records),
                    sum(len(r.boxes) for r in records))
        media = self.media(split)
        check_media(records, media, split, cfg.TRAIN.MAX_FAILED_FRACTION, a.FPS,
                    a.SEGMENT_START_SEC)
        return AvaKeyframeDataset(
            records, media, "train" if split == "train" else "test",
            num_frames=cfg.DATA.NUM_FRAMES, sampling_rate=cfg.DATA.SAMPLING_RATE,
            num_classes=cfg.MODEL.NUM_CLASSES, fps=a.FPS, start_sec=a.SEGMENT_START_SEC,
            train_jitter_scales=tuple(a.TRAIN_JITTER_SCALES),
            train_crop_size=cfg.DATA.TRAIN_CROP_SIZE,
            test_short_side=a.TEST_SHORT_SIDE or cfg.DATA.TEST_CROP_SIZE, flip=a.FLIP,
            mean=tuple(cfg.DATA.MEAN), std=tuple(cfg.DATA.STD), seed=cfg.SEED,
            decode_threads=None if a.DECODE_THREADS == "NONE" else a.DECODE_THREADS)

    def collate_fn(self) -> Callable[[List[Any]], Dict[str, Any]]:
        from .collate import ava_collate

        return ava_collate

    # ------------------------------------------------------------------------ evaluation
    def build_evaluator(self, split: str) -> DatasetEvaluator:
        from .evaluation.evaluator import AvaEvaluator

        a = self.cfg.AVA
        return AvaEvaluator(
            groundtruth=self._ann(a.GROUNDTRUTH_FILE), labelmap=self._ann(a.LABEL_MAP_FILE),
            exclusions=self._ann(a.EXCLUSION_FILE) if a.EXCLUSION_FILE else None,
            task_name=self.name or "ava", protocol=a.EVAL_PROTOCOL,
            class_ids=list(range(1, self.cfg.MODEL.NUM_CLASSES + 1)), strict=a.STRICT_INPUT)


def check_media(records: List[Any], media: Dict[str, Any], split: str, max_failed: float,
                fps: float, start_sec: float) -> None:
    """Before any sample is read: count the keyframes whose video (or, with frame lists, whose
    keyframe's frame file) is missing. More than ``max_failed`` of them stops the run with the
    count and examples (``TRAIN.MAX_FAILED_FRACTION``); fewer are a WARNING, and each one is
    skipped and counted when it is read."""
    from .converters.ava import keyframe_frame_index

    missing: List[str] = []
    for r in records:
        m = media.get(r.video_id)
        if m is None:
            missing.append(f"{r.video_id},{r.timestamp}: no video or frame list entry "
                           f"({r.source})")
        elif isinstance(m, list):
            k = min(max(keyframe_frame_index(r.timestamp, fps, start_sec), 0), len(m) - 1)
            if not os.path.isfile(m[k]):
                missing.append(f"{r.video_id},{r.timestamp}: frame file {m[k]} not found")
    if not missing:
        return
    share = len(missing) / max(len(records), 1)
    msg = (f"AVA {split}: {len(missing)} of {len(records)} keyframes have no readable media "
           f"({100 * share:.1f}%); first ones:\n  " + "\n  ".join(missing[:10]))
    if share > max_failed:
        from mvit_tasks.engine.trainer import TooManyFailuresError

        raise TooManyFailuresError(f"{msg}\n(more than TRAIN.MAX_FAILED_FRACTION={max_failed}"
                                   "; nothing was trained or evaluated)")
    logger.warning("%s", msg)
