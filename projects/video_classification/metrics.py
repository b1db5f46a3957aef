"""Classification metrics on per-view predictions: dedupe, per-video ensembling, top-k, mean
class accuracy, confusion matrix (pure numpy; used by :mod:`.evaluator` and
``tools/eval_classification.py``).

Semantics follow PySlowFast's multi-view test (``TestMeter``): views of a video are combined
(``sum`` of softmax, default, or ``max``; ``logits`` averages the logits) and top-k is computed
per video, in percent. Mean class accuracy averages the per-class top-1 over the classes present
in the ground truth (mmaction2's ``mean_class_accuracy``).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

ENSEMBLE_METHODS = ("sum", "max", "logits")
FORMAT_VERSION = 1
_EPS = 1e-12


class PredictionsFileError(ValueError):
    """A predictions file is malformed; the message names the file and what is wrong."""


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) scores, float32."""
    e = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.float32))
    return e / e.sum(axis=1, keepdims=True)


@dataclasses.dataclass
class ViewPredictions:
    """One row per tested view (clip x crop).

    Attributes:
        video_id: (V,) str, the video each view belongs to.
        view: (V,) int64, the view index within its video (temporal * crops + spatial).
        label: (V,) int64 ground-truth class, -1 = unlabelled.
        scores: (V, K) float32 logits (``kind == "logits"``) or probabilities (``"probs"``).
        kind: ``"logits"`` or ``"probs"``.
    """

    video_id: np.ndarray
    view: np.ndarray
    label: np.ndarray
    scores: np.ndarray
    kind: str = "logits"

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def select(self, mask: np.ndarray) -> "ViewPredictions":
        return ViewPredictions(self.video_id[mask], self.view[mask], self.label[mask],
                               self.scores[mask], self.kind)

    def probs(self) -> np.ndarray:
        """(V, K) float32 softmax probabilities."""
        if self.kind == "probs":
            return self.scores.astype(np.float32, copy=False)
        return softmax(self.scores)


@dataclasses.dataclass
class VideoPredictions:
    """One row per video, after ensembling; rows sorted by ``video_id``.

    Attributes:
        video_id: (N,) str.  label: (N,) int64, -1 = unlabelled.
        scores: (N, K) float32: mean probability (``sum``; same ranking as SlowFast's sum),
            max probability (``max``) or softmax of the mean logits (``logits``).
        num_views: (N,) int64, distinct views per video.
    """

    video_id: np.ndarray
    label: np.ndarray
    scores: np.ndarray
    num_views: np.ndarray


def dedupe_views(views: ViewPredictions) -> Tuple[ViewPredictions, int]:
    """Keep the first row of every ``(video_id, view)`` key; returns (views, rows dropped)."""
    seen: set = set()
    keep = np.zeros(len(views), dtype=bool)
    for i, key in enumerate(zip(views.video_id.tolist(), views.view.tolist())):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    dropped = int(len(views) - keep.sum())
    return (views.select(keep) if dropped else views), dropped


def ensemble_views(views: ViewPredictions, method: str = "sum") -> VideoPredictions:
    """Combine the views of each video (see :class:`VideoPredictions` for the score rows).

    Raises:
        ValueError: unknown method, or the views of one video carry different labels.
    """
    if method not in ENSEMBLE_METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; expected one of {ENSEMBLE_METHODS}")
    num_classes = views.scores.shape[1] if views.scores.ndim == 2 else 0
    if len(views) == 0:
        return VideoPredictions(np.zeros(0, dtype=str), np.zeros(0, dtype=np.int64),
                                np.zeros((0, num_classes), dtype=np.float32),
                                np.zeros(0, dtype=np.int64))
    vids, inv = np.unique(views.video_id, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inv[order]) != 0])
    counts = np.diff(np.r_[starts, len(order)])
    labels = views.label[order]
    lo, hi = np.minimum.reduceat(labels, starts), np.maximum.reduceat(labels, starts)
    if np.any(lo != hi):
        bad = int(np.flatnonzero(lo != hi)[0])
        raise ValueError(f"video {vids[bad]!r}: its views carry different labels "
                         f"({int(lo[bad])} and {int(hi[bad])})")
    if method == "logits":
        z = views.scores if views.kind == "logits" else np.log(np.maximum(views.scores, _EPS))
        mean = np.add.reduceat(z[order].astype(np.float32), starts, axis=0) / counts[:, None]
        scores = softmax(mean)
    else:
        p = views.probs()[order]
        if method == "sum":
            scores = np.add.reduceat(p, starts, axis=0) / counts[:, None]
        else:
            scores = np.maximum.reduceat(p, starts, axis=0)
    return VideoPredictions(vids, lo.astype(np.int64), scores.astype(np.float32),
                            counts.astype(np.int64))


def true_class_rank(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) rank of the true class in each row of ``scores`` (N, K); 0 = top-1.

    Ties are broken by class index (the lower index ranks first, as ``argmax`` does).
    """
    rows = np.arange(len(labels))
    s_true = scores[rows, labels][:, None]
    lower = np.arange(scores.shape[1])[None, :] < labels[:, None]
    return ((scores > s_true) | ((scores == s_true) & lower)).sum(axis=1)


def per_class_counts(videos: VideoPredictions, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(K,) number of labelled videos per class and (K,) how many of them are top-1 correct."""
    lab = videos.label >= 0
    y = videos.label[lab]
    correct = videos.scores[lab].argmax(axis=1) == y
    return (np.bincount(y, minlength=num_classes),
            np.bincount(y[correct], minlength=num_classes))


def confusion_matrix(videos: VideoPredictions, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; row = ground truth, column = top-1 prediction (labelled videos)."""
    lab = videos.label >= 0
    idx = videos.label[lab] * num_classes + videos.scores[lab].argmax(axis=1)
    return np.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclasses.dataclass
class ClassificationResult:
    """What :func:`evaluate_predictions` returns: metrics, ensembled videos, distinct views."""

    metrics: Dict[str, float]
    videos: VideoPredictions
    views: ViewPredictions


def evaluate_predictions(views: ViewPredictions, ensemble: str = "sum",
                         topk: Sequence[int] = (1, 5), expected_views: Optional[int] = None,
                         ) -> ClassificationResult:
    """Metrics of per-view predictions: dedupe, ensemble per video, score the labelled videos.

    Returns:
        ``ClassificationResult``; ``metrics``: ``top{k}`` for each k (k clipped to K),
        ``mean_class_accuracy`` and ``top1_single_view`` in percent (left out when no video
        is labelled); ``num_videos`` / ``num_views`` (labelled, distinct views),
        ``num_unlabelled_videos``, ``num_duplicate_views``; with ``expected_views``,
        ``num_videos_fewer_views`` / ``num_videos_more_views`` (over all videos).
    """
    views, dropped = dedupe_views(views)
    videos = ensemble_views(views, ensemble)
    num_classes = views.scores.shape[1]
    lab = videos.label >= 0
    vlab = views.label >= 0
    metrics: Dict[str, float] = {}
    if lab.any():
        rank = true_class_rank(videos.scores[lab], videos.label[lab])
        for k in topk:
            metrics[f"top{k}"] = 100.0 * float(np.mean(rank < k))  # k >= K: 100
        count, correct = per_class_counts(videos, num_classes)
        present = count > 0
        metrics["mean_class_accuracy"] = 100.0 * float(np.mean(correct[present] / count[present]))
        single = views.scores[vlab].argmax(axis=1) == views.label[vlab]
        metrics["top1_single_view"] = 100.0 * float(np.mean(single))
    metrics["num_videos"] = int(lab.sum())
    metrics["num_views"] = int(vlab.sum())
    metrics["num_unlabelled_videos"] = int((~lab).sum())
    metrics["num_duplicate_views"] = dropped
    if expected_views is not None:
        metrics["num_videos_fewer_views"] = int((videos.num_views < expected_views).sum())
        metrics["num_videos_more_views"] = int((videos.num_views > expected_views).sum())
    return ClassificationResult(metrics, videos, views)


# ------------------------------------------------------------------------------ files
