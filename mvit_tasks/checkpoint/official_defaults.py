"""Upstream default values of the official config systems (only the keys the importer reads).

Sources are cited next to each table; values are facts from those files, not code."""
from __future__ import annotations

from typing import Any, Dict

SLOWFAST = "slowfast"
MVIT = "mvit"

# --------------------------------------------------------------------------------------------
# Upstream defaults (only the sections / keys the importer reads or validates).
# --------------------------------------------------------------------------------------------
# facebookresearch/SlowFast slowfast/config/defaults.py (MVIT.*, MVIT.REV.*, MODEL.*, DATA.*,
# TRAIN.*, TEST.*, DETECTION.*, AVA.*), as of the index copy at commit 48d7a249 (2024+ layout
# with LAYER_SCALE_INIT_VALUE, USE_MEAN_POOLING and MVIT.REV). Note PATCH_PADDING's odd default,
# and AVA.DETECTION_SCORE_THRESH 0.9 (the AVA configs set 0.8). SlowFast has no AVA frame-rate
# key: slowfast/datasets/ava_helper.py fixes FPS = 30 and the valid frames 902..1798 (900 s on).
_SLOWFAST_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "MVIT": {
        "MODE": "conv", "POOL_FIRST": False, "CLS_EMBED_ON": True,
        "PATCH_KERNEL": [3, 7, 7], "PATCH_STRIDE": [2, 4, 4], "PATCH_PADDING": [2, 4, 4],
        "PATCH_2D": False, "EMBED_DIM": 96, "NUM_HEADS": 1, "MLP_RATIO": 4.0, "QKV_BIAS": True,
        "DROPPATH_RATE": 0.1, "LAYER_SCALE_INIT_VALUE": 0.0, "DEPTH": 16, "NORM": "layernorm",
        "DIM_MUL": [], "HEAD_MUL": [], "POOL_KV_STRIDE": [], "POOL_KV_STRIDE_ADAPTIVE": None,
        "POOL_Q_STRIDE": [], "POOL_KVQ_KERNEL": None, "ZERO_DECAY_POS_CLS": True,
        "NORM_STEM": False, "SEP_POS_EMBED": False, "DROPOUT_RATE": 0.0, "USE_ABS_POS": True,
        "REL_POS_SPATIAL": False, "REL_POS_TEMPORAL": False, "REL_POS_ZERO_INIT": False,
        "RESIDUAL_POOLING": False, "DIM_MUL_IN_ATT": False, "SEPARATE_QKV": False,
        "HEAD_INIT_SCALE": 1.0, "USE_MEAN_POOLING": False, "USE_FIXED_SINCOS_POS": False,
    },
    "MVIT.REV": {
        "ENABLE": False, "RESPATH_FUSE": "concat", "BUFFER_LAYERS": [], "RES_PATH": "conv",
        "PRE_Q_FUSION": "avg",
    },
    "MODEL": {
        "ARCH": "slowfast", "MODEL_NAME": "SlowFast", "NUM_CLASSES": 400, "DROPOUT_RATE": 0.5,
        "HEAD_ACT": "softmax", "ACT_CHECKPOINT": False,
    },
    "DATA": {
        "NUM_FRAMES": 8, "SAMPLING_RATE": 8, "MEAN": [0.45, 0.45, 0.45],
        "STD": [0.225, 0.225, 0.225], "INPUT_CHANNEL_NUM": [3, 3], "TRAIN_CROP_SIZE": 224,
        "TEST_CROP_SIZE": 256, "REVERSE_INPUT_CHANNEL": False, "IN_VAL_CROP_RATIO": 0.875,
        "TRAIN_JITTER_SCALES": [256, 320],
    },
    "TRAIN": {"DATASET": "kinetics", "CHECKPOINT_FILE_PATH": ""},
    "TEST": {
        "DATASET": "kinetics", "CHECKPOINT_FILE_PATH": "", "NUM_ENSEMBLE_VIEWS": 10,
        "NUM_SPATIAL_CROPS": 3,
    },
    "DETECTION": {
        "ENABLE": False, "ALIGNED": True, "SPATIAL_SCALE_FACTOR": 16, "ROI_XFORM_RESOLUTION": 7,
    },
    # AVA.* keys with a counterpart in our ``ava`` task (paths default to FAIR-internal
    # folders upstream and are only taken when a YAML sets them).
    "AVA": {
        "FRAME_DIR": "/mnt/fair-flash3-east/ava_trainval_frames.img/",
        "FRAME_LIST_DIR": "/mnt/vol/gfsai-flash3-east/ai-group/users/haoqifan/ava/frame_list/",
        "ANNOTATION_DIR": "/mnt/vol/gfsai-flash3-east/ai-group/users/haoqifan/ava/frame_list/",
        "TRAIN_LISTS": ["train.csv"], "TEST_LISTS": ["val.csv"],
        "TRAIN_GT_BOX_LISTS": ["ava_train_v2.2.csv"], "TRAIN_PREDICT_BOX_LISTS": [],
        "TEST_PREDICT_BOX_LISTS": ["ava_val_predicted_boxes.csv"],
        "DETECTION_SCORE_THRESH": 0.9, "BGR": False, "TRAIN_USE_COLOR_AUGMENTATION": False,
        "TEST_FORCE_FLIP": False,
        "LABEL_MAP_FILE": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
        "EXCLUSION_FILE": "ava_val_excluded_timestamps_v2.2.csv",
        "GROUNDTRUTH_FILE": "ava_val_v2.2.csv",
    },
}

# facebookresearch/mvit mvit/config/defaults.py @ 3fd4d097 (image classification).
_MVIT_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "MVIT": {
        "MODE": "conv", "POOL_FIRST": False, "CLS_EMBED_ON": False, "PATCH_KERNEL": [7, 7],
        "PATCH_STRIDE": [4, 4], "PATCH_PADDING": [3, 3], "EMBED_DIM": 96, "NUM_HEADS": 1,
        "MLP_RATIO": 4.0, "QKV_BIAS": True, "DROPPATH_RATE": 0.1, "DEPTH": 16, "DIM_MUL": [],
        "HEAD_MUL": [], "POOL_KV_STRIDE": None, "POOL_KV_STRIDE_ADAPTIVE": None,
        "POOL_Q_STRIDE": [], "POOL_KVQ_KERNEL": [3, 3], "ZERO_DECAY_POS_CLS": False,
        "USE_ABS_POS": False, "REL_POS_SPATIAL": True, "REL_POS_ZERO_INIT": False,
        "RESIDUAL_POOLING": True, "DIM_MUL_IN_ATT": True,
    },
    "MODEL": {
        "MODEL_NAME": "MViT", "NUM_CLASSES": 1000, "DROPOUT_RATE": 0.0, "HEAD_ACT": "softmax",
        "ACT_CHECKPOINT": False,
    },
    "DATA": {
        "MEAN": [0.485, 0.456, 0.406], "STD": [0.229, 0.224, 0.225], "TRAIN_CROP_SIZE": 224,
        "TEST_CROP_SIZE": 224, "VAL_CROP_RATIO": 0.875,
    },
    "TRAIN": {"DATASET": "imagenet", "CHECKPOINT_FILE_PATH": ""},
    "TEST": {
        "DATASET": "imagenet", "CHECKPOINT_FILE_PATH": "", "CHECKPOINT_SQUEEZE_TEMPORAL": True,
    },
}

OFFICIAL_DEFAULTS: Dict[str, Dict[str, Dict[str, Any]]] = {
    SLOWFAST: _SLOWFAST_DEFAULTS,
    MVIT: _MVIT_DEFAULTS,
}

# Keys / sections that exist in only one of the two repositories (used by detect_flavor).
_SLOWFAST_ONLY = {
    ("MVIT", k) for k in set(_SLOWFAST_DEFAULTS["MVIT"]) - set(_MVIT_DEFAULTS["MVIT"])
} | {("MVIT", "REV"), ("MODEL", "ARCH"), ("DATA", "NUM_FRAMES"), ("DATA", "SAMPLING_RATE"),
     ("DATA", "INPUT_CHANNEL_NUM"), ("DATA", "DECODING_BACKEND"), ("DATA", "USE_OFFSET_SAMPLING"),
     ("DATA", "TRAIN_JITTER_SCALES"), ("TEST", "NUM_ENSEMBLE_VIEWS"), ("TEST", "NUM_SPATIAL_CROPS")}
_SLOWFAST_ONLY_SECTIONS = {"DETECTION", "AVA", "MASK", "BN", "CONTRASTIVE", "MULTIGRID", "RESNET",
                           "X3D", "NONLOCAL", "SLOWFAST", "TENSORBOARD", "DEMO", "VIS_MASK"}
_MVIT_ONLY = {("TEST", "CHECKPOINT_SQUEEZE_TEMPORAL"), ("DATA", "VAL_CROP_RATIO")}


# --------------------------------------------------------------------------------------------
# Flavor detection
# --------------------------------------------------------------------------------------------
