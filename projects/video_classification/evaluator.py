"""Multi-view video classification evaluator: per-video ensembling, top-k, mean class accuracy.

Semantics follow PySlowFast's multi-view test (``slowfast/utils/meters.py::TestMeter``): every
video is tested with ``NUM_ENSEMBLE_VIEWS x NUM_SPATIAL_CROPS`` views whose scores are
combined per video (``CLS.ENSEMBLE``: ``sum`` of softmax, default; ``max``; ``logits``, the mean
of the logits), then top-1/top-5 are computed on the videos, in percent (as SlowFast and timm
print them). Mean class accuracy is the mean over the classes present in the ground truth of
the per-class top-1 accuracy (mmaction2's ``mean_class_accuracy``).

Views are keyed by ``(video_id, view)``: a key seen twice (the distributed sampler's padding
repeats records) is counted once, the first occurrence wins. Label ``-1`` marks an unlabelled
video: it is kept in the saved predictions and left out of every metric.

File format of :func:`save_predictions` (``.npz``, loadable with ``allow_pickle=False``):

- video level (sorted by ``video_id``): ``video_id`` (N,) str, ``label`` (N,) int64,
  ``probs`` (N, K) float32 ensembled scores, ``num_views`` (N,) int64;
- view level: ``view_video_id`` (V,) str, ``view_view`` (V,) int64, ``view_label`` (V,) int64,
  ``view_logits`` (V, K) float32 (or ``view_probs`` when only probabilities are known);
- ``ensemble`` () str, ``class_names`` (K,) str (optional), ``format_version`` () int64.

:func:`load_predictions` also reads a plain file with ``video_id``, ``label`` and ``logits`` or
``probs`` (several rows per ``video_id`` = views, with an optional ``view`` column).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.utils import comm
from mvit_tasks.utils.fileio import write_json

from .metrics import (
    ENSEMBLE_METHODS,
    FORMAT_VERSION,
    PredictionsFileError,
    ViewPredictions,
    VideoPredictions,
    per_class_counts,
    confusion_matrix,
    ClassificationResult,
    evaluate_predictions,
)


def save_predictions(path: str, views: ViewPredictions, videos: VideoPredictions,
                     ensemble: str, class_names: Optional[Sequence[str]] = None) -> str:
    """Write the ``.npz`` described in the module docstring; returns ``path``."""
    arrays: Dict[str, np.ndarray] = {
        "video_id": np.asarray(videos.video_id, dtype=str),
        "label": videos.label.astype(np.int64),
        "probs": videos.scores.astype(np.float32),
        "num_views": videos.num_views.astype(np.int64),
        "view_video_id": np.asarray(views.video_id, dtype=str),
        "view_view": views.view.astype(np.int64),
        "view_label": views.label.astype(np.int64),
        f"view_{views.kind}": views.scores.astype(np.float32),
        "ensemble": np.asarray(ensemble),
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
    }
    if class_names is not None:
        arrays["class_names"] = np.asarray(list(class_names), dtype=str)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
        np.savez_compressed(f, **arrays)
    return path


def load_predictions(path: str) -> Tuple[ViewPredictions, Dict[str, Any]]:
    """Per-view predictions from a file of :func:`save_predictions` or a plain per-view file.

    Returns:
        ``(views, meta)``; ``meta`` may hold ``"ensemble"`` (str) and ``"class_names"``.

    Raises:
        PredictionsFileError: missing arrays, shape mismatches, labels outside [-1, K),
            non-finite scores; the message names the file.
    """
    if not os.path.isfile(path):
        raise PredictionsFileError(f"{path}: predictions file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile / pickle / format errors
        raise PredictionsFileError(f"{path}: not a readable .npz file ({e})") from e

    def need(name: str) -> np.ndarray:
        if name not in data:
            raise PredictionsFileError(f"{path}: missing array {name!r} (arrays present: "
                                       f"{sorted(data)})")
        return data[name]

    prefix = "view_" if ("view_logits" in data or "view_probs" in data) else ""
    kinds = [k for k in ("logits", "probs") if prefix + k in data]
    if not kinds:
        raise PredictionsFileError(f"{path}: no scores: expected an array 'logits' or 'probs' "
                                   f"(N x K) (arrays present: {sorted(data)})")
    kind = kinds[0]
    scores = need(prefix + kind)
    vid, label = need(prefix + "video_id"), need(prefix + "label")
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise PredictionsFileError(f"{path}: {prefix + kind!r} must be 2-D N x K, "
                                   f"got shape {scores.shape}")
    n, k = scores.shape
    for name, arr in ((prefix + "video_id", vid), (prefix + "label", label)):
        if arr.shape != (n,):
            raise PredictionsFileError(f"{path}: {name!r} has shape {arr.shape}, expected ({n},) "
                                       f"to match {prefix + kind!r} {scores.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        raise PredictionsFileError(f"{path}: {prefix + 'label'!r} must be integers, "
                                   f"got {label.dtype}")
    bad = np.flatnonzero((label < -1) | (label >= k))
    if bad.size:
        i = int(bad[0])
        raise PredictionsFileError(f"{path}: label out of range at row {i} (video "
                                   f"{str(vid[i])!r}): {int(label[i])} not in [-1, {k})")
    if not np.isfinite(scores).all():
        i = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
        raise PredictionsFileError(f"{path}: non-finite {kind} at row {i}")
    view_key = prefix + "view"
    if view_key in data:
        view = data[view_key]
        if view.shape != (n,):
            raise PredictionsFileError(f"{path}: {view_key!r} has shape {view.shape}, "
                                       f"expected ({n},)")
    else:  # no view column: the rows of a video are distinct views, in file order
        view = np.zeros(n, dtype=np.int64)
        seen: Dict[str, int] = {}
        for i, v in enumerate(vid.tolist()):
            view[i] = seen.get(v, 0)
            seen[v] = view[i] + 1
    meta: Dict[str, Any] = {}
    if "ensemble" in data:
        meta["ensemble"] = str(data["ensemble"])
    if "class_names" in data:
        names = [str(c) for c in data["class_names"].tolist()]
        if len(names) != k:
            raise PredictionsFileError(f"{path}: 'class_names' has {len(names)} names for {k} "
                                       f"classes")
        meta["class_names"] = names
    views = ViewPredictions(vid.astype(str), view.astype(np.int64), label.astype(np.int64),
                            scores.astype(np.float32), kind)
    return views, meta


def write_classification_reports(output_dir: str, videos: VideoPredictions, num_classes: int,
                                 class_names: Optional[Sequence[str]] = None) -> List[str]:
    """``per_class_accuracy.json`` and ``confusion_matrix.png`` in ``output_dir``; their paths.

    The JSON maps class name -> ``{"accuracy": percent or null, "count": labelled videos}``;
    the PNG shows the row-normalised confusion matrix (:func:`confusion_figure`).
    """
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    os.makedirs(output_dir, exist_ok=True)
    count, correct = per_class_counts(videos, num_classes)
    per_class = {
        n: {"accuracy": (100.0 * float(correct[i]) / float(count[i])) if count[i] else None,
            "count": int(count[i])}
        for i, n in enumerate(names)
    }
    json_path = os.path.join(output_dir, "per_class_accuracy.json")
    write_json(json_path, per_class, indent=1)
    png_path = os.path.join(output_dir, "confusion_matrix.png")
    _plot_confusion(confusion_matrix(videos, num_classes), names, png_path)
    return [json_path, png_path]


ANNOTATE_MAX_CLASSES = 30  # up to this many classes the cells show their percentages


def confusion_figure(cm: np.ndarray, names: Sequence[str]) -> Any:
    """The row-normalised confusion matrix ``cm`` (K x K counts, rows = ground truth) as a
    figure: up to :data:`ANNOTATE_MAX_CLASSES` classes each cell shows its percentage of the
    row (blank for no video, ``<1`` below 1 %) and each row label its video count; tick labels
    up to 50 classes; always a colour bar."""
    from mvit_tasks.engine.events import new_figure

    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    k = cm.shape[0]
    side = float(min(max(4.5, 0.35 * k + 2.5), 20.0))
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the ground-truth class", fontsize=8)
    annotate = k <= ANNOTATE_MAX_CLASSES
    if annotate:
        size = 9 if k <= 10 else 8 if k <= 20 else 6.5
        for i in range(k):
            for j in range(k):
                if cm[i, j] == 0:
                    continue
                pct = 100.0 * norm[i, j]
                ax.text(j, i, f"{pct:.0f}" if pct >= 1 else "<1", ha="center", va="center",
                        fontsize=size, color="white" if norm[i, j] > 0.5 else "black")
    if k <= 50:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ylabels = [f"{n} ({int(c)})" for n, c in zip(names, rows[:, 0])] if annotate else names
        ax.set_yticklabels(ylabels, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth (videos)" if annotate else "ground truth")
    ax.set_title(f"confusion matrix: % of each ground-truth class ({int(cm.sum())} videos)"
                 if annotate else f"confusion matrix, rows normalised ({int(cm.sum())} videos)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _plot_confusion(cm: np.ndarray, names: Sequence[str], path: str) -> None:
    from mvit_tasks.engine.events import save_figure

    save_figure(confusion_figure(cm, names), path)


# --------------------------------------------------------------------------- evaluator
def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor (bf16/fp16 logits are widened to float32)
        x = x.detach()
        x = x.float() if x.is_floating_point() else x
        return x.cpu().numpy()
    return np.asarray(x)


class ClassificationEvaluator(DatasetEvaluator):
    """Collects view logits, ensembles them per video and reports top-k / mean class accuracy.

    Args:
        task_name: key of the result dict (``{task_name: {metric: value}}``).
        num_classes: K; ``outputs["logits"]`` must be B x K.
        class_names: K names for the reports (default ``"0" .. "K-1"``).
        ensemble: ``"sum"`` of softmax probabilities (SlowFast's default), ``"max"`` of them,
            or ``"logits"`` (softmax of the mean logits).
        topk: the k of the ``top{k}`` metrics (clipped to K).
        expected_views: ``NUM_ENSEMBLE_VIEWS * NUM_SPATIAL_CROPS``; when set, ``evaluate()``
            counts the videos with fewer / more distinct views.

    ``process(inputs, outputs)`` reads ``inputs["label"]`` (B,) int (-1 = unlabelled),
    ``inputs["video_id"]`` (B str), ``inputs["view"]`` (B,) int (falls back to
    ``inputs["index"]``) and ``outputs["logits"]`` (B, K). ``evaluate()`` gathers every rank's
    views (V x K float32 each: ~V*K*4 bytes on every rank).
    """

    def __init__(self, task_name: str, num_classes: int,
                 class_names: Optional[Sequence[str]] = None, ensemble: str = "sum",
                 topk: Sequence[int] = (1, 5), expected_views: Optional[int] = None) -> None:
        if ensemble not in ENSEMBLE_METHODS:
            raise ValueError(f"ensemble must be one of {ENSEMBLE_METHODS}, got {ensemble!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != num_classes:
                raise ValueError(f"{len(class_names)} class names for num_classes={num_classes}")
            if len(set(class_names)) != num_classes:
                raise ValueError("class names must be unique")
        if not topk or any(int(k) < 1 for k in topk):
            raise ValueError(f"topk must be positive integers, got {tuple(topk)}")
        if expected_views is not None and expected_views < 1:
            raise ValueError(f"expected_views must be >= 1, got {expected_views}")
        self.task_name = task_name
        self.num_classes = int(num_classes)
        self.class_names = class_names
        self.ensemble = ensemble
        self.topk = tuple(int(k) for k in topk)
        self.expected_views = expected_views
        self.reset()

    def reset(self) -> None:
        self._chunks: List[Dict[str, np.ndarray]] = []
        self._result: Optional[ClassificationResult] = None

    def process(self, inputs: Mapping[str, Any], outputs: Any) -> None:
        logits = _to_numpy(outputs["logits"] if isinstance(outputs, Mapping) else outputs)
        label = _to_numpy(inputs["label"]).astype(np.int64).reshape(-1)
        vids = inputs["video_id"]
        vids = vids.tolist() if hasattr(vids, "tolist") else list(vids)
        view_src = inputs.get("view", inputs.get("index"))
        if view_src is None:
            raise KeyError("ClassificationEvaluator needs inputs['view'] (or inputs['index'])")
        view = _to_numpy(view_src).astype(np.int64).reshape(-1)
        b = label.shape[0]
        if logits.ndim != 2 or logits.shape != (b, self.num_classes):
            raise ValueError(f"outputs['logits'] has shape {tuple(logits.shape)}, expected "
                             f"({b}, {self.num_classes}) (batch x num_classes)")
        if len(vids) != b or view.shape[0] != b:
            raise ValueError(f"batch of {b} labels but {len(vids)} video ids, "
                             f"{view.shape[0]} views")
        bad = np.flatnonzero((label < -1) | (label >= self.num_classes))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"video {vids[i]!r}: label {int(label[i])} not in "
                             f"[-1, {self.num_classes})")
        self._chunks.append({"video_id": np.asarray([str(v) for v in vids], dtype=str),
                             "view": view, "label": label,
                             "logits": logits.astype(np.float32, copy=False)})

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        chunks = comm.gather_list(self._chunks)
        k = self.num_classes
        if chunks:
            cat = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        else:
            cat = {"video_id": np.zeros(0, dtype=str), "view": np.zeros(0, dtype=np.int64),
                   "label": np.zeros(0, dtype=np.int64), "logits": np.zeros((0, k), np.float32)}
        views = ViewPredictions(cat["video_id"], cat["view"], cat["label"], cat["logits"])
        self._result = evaluate_predictions(views, self.ensemble, self.topk, self.expected_views)
        return {self.task_name: dict(self._result.metrics)}

    @property
    def result(self) -> ClassificationResult:
        """The last ``evaluate()``'s metrics, ensembled videos and distinct views."""
        if self._result is None:
            raise RuntimeError("call evaluate() before reading results or writing reports")
        return self._result

    def save_predictions(self, path: str) -> str:
        """Write the last ``evaluate()``'s predictions (module docstring format); the path."""
        r = self.result
        return save_predictions(path, r.views, r.videos, self.ensemble, self.class_names)

    load_predictions = staticmethod(load_predictions)

    def write_reports(self, output_dir: str) -> List[str]:
        """``per_class_accuracy.json``, ``confusion_matrix.png``, ``predictions.npz``."""
        paths = write_classification_reports(output_dir, self.result.videos, self.num_classes,
                                             self.class_names)
        paths.append(self.save_predictions(os.path.join(output_dir, "predictions.npz")))
        return paths
