"""Video / image classification tasks: ``classification`` and the presets ``kinetics``,
``ssv2`` and ``imagenet``.

One task class does all of it; the presets only change defaults of ``CLS.*`` and ``DATA.*``
(the sampling scheme, flipping, class count), following PySlowFast's Kinetics / SSv2 datasets
and the MViT ImageNet recipe:

- ``kinetics``: random ``T x tau`` clip per video in training, ``NUM_ENSEMBLE_VIEWS`` uniform
  clips x ``NUM_SPATIAL_CROPS`` crops at test time, ensembled per video; 400 classes.
- ``ssv2``: segment-based sampling (one frame per segment, random in training, middle at test),
  flipping only with the left/right label swap (``CLS.FLIP_PAIRS_FILE``); 174 classes.
- ``imagenet``: the same backbone in 2-D mode on images; 1000 classes.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional

import torch

from mvit_tasks.config import CfgNode, arch_from_cfg
from mvit_tasks.data.manifest import ClipRecord, read_class_list, read_manifest
from mvit_tasks.data.synthetic import generate_moving_shapes
from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.registry import TASK_REGISTRY
from mvit_tasks.tasks import Task

from .config import add_classification_config
from .model import ClipClassifier

_SPLIT_KEYS = {"train": "TRAIN_MANIFEST", "val": "VAL_MANIFEST", "test": "TEST_MANIFEST"}


@TASK_REGISTRY.register("classification")
class ClassificationTask(Task):
    """Clip / image classification on canonical manifests (``CLS.*`` keys)."""

    default_metric = "top1"

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        add_classification_config(cfg)

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        c = cfg.CLS
        self.prepare_demo_data("CLS", lambda root: generate_moving_shapes(
            root, c.DEMO_TRAIN_PER_CLASS, c.DEMO_VAL_PER_CLASS, num_frames=16, size=36, seed=0))
        self.classes: Optional[List[str]] = None
        if c.CLASS_LIST:
            self.classes = read_class_list(self._path(c.CLASS_LIST))
            if len(self.classes) != cfg.MODEL.NUM_CLASSES:
                raise ValueError(f"{self._path(c.CLASS_LIST)} lists {len(self.classes)} classes "
                                 f"but MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES}")
        self.flip_map: Optional[Dict[int, int]] = None
        if c.FLIP_PAIRS_FILE:
            with open(self._path(c.FLIP_PAIRS_FILE)) as f:
                self.flip_map = {int(k): int(v) for k, v in json.load(f).items()}

    def _path(self, name: str) -> str:
        return name if os.path.isabs(name) else os.path.join(self.cfg.CLS.DATA_DIR, name)

    # ------------------------------------------------------------------------------ model
    def build_model(self) -> ClipClassifier:
        cfg = self.cfg
        arch = arch_from_cfg(cfg, input_from_data=True)
        pool = cfg.MODEL.HEAD.POOL
        if pool == "auto":
            pool = "cls" if arch.cls_embed else "mean"
        model = ClipClassifier.from_arch(arch, cfg.MODEL.NUM_CLASSES,
                                         dropout=cfg.MODEL.HEAD.DROPOUT_RATE, pool=pool)
        model.label_smoothing = 0.0 if cfg.CLS.MIXUP.ENABLE else cfg.CLS.MIXUP.LABEL_SMOOTH_VALUE
        if cfg.MODEL.WEIGHTS:
            from mvit_tasks.checkpoint.loader import load_weights

            load_weights(model, cfg.MODEL.WEIGHTS, source=cfg.MODEL.WEIGHTS_SOURCE,
                         allow_missing=list(cfg.MODEL.WEIGHTS_ALLOW_MISSING),
                         allow_unexpected=list(cfg.MODEL.WEIGHTS_ALLOW_UNEXPECTED),
                         allow_unsafe=cfg.MODEL.WEIGHTS_UNSAFE_PICKLE).log(cfg.MODEL.WEIGHTS)
        return model

    # ------------------------------------------------------------------------------- data
    def records(self, split: str) -> List[ClipRecord]:
        """The manifest rows of ``split``; rows with unknown labels stop with file:line."""
        c = self.cfg.CLS
        path = self._path(getattr(c, _SPLIT_KEYS[split]))
        return read_manifest(path, classes=self.classes, num_classes=self.cfg.MODEL.NUM_CLASSES,
                             root=c.PATH_PREFIX or None, allow_unlabelled=split == "test")

    def build_dataset(self, split: str) -> torch.utils.data.Dataset:
        from .dataset import ClipClassificationDataset

        cfg, c = self.cfg, self.cfg.CLS
        train = split == "train"
        dataset = ClipClassificationDataset(
            self.records(split), mode="train" if train else "test",
            num_frames=cfg.DATA.NUM_FRAMES, sampling_rate=cfg.DATA.SAMPLING_RATE,
            sampling=c.SAMPLING,
            num_ensemble_views=1 if train else c.NUM_ENSEMBLE_VIEWS,
            num_spatial_crops=1 if train else c.NUM_SPATIAL_CROPS,
            train_crop_size=cfg.DATA.TRAIN_CROP_SIZE, test_crop_size=cfg.DATA.TEST_CROP_SIZE,
            train_jitter_scales=tuple(c.TRAIN_JITTER_SCALES),
            test_short_side=c.TEST_SHORT_SIDE or None,
            random_resized_crop=c.RANDOM_RESIZED_CROP, rrc_scale=tuple(c.RRC_SCALE),
            rrc_ratio=tuple(c.RRC_RATIO), flip=c.FLIP, flip_label_map=self.flip_map,
            rand_augment=c.AUG.RAND_AUGMENT or None, random_erasing_prob=c.AUG.RE_PROB,
            mean=tuple(cfg.DATA.MEAN), std=tuple(cfg.DATA.STD),
            num_repeated_samples=c.AUG.NUM_SAMPLE if train else 1, seed=cfg.SEED,
            decode_threads=None if c.DECODE_THREADS == "NONE" else c.DECODE_THREADS,
        )
        if c.CACHE_DECODED and hasattr(dataset, "enable_cache"):
            dataset.enable_cache()
        return dataset

    def batch_transform(self, train: bool) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
        m = self.cfg.CLS.MIXUP
        if not (train and m.ENABLE):
            return None
        from mvit_tasks.engine.mixup import MixUp

        mixup = MixUp(mixup_alpha=m.ALPHA, cutmix_alpha=m.CUTMIX_ALPHA, prob=m.PROB,
                      switch_prob=m.SWITCH_PROB, label_smoothing=m.LABEL_SMOOTH_VALUE,
                      num_classes=self.cfg.MODEL.NUM_CLASSES)

        def apply(batch: Dict[str, Any]) -> Dict[str, Any]:
            video, target = mixup(batch["video"], batch["label"])
            return {**batch, "video": video, "soft_target": target}

        return apply

    # ------------------------------------------------------------------------ evaluation
    def build_evaluator(self, split: str) -> DatasetEvaluator:
        from .evaluator import ClassificationEvaluator

        c = self.cfg.CLS
        return ClassificationEvaluator(
            task_name=self.name or "classification", class_names=self.classes,
            num_classes=self.cfg.MODEL.NUM_CLASSES, ensemble=c.ENSEMBLE,
            expected_views=c.NUM_ENSEMBLE_VIEWS * c.NUM_SPATIAL_CROPS)


def _preset(name: str, doc: str, **defaults: Any) -> type:
    """A registered subclass whose ``add_config`` changes some defaults (dotted keys)."""

    def add_config(cls: type, cfg: CfgNode) -> None:
        add_classification_config(cfg)
        for key, value in defaults.items():
            node = cfg
            *parents, leaf = key.split(".")
            for p in parents:
                node = getattr(node, p)
            setattr(node, leaf, value)

    sub = type(f"{name.capitalize()}Task", (ClassificationTask,),
               {"__doc__": doc, "add_config": classmethod(add_config)})
    return TASK_REGISTRY.register(name)(sub)


KineticsTask = _preset(
    "kinetics", "Kinetics-400/600/700: random clips, multi-view test (SlowFast kinetics.py).",
    **{"CLS.SAMPLING": "random", "CLS.NUM_ENSEMBLE_VIEWS": 5, "CLS.NUM_SPATIAL_CROPS": 1,
       "MODEL.NUM_CLASSES": 400})
Ssv2Task = _preset(
    "ssv2", "Something-Something v2: segment sampling, flip only with left/right swap.",
    **{"CLS.SAMPLING": "segment", "CLS.FLIP": False, "CLS.NUM_ENSEMBLE_VIEWS": 1,
       "CLS.NUM_SPATIAL_CROPS": 3, "DATA.SAMPLING_RATE": 1, "MODEL.NUM_CLASSES": 174})
ImagenetTask = _preset(
    "imagenet", "ImageNet-style image classification with the 2-D backbone.",
    **{"CLS.SAMPLING": "image", "CLS.RANDOM_RESIZED_CROP": True, "DATA.NUM_FRAMES": 1,
       "DATA.MEAN": [0.485, 0.456, 0.406], "DATA.STD": [0.229, 0.224, 0.225],
       "CLS.TEST_SHORT_SIDE": 256, "MODEL.NUM_CLASSES": 1000})
