"""Detections of a coco-task model (MViTv2 Mask R-CNN / Cascade) on any RGB image or frame.

Inference is the task's own (:class:`~mvit_tasks.projects.coco_detection.model.CocoDetector` in eval
mode): uint8 pixels in, resized as detectron2's ``DefaultPredictor``, detections back in the
pixels of the given image. Weights in every format the task reads (``native`` checkpoints of
``tools/train_net.py``, detectron2 ``model_final.pkl`` / converted ``.pth``)::

    from mvit_tasks.projects.coco_detection.predictor import CocoPredictor
    p = CocoPredictor.from_config("projects/coco_detection/configs/mask_rcnn_mvitv2_t_3x.yaml",
                                  weights="model_final.pkl")
    det = p(rgb)                 # rgb: H x W x 3 uint8; det["boxes"] (D, 4) xyxy pixels, ...
    p.class_names[det["labels"][0]]
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from mvit_tasks.config import CfgNode

logger = logging.getLogger(__name__)
COCO_NUM_CLASSES = 81  # 80 categories + background
COCO_PERSON_LABEL = 1  # contiguous label of COCO category 1 ("person"), the first category


class CocoPredictor:
    """Runs a :class:`CocoDetector` on one image at a time.

    Args:
        model: the detector (moved to ``device``, put in eval mode).
        class_names: names by label, index 0 = background (K entries).
        device: where the model runs.
    """

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str],
                 device: Optional[torch.device] = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names)

    @classmethod
    def from_config(cls, config_file: str, weights: str = "", opts: Sequence[str] = (),
                    device: Optional[torch.device] = None) -> "CocoPredictor":
        """The detector of a ``coco`` task config with ``weights`` (default ``MODEL.WEIGHTS``,
        else ``OUTPUT_DIR/checkpoints/last.pth``); no dataset is read or generated (class
        names come from the val json when it exists, see :func:`class_names_of`)."""
        cfg = load_coco_config(config_file, opts)
        path = weights or cfg.MODEL.WEIGHTS or os.path.join(cfg.OUTPUT_DIR, "checkpoints",
                                                             "last.pth")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"detector checkpoint {path} not found (train first, or "
                                    "pass the weights)")
        cfg.MODEL.WEIGHTS = path
        cfg.COCO.BACKBONE_WEIGHTS = ""  # the checkpoint holds the whole detector
        from .task import build_detector

        return cls(build_detector(cfg), class_names_of(cfg), device)

    @torch.no_grad()
    def __call__(self, image: Union[np.ndarray, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Detections of one ``H x W x 3`` uint8 RGB image, on the CPU: ``boxes`` (D, 4) xyxy
        pixels of the image, ``labels`` (D,) in ``1..K-1``, ``scores`` (D,) and, for Mask
        R-CNN, ``masks`` (D, H, W) bool; sorted by score, best first."""
        rgb = torch.as_tensor(np.array(image))  # a copy: frames may be read-only views
        if rgb.dtype != torch.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"expected an H x W x 3 uint8 image, got {tuple(rgb.shape)} "
                             f"{rgb.dtype}")
        det = self.model({"images": [rgb.permute(2, 0, 1).to(self.device)]})[0]
        det = {k: v.cpu() for k, v in det.items()}
        if "masks" in det:
            det["masks"] = det["masks"][:, 0] > 0.5 if det["masks"].dtype != torch.bool \
                else det["masks"][:, 0]
        order = torch.argsort(det["scores"], descending=True)
        return {k: v[order] for k, v in det.items()}

    def name(self, label: int) -> str:
        """The class name of ``label`` (``class <label>`` when out of range)."""
        return self.class_names[label] if 0 <= label < len(self.class_names) else \
            f"class {label}"

    def label_of(self, name: str) -> Optional[int]:
        """The label named ``name``, or ``None``."""
        return self.class_names.index(name) if name in self.class_names else None


def load_coco_config(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """A ``coco`` task config (engine + ``COCO.*`` keys), not frozen."""
    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config

    from .task import CocoTask

    return load_config(config_file, list(opts),
                       extra_config_fns=[add_engine_config, CocoTask.add_config], freeze=False)


def class_names_of(cfg: CfgNode) -> List[str]:
    """Names by label (index 0 = ``__background__``): the categories of the config's val json
    if it is readable and matches ``MODEL.NUM_CLASSES``, else COCO's 80 names for an 81-class
    model (e.g. a converted detectron2 checkpoint), else ``class <i>``."""
    from .task import CocoTask

    task = CocoTask.__new__(CocoTask)  # names only: no demo-data generation
    task.cfg = cfg
    try:
        names = task.class_names("val")
    except (OSError, ValueError, KeyError):
        names = []
    k = cfg.MODEL.NUM_CLASSES
    if len(names) != k and k == COCO_NUM_CLASSES:
        names = _official_coco_names()
    if len(names) != k:
        names = ["__background__"] + [f"class {i}" for i in range(1, k)]
    return names


def _official_coco_names() -> List[str]:
    """COCO's 80 names (:mod:`mvit_tasks.data.classnames` ``coco80``, contiguous labels in
    category-id order, as detectron2), background first; ``[]`` without the shipped lists."""
    try:
        from mvit_tasks.data.classnames import load_class_names
    except ImportError:
        return []
    return ["__background__", *load_class_names("coco80")]
