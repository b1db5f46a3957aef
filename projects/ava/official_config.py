"""SlowFast ``DETECTION.ENABLE`` (AVA) configs -> the keys of our ``ava`` task.

Semantics followed (read from PySlowFast, not copied): ``slowfast/models/video_model_builder.py::
MViT`` with ``DETECTION.ENABLE`` normalises the last tokens, drops the cls token and reshapes them
to ``B x C x T x H x W``; ``head_helper.py::ResNetRoIHead`` averages over T, applies
``RoIAlign(DETECTION.ROI_XFORM_RESOLUTION, spatial_scale=1 / DETECTION.SPATIAL_SCALE_FACTOR,
sampling_ratio=0, aligned=DETECTION.ALIGNED)`` to boxes in input pixels, max-pools the RoI grid,
then dropout (``MODEL.DROPOUT_RATE``), ``projection`` and ``MODEL.HEAD_ACT`` at test time.
``datasets/ava_helper.py`` fixes 30 fps from second 900 and reads the ``AVA.*`` list / file keys
below; ``ava_dataset.py`` jitters the short side in ``DATA.TRAIN_JITTER_SCALES``.

Used through :meth:`mvit_tasks.projects.ava.task.AvaTask.from_official_config` (the task hook that
:func:`~mvit_tasks.checkpoint.official_config.arch_from_official` asks); the result becomes
``info["task_config"]``, written by ``write_native_config``:

==========================================  ==============================================
SlowFast                                    ours (``tools/train_net.py --task ava``)
==========================================  ==============================================
``1 / DETECTION.SPATIAL_SCALE_FACTOR``      ``AVA.ROI_SPATIAL_SCALE`` (feature px per input px)
``DETECTION.ROI_XFORM_RESOLUTION``          ``AVA.ROI_RESOLUTION``
``DETECTION.ALIGNED``                       ``AVA.ROI_ALIGNED``
sampling ratio 0, max pooling               ``AVA.ROI_SAMPLING_RATIO 0``, ``AVA.SPATIAL_POOL max``
``MODEL.HEAD_ACT`` (must be ``sigmoid``)    the detector's per-class sigmoid
``DATA.TRAIN_JITTER_SCALES``                ``AVA.TRAIN_JITTER_SCALES``
``FPS = 30`` (ava_helper)                   ``AVA.FPS 30``, ``AVA.SEGMENT_START_SEC 900``
``AVA.<same name>`` (lists, files, thresh)  ``AVA.<same name>``
``AVA.{ANNOTATION,FRAME,FRAME_LIST}_DIR``   the same keys, only when the YAML sets them
==========================================  ==============================================

Everything else under ``AVA.*`` that differs from SlowFast's default is reported in the
warnings (e.g. ``TRAIN_PREDICT_BOX_LISTS``: SlowFast trains on the labels stored in those
files, our task labels detector boxes by IoU with the ground truth).
"""
from __future__ import annotations

from typing import Any, Dict, List

from mvit_tasks.checkpoint.official_config import OfficialView as _View
from mvit_tasks.checkpoint.official_config import as_bool as _as_bool
from mvit_tasks.checkpoint.official_config import as_float as _as_float
from mvit_tasks.checkpoint.official_config import as_int as _as_int
# SlowFast AVA.* keys read with the same name and meaning by our ``ava`` task.
_SAME_NAME = ("TRAIN_LISTS", "TEST_LISTS", "TRAIN_GT_BOX_LISTS", "TEST_PREDICT_BOX_LISTS",
              "GROUNDTRUTH_FILE", "LABEL_MAP_FILE", "EXCLUSION_FILE")
# Folders: SlowFast's defaults are FAIR-internal paths, so they are taken only when given.
_FOLDERS = ("ANNOTATION_DIR", "FRAME_DIR", "FRAME_LIST_DIR")
_WHY = {
    "TRAIN_PREDICT_BOX_LISTS": "SlowFast trains on the labels stored in these files; our task "
                               "labels detector boxes by IoU with the ground truth (set "
                               "AVA.TRAIN_USE_DETECTED_BOXES / AVA.TRAIN_PREDICT_BOX_LISTS)",
    "BGR": "the ava task reads RGB frames",
    "TRAIN_USE_COLOR_AUGMENTATION": "the ava task has no colour (PCA) augmentation",
    "TEST_FORCE_FLIP": "the ava task has no flipped test view",
}


def _strings(view: _View, key: str) -> List[str]:
    value = view("AVA", key)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise view.error("AVA", key, "must be a list of file names")
    return list(value)


def detection_task_config(view: _View, warnings: List[str]) -> Dict[str, Dict[str, Any]]:
    """``{"AVA": {...}}`` for a SlowFast ``DETECTION.ENABLE`` config (see the module table).

    Args:
        view: the official config (YAML values over SlowFast's defaults).
        warnings: appended with the ``AVA.*`` settings that are not carried over.

    Raises:
        ValueError: ``MODEL.HEAD_ACT`` other than sigmoid, or malformed DETECTION values.
    """
    D, source = "DETECTION", view.source
    act = view("MODEL", "HEAD_ACT")
    if act != "sigmoid":
        given = view.given("MODEL", "HEAD_ACT")
        omitted = "" if given else "(SlowFast's default, not in the YAML) "
        raise view.error("MODEL", "HEAD_ACT", f"{omitted}is not supported for detection: our AVA "
                         "head scores each class with a sigmoid (BCE), as SlowFast's AVA configs "
                         "do (MODEL.HEAD_ACT: sigmoid)")
    factor = _as_float(view, D, "SPATIAL_SCALE_FACTOR")
    if not factor > 0:
        raise view.error(D, "SPATIAL_SCALE_FACTOR", "must be > 0 (input pixels per feature pixel)")
    resolution = _as_int(view, D, "ROI_XFORM_RESOLUTION")
    jitter = view("DATA", "TRAIN_JITTER_SCALES")
    if not isinstance(jitter, (list, tuple)) or len(jitter) != 2 or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in jitter):
        raise view.error("DATA", "TRAIN_JITTER_SCALES", "must be a list of 2 integers")
    ava: Dict[str, Any] = {
        "ROI_SPATIAL_SCALE": 1.0 / factor,
        "ROI_RESOLUTION": resolution,
        "ROI_ALIGNED": _as_bool(view, D, "ALIGNED"),
        "ROI_SAMPLING_RATIO": 0,
        "SPATIAL_POOL": "max",
        "FPS": 30.0,
        "SEGMENT_START_SEC": 900.0,
        "TRAIN_JITTER_SCALES": [int(v) for v in jitter],
        "DETECTION_SCORE_THRESH": _as_float(view, "AVA", "DETECTION_SCORE_THRESH"),
    }
    for key in _SAME_NAME:
        ava[key] = _strings(view, key) if key.endswith("LISTS") else str(view("AVA", key))
    for key in _FOLDERS:
        if view.given("AVA", key):
            ava[key] = str(view("AVA", key))
    defaults = view.defaults["AVA"]
    left = sorted(k for k in view.section("AVA") if k not in ava
                  and (k not in defaults or view("AVA", k) != defaults[k]))
    for key in left:
        why = _WHY.get(key, "no counterpart in the ava task")
        warnings.append(f"{source}: AVA.{key}={view('AVA', key)!r} is not carried over: {why}")
    return {"AVA": ava}
