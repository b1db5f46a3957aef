"""Config keys of the classification tasks, under ``CLS.*`` (the task's own namespace).

PySlowFast users: ``DATA.PATH_TO_DATA_DIR`` -> ``CLS.DATA_DIR``, ``DATA.PATH_PREFIX`` ->
``CLS.PATH_PREFIX``, ``DATA.TRAIN_JITTER_SCALES`` -> ``CLS.TRAIN_JITTER_SCALES``,
``TEST.NUM_ENSEMBLE_VIEWS`` / ``TEST.NUM_SPATIAL_CROPS`` -> ``CLS.NUM_ENSEMBLE_VIEWS`` /
``CLS.NUM_SPATIAL_CROPS``, ``AUG.*`` -> ``CLS.AUG.*``, ``MIXUP.*`` -> ``CLS.MIXUP.*``.
The frame count, sampling rate, crop sizes and mean/std stay in the core ``DATA.*``.
"""
from __future__ import annotations

from mvit_tasks.config import CfgNode


def add_classification_config(cfg: CfgNode) -> None:
    """Add ``CLS.*`` with Kinetics-style defaults (the presets change a few of them)."""
    c = cfg.CLS = CfgNode()
    c.DATA_DIR = ""  # folder with the manifests and the class list
    c.TRAIN_MANIFEST = "train.csv"  # canonical manifests (mvit_tasks.data.manifest)
    c.VAL_MANIFEST = "val.csv"
    c.TEST_MANIFEST = "test.csv"
    c.CLASS_LIST = "labels.txt"  # one class per line; "" = integer labels, MODEL.NUM_CLASSES
    c.PATH_PREFIX = ""  # media paths are relative to this ("" = the manifest's folder)
    c.SAMPLING = "random"  # random (Kinetics) | segment (SSv2) | image (ImageNet)
    c.TRAIN_JITTER_SCALES = [256, 320]  # short side range before the random crop
    c.TEST_SHORT_SIDE = 0  # 0 = DATA.TEST_CROP_SIZE (SlowFast's TEST_CROP_SIZE resize)
    c.RANDOM_RESIZED_CROP = False  # RandomResizedCrop instead of short-side jitter + crop
    c.RRC_SCALE = [0.08, 1.0]
    c.RRC_RATIO = [0.75, 1.3333333]
    c.FLIP = True  # random horizontal flip in training
    c.FLIP_PAIRS_FILE = ""  # JSON {label: swapped label} (SSv2 left/right); "" = no swap
    c.NUM_ENSEMBLE_VIEWS = 1  # temporal clips per test video
    c.NUM_SPATIAL_CROPS = 1  # 1 = centre, 3 = both ends + centre of the long side
    c.ENSEMBLE = "sum"  # sum (of softmax) | max | logits
    c.DECODE_THREADS = "AUTO"  # FFmpeg threading: AUTO | FRAME | SLICE | NONE
    c.CACHE_DECODED = False  # keep decoded clips in memory (small datasets, NUM_WORKERS 0)
    c.DEMO_DATA = False  # generate the Moving Shapes demo set into DATA_DIR if missing
    c.DEMO_TRAIN_PER_CLASS = 100
    c.DEMO_VAL_PER_CLASS = 30

    c.AUG = CfgNode()
    c.AUG.NUM_SAMPLE = 1  # repeated augmentation: augmented copies of each decoded clip
    c.AUG.RAND_AUGMENT = ""  # e.g. "rand-m7-n4-mstd0.5-inc1" (SlowFast MViT); "" = off
    c.AUG.RE_PROB = 0.0  # random erasing probability

    c.MIXUP = CfgNode()
    c.MIXUP.ENABLE = False
    c.MIXUP.ALPHA = 0.8
    c.MIXUP.CUTMIX_ALPHA = 1.0
    c.MIXUP.PROB = 1.0
    c.MIXUP.SWITCH_PROB = 0.5
    c.MIXUP.LABEL_SMOOTH_VALUE = 0.1  # also used without mixup when > 0
