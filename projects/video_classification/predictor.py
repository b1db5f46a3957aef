"""Top-k classes of a classification model on any video, image or frame folder.

The test protocol of the classification task, unchanged: the views are those of
:class:`~mvit_tasks.projects.video_classification.dataset.ClipClassificationDataset` in test mode
(PySlowFast's ``TEST.NUM_ENSEMBLE_VIEWS`` clips spread uniformly over the whole video x
``TEST.NUM_SPATIAL_CROPS`` crops; SSv2's segment sampling; one image crop), with the same
sampling functions, transforms and ensembling (``CLS.ENSEMBLE``: mean softmax by default, as
the evaluator). Decoding streams: each clip is read by seeking to its window
(:func:`mvit_tasks.data.video_io.read_frames`), its crops go through the model and only the
logits are kept, so memory is bounded by one clip whatever the video's length.

Python use::

    from mvit_tasks.projects.video_classification.predictor import ClassificationPredictor
    p = ClassificationPredictor.from_config("projects/video_classification/configs/"
                                            "mvitv2_s_16x4_k400.yaml", weights="K400.pyth",
                                            task="kinetics")
    result = p("my_video.mp4")          # Prediction: probs (K,), views
    result.topk(5)                      # [(class index, name or None, score), ...]
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from mvit_tasks.config import CfgNode
from mvit_tasks.data.frames import IMAGE_EXTENSIONS, read_image
from mvit_tasks.data.manifest import ClipRecord
from mvit_tasks.data.video_io import read_frames

from .dataset import ClipClassificationDataset
from .metrics import ViewPredictions, ensemble_views


@dataclasses.dataclass(frozen=True)
class ViewProtocol:
    """How one input becomes views (the ``DATA.*`` / ``CLS.*`` test keys).

    Attributes:
        sampling: ``random`` (Kinetics: ``num_clips`` uniform clips at test time),
            ``segment`` (SSv2) or ``image``.
        num_frames, sampling_rate: T and tau of a clip.
        num_clips, num_crops: temporal views x spatial crops (1 = centre, 3 = both ends +
            centre of the long side).
        crop_size, short_side: test crop and the short side resized to before it.
        mean, std: normalisation of ``[0, 1]`` pixels.
        ensemble: ``sum`` (mean softmax), ``max`` or ``logits`` (softmax of the mean logits).
        decode_threads: FFmpeg threading (``None``: the calling thread).
    """

    sampling: str = "random"
    num_frames: int = 16
    sampling_rate: int = 4
    num_clips: int = 1
    num_crops: int = 1
    crop_size: int = 224
    short_side: Optional[int] = None
    mean: Tuple[float, ...] = (0.45, 0.45, 0.45)
    std: Tuple[float, ...] = (0.225, 0.225, 0.225)
    ensemble: str = "sum"
    decode_threads: Optional[str] = None

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> "ViewProtocol":
        """The views the classification task tests with (``CLS.*``, ``DATA.*``)."""
        c = cfg.CLS
        return cls(sampling=c.SAMPLING, num_frames=cfg.DATA.NUM_FRAMES,
                   sampling_rate=cfg.DATA.SAMPLING_RATE, num_clips=c.NUM_ENSEMBLE_VIEWS,
                   num_crops=c.NUM_SPATIAL_CROPS, crop_size=cfg.DATA.TEST_CROP_SIZE,
                   short_side=c.TEST_SHORT_SIDE or None, mean=tuple(cfg.DATA.MEAN),
                   std=tuple(cfg.DATA.STD), ensemble=c.ENSEMBLE,
                   decode_threads=None if c.DECODE_THREADS == "NONE" else c.DECODE_THREADS)

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def dataset(self, path: str) -> ClipClassificationDataset:
        """The test dataset of one unlabelled input (its sampling and transforms)."""
        return ClipClassificationDataset(
            [ClipRecord(path=path, label=-1, video_id=path)], mode="test",
            num_frames=self.num_frames, sampling_rate=self.sampling_rate,
            sampling=self.sampling, num_ensemble_views=self.num_clips,
            num_spatial_crops=self.num_crops, test_crop_size=self.crop_size,
            test_short_side=self.short_side, mean=self.mean, std=self.std,
            decode_threads=self.decode_threads)


@dataclasses.dataclass
class Prediction:
    """Ensembled scores of one input: ``probs`` (K,) float32, ``num_views`` views averaged,
    ``class_names`` (K names, or ``None``)."""

    path: str
    probs: np.ndarray
    num_views: int
    class_names: Optional[List[str]] = None

    def topk(self, k: int = 5) -> List[Tuple[int, Optional[str], float]]:
        """``[(class index, name or None, score), ...]``, best first."""
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(int(i), self.class_names[i] if self.class_names else None,
                 float(self.probs[i])) for i in order]

    def to_dict(self, k: int = 5) -> Dict[str, Any]:
        """JSON-ready ``{"input", "num_views", "topk": [{"class", "name", "score"}]}``."""
        return {"input": self.path, "num_views": self.num_views,
                "topk": [{"class": i, "name": n, "score": s} for i, n, s in self.topk(k)]}


def is_image_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


class ClassificationPredictor:
    """Runs ``model`` on the test views of one input at a time.

    Args:
        model: ``model(B x 3 x T x H x W)`` (images ``B x 3 x H x W``) -> ``B x K`` logits
            (:class:`ClipClassifier`, or any :func:`mvit_tasks.create_model` classifier).
        views: the test protocol.
        class_names: K names, or ``None``.
        device: where the model runs (default: the model's).
    """

    def __init__(self, model: nn.Module, views: ViewProtocol,
                 class_names: Optional[Sequence[str]] = None,
                 device: Optional[torch.device] = None) -> None:
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.views = views
        self._transform = views.dataset("").transform  # the task's test transform
        self.class_names = list(class_names) if class_names is not None else None

    @classmethod
    def from_config(cls, config_file: str, weights: Optional[str] = None,
                    opts: Sequence[str] = (), task: str = "classification",
                    class_names: Optional[Sequence[str]] = None, allow_random: bool = False,
                    device: Optional[torch.device] = None) -> "ClassificationPredictor":
        """The model of a task config, with ``weights`` (default ``MODEL.WEIGHTS``) loaded
        strictly; ``allow_random`` runs without any weights."""
        cfg = load_task_config(config_file, opts, task, weights)
        if not cfg.MODEL.WEIGHTS and not allow_random:
            raise ValueError("no weights (weights= or MODEL.WEIGHTS): the classes would be "
                             "random; pass allow_random=True to run so")
        return cls(build_model(cfg), ViewProtocol.from_cfg(cfg), class_names,
                   device or torch.device("cpu"))

    # -------------------------------------------------------------------------- views
    def iter_views(self, path: str) -> Iterator[Tuple[int, torch.Tensor]]:
        """``(first view index, crops)`` per clip: ``crops`` is ``C x 3 x T x S x S`` float
        (images ``C x 3 x S x S``), views ``index .. index + C - 1`` (view = clip * C + crop).
        One clip is decoded at a time, by seeking to its window."""
        v = self.views
        if os.path.isfile(path) and not path.lower().endswith(IMAGE_EXTENSIONS) \
                and v.sampling == "image":  # an image model on a video: its middle frame
            frame = read_frames(path, lambda info: [max(0, (info.num_frames or 1) - 1) // 2],
                                pad_short=True, thread_type=v.decode_threads)[0][0]
            yield 0, self._crops(frame.permute(2, 0, 1))
            return
        if is_image_file(path) and v.sampling != "image":  # a video model on a still image
            frame = read_image(path).permute(2, 0, 1)
            yield 0, self._crops(frame.unsqueeze(0).expand(v.num_frames, -1, -1, -1))
            return
        ds = v.dataset(path)
        for clip in range(v.num_clips if v.sampling != "image" else 1):
            # the dataset's own decoding of test view `clip` (the task's sampling functions)
            frames = ds._load(0, ds.records[0], None, clip)
            yield clip * v.num_crops, self._crops(frames)

    def _crops(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``T x 3 x H x W`` (or ``3 x H x W``) -> the test transform's crops, stacked."""
        if self.views.num_crops == 1:
            return self._transform(frames, 1).unsqueeze(0)  # centre (the dataset's crop_idx 1)
        return torch.stack([self._transform(frames, i) for i in range(self.views.num_crops)])

    # ---------------------------------------------------------------------- inference
    @torch.no_grad()
    def view_logits(self, path: str) -> Tuple[np.ndarray, np.ndarray]:
        """``(view indices (V,), logits (V, K) float32)`` of ``path``."""
        index, logits = [], []
        for first, crops in self.iter_views(path):
            out = self.model(crops.to(self.device))
            out = out["logits"] if isinstance(out, dict) else out
            logits.append(out.float().cpu().numpy())
            index.extend(range(first, first + len(crops)))
        return np.asarray(index, dtype=np.int64), np.concatenate(logits)

    def __call__(self, path: str) -> Prediction:
        """Ensembled class scores of a video file, frame folder or image."""
        views, logits = self.view_logits(path)
        n = len(views)
        pred = ViewPredictions(np.asarray([path] * n), views, np.full(n, -1, dtype=np.int64),
                               logits, "logits")
        probs = ensemble_views(pred, self.views.ensemble).scores[0]
        if self.class_names is not None and len(self.class_names) != probs.shape[0]:
            raise ValueError(f"{len(self.class_names)} class names for a model of "
                             f"{probs.shape[0]} classes")
        return Prediction(path, probs, n, self.class_names)


# --------------------------------------------------------------------------- building
def task_config_fns(task: str) -> List[Any]:
    """``add_config`` functions of the engine and of classification task ``task`` (a preset:
    ``kinetics``, ``ssv2``, ``imagenet``, or ``classification``)."""
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.registry import TASK_REGISTRY

    from . import task as _registers  # noqa: F401

    return [add_engine_config, TASK_REGISTRY.get(task).add_config]


def load_task_config(config_file: Optional[str], opts: Sequence[str], task: str,
                     weights: Optional[str] = None) -> CfgNode:
    """The task config with ``weights`` (when given) as ``MODEL.WEIGHTS``; weights always load
    strictly here (no missing head, no unexpected keys): a demo must not show a random head."""
    from mvit_tasks.config import load_config

    extra = ["MODEL.WEIGHTS", weights] if weights else []
    extra += ["MODEL.WEIGHTS_ALLOW_MISSING", "[]", "MODEL.WEIGHTS_ALLOW_UNEXPECTED", "[]"]
    return load_config(config_file, [*opts, *extra], extra_config_fns=task_config_fns(task))


def build_model(cfg: CfgNode) -> nn.Module:
    """The task's model (``ClassificationTask.build_model``: ``MODEL.WEIGHTS`` loaded and its
    report logged), without reading the dataset or generating demo data."""
    from .task import ClassificationTask

    task = ClassificationTask.__new__(ClassificationTask)  # build_model needs only cfg
    task.cfg = cfg
    return task.build_model()
