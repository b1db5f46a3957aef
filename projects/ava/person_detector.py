"""Person boxes for AVA keyframes when no box file is given: a COCO detector, person class only.

AVA's models score actions of given person boxes; PySlowFast's demo finds them with a
detectron2 Faster R-CNN (``DEMO.DETECTRON2_CFG``, kept at ``DEMO.DETECTRON2_THRESH``) and its
test set uses detections kept at ``AVA.DETECTION_SCORE_THRESH`` (0.8). Two detectors, both
from files the user gives (nothing is downloaded):

- :class:`CocoPersonDetector`: the COCO project's own detector (its config + weights, e.g. a
  converted detectron2 MViTv2 Mask R-CNN checkpoint), the label named ``person`` (COCO's
  contiguous label 1 for an 81-class model without names);
- :func:`torchvision_person_detector`: torchvision's Faster / Mask R-CNN builders
  (``fasterrcnn_resnet50_fpn``, ...) with a state dict from a file; COCO category 1.

A detector maps one ``H x W x 3`` uint8 RGB frame to ``(boxes (N, 4) float32 normalised x1,
y1, x2, y2, scores (N,) float32)``, persons scoring >= its threshold, best first.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

Detections = Tuple[np.ndarray, np.ndarray]  # (N, 4) normalised boxes, (N,) scores
PersonDetector = Callable[[np.ndarray], Detections]
TORCHVISION_ARCHS = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2",
                     "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
                     "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")
TORCHVISION_PERSON = 1  # torchvision's COCO detection labels are category ids: person = 1


def select_persons(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                   person_label: int, score_thresh: float, height: int,
                   width: int) -> Detections:
    """Boxes (D, 4) xyxy pixels of the label ``person_label`` scoring >= ``score_thresh``,
    normalised by the frame size and clipped to [0, 1], sorted by score."""
    keep = (labels == person_label) & (scores >= score_thresh)
    b, s = boxes[keep].float(), scores[keep].float()
    order = torch.argsort(s, descending=True)
    b = b[order] / torch.tensor([width, height, width, height], dtype=torch.float32)
    return b.clamp_(0.0, 1.0).numpy().astype(np.float32), s[order].numpy().astype(np.float32)


class CocoPersonDetector:
    """Persons of a :class:`~mvit_tasks.projects.coco_detection.predictor.CocoPredictor`.

    Args:
        predictor: the COCO project's detector.
        score_thresh: lowest person score kept.
        person_label: the person label (default: the class named ``person``, else 1 for an
            81-class COCO model; other models need it).
    """

    def __init__(self, predictor, score_thresh: float = 0.8,
                 person_label: Optional[int] = None) -> None:
        from mvit_tasks.projects.coco_detection.predictor import COCO_NUM_CLASSES, COCO_PERSON_LABEL

        if person_label is None:
            person_label = predictor.label_of("person")
        if person_label is None and len(predictor.class_names) == COCO_NUM_CLASSES:
            person_label = COCO_PERSON_LABEL
        if person_label is None:
            raise ValueError(f"cannot tell the person class of a {len(predictor.class_names)}"
                             "-class detector without a 'person' name: give its label "
                             "(--person-label)")
        self.predictor, self.score_thresh = predictor, score_thresh
        self.person_label = int(person_label)

    @classmethod
    def from_config(cls, config_file: str, weights: str, opts: Sequence[str] = (),
                    score_thresh: float = 0.8, person_label: Optional[int] = None,
                    device: Optional[torch.device] = None) -> "CocoPersonDetector":
        """The COCO task's detector of ``config_file`` with ``weights``."""
        from mvit_tasks.projects.coco_detection.predictor import CocoPredictor

        return cls(CocoPredictor.from_config(config_file, weights, opts, device), score_thresh,
                   person_label)

    def __call__(self, frame: np.ndarray) -> Detections:
        det = self.predictor(frame)
        h, w = frame.shape[:2]
        return select_persons(det["boxes"], det["labels"], det["scores"], self.person_label,
                              self.score_thresh, h, w)


class TorchvisionPersonDetector:
    """Persons of a torchvision detection model (``model([3 x H x W float]) -> [{"boxes",
    "labels", "scores"}]``, labels = COCO category ids)."""

    def __init__(self, model: torch.nn.Module, score_thresh: float = 0.8,
                 person_label: int = TORCHVISION_PERSON,
                 device: Optional[torch.device] = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.score_thresh, self.person_label = score_thresh, int(person_label)

    @torch.no_grad()
    def __call__(self, frame: np.ndarray) -> Detections:
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)
        det = {k: v.cpu() for k, v in self.model([x.to(self.device)])[0].items()}
        h, w = frame.shape[:2]
        return select_persons(det["boxes"], det["labels"], det["scores"], self.person_label,
                              self.score_thresh, h, w)


def torchvision_person_detector(weights: str, arch: str = "fasterrcnn_resnet50_fpn",
                                score_thresh: float = 0.8, person_label: int = TORCHVISION_PERSON,
                                device: Optional[torch.device] = None,
                                allow_unsafe: bool = False) -> TorchvisionPersonDetector:
    """torchvision's ``arch`` (91 COCO labels, no download) with the state dict of
    ``weights`` loaded strictly (e.g. ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``)."""
    import torchvision

    from mvit_tasks.checkpoint.io import extract_state_dict, load_checkpoint_file

    if arch not in TORCHVISION_ARCHS:
        raise ValueError(f"unknown torchvision detector {arch!r} (one of {TORCHVISION_ARCHS})")
    model = getattr(torchvision.models.detection, arch)(
        weights=None, weights_backbone=None, num_classes=91,
        box_score_thresh=min(score_thresh, 0.05))
    sd = extract_state_dict(load_checkpoint_file(weights, allow_unsafe))
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise ValueError(f"{weights}: not a torchvision {arch} state dict "
                         f"({' '.join(first[:2])[:300]})") from None
    return TorchvisionPersonDetector(model, score_thresh, person_label, device)
