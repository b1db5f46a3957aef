"""AVA frame-mAP as a :class:`~mvit_tasks.evaluation.DatasetEvaluator` (reset / process /
evaluate / write_reports), on the model's per-keyframe outputs.

Every keyframe's boxes x classes become AVA detection rows (``video_id,timestamp,x1,y1,x2,y2,
action_id,score``) for the label-map classes, in a fixed order (keyframes as processed and
gathered, boxes, classes in label-map order). Boxes and scores are first rounded to the decimals
the CSV is written with (``box_decimals`` / ``score_decimals``), so ``evaluate()`` equals
``tools/eval_ava.py`` run on the CSV that :meth:`AvaEvaluator.write_reports` writes, bit for bit.
The metric itself is :func:`.frame_map.evaluate` (official ActivityNet protocol by default).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.utils import comm

from .frame_map import PROTOCOLS, FrameMapResult, evaluate
from .io import (BoxTable, Exclusions, LabelMap, factorize, format_detection_rows, read_box_csv,
                 read_exclusions, read_labelmap, write_text)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor (half precision is widened)
        x = x.detach()
        x = x.float() if x.is_floating_point() else x
        return x.cpu().numpy()
    return np.asarray(x)


def _quantise(x: np.ndarray, decimals: int) -> np.ndarray:
    """The float64 value a ``%.{decimals}f`` string of ``x`` parses back to (exactly)."""
    scale = 10.0 ** decimals
    return np.round(x.astype(np.float64) * scale) / scale


class AvaEvaluator(DatasetEvaluator):
    """Collects per-keyframe box scores and computes the AVA frame-mAP.

    Args:
        groundtruth: ground-truth CSV path (``.gz`` ok) or a :class:`.io.BoxTable`.
        labelmap: label map path or :class:`.io.LabelMap` (the evaluated classes).
        exclusions: excluded-timestamps CSV path, :class:`.io.Exclusions` or None.
        task_name: key of the result dict.
        protocol: ``"activitynet"`` (official) or ``"mmaction2"``.
        breakdown: add the PM / OM / PI means to the metrics.
        class_ids: action id of each score column (default: column j is id j + 1, i.e. the
            80 AVA classes); columns whose id is not in the label map are not evaluated.
        box_decimals / score_decimals: precision of the written (and evaluated) values.

    ``process(inputs, outputs)``: ``outputs`` is a list with one dict per keyframe,
    ``{"video_id": str, "timestamp": int, "boxes": (N, 4) normalised x1, y1, x2, y2,
    "scores": (N, K) per-class probabilities (sigmoid)}`` (tensors or arrays); ``inputs`` is not
    read. ``evaluate()`` returns ``{task_name: {"mAP": percent, ["mAP_PM", "mAP_OM",
    "mAP_PI"], "num_keyframes", "num_duplicate_keyframes", "num_det_rows"}}``; a keyframe seen
    twice (e.g. padding of a distributed sampler) counts once, the first occurrence wins.
    """

    def __init__(self, groundtruth: Union[str, BoxTable], labelmap: Union[str, LabelMap],
                 exclusions: Union[None, str, Exclusions] = None, task_name: str = "ava",
                 protocol: str = "activitynet", breakdown: bool = True,
                 class_ids: Optional[Sequence[int]] = None, box_decimals: int = 3,
                 score_decimals: int = 6) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.labelmap = read_labelmap(labelmap) if isinstance(labelmap, str) else labelmap
        self.groundtruth = (read_box_csv(groundtruth) if isinstance(groundtruth, str)
                            else groundtruth)
        self.exclusions = (read_exclusions(exclusions) if exclusions is None
                           or isinstance(exclusions, str) else exclusions)
        self.task_name, self.protocol, self.breakdown = task_name, protocol, breakdown
        self.class_ids = None if class_ids is None else [int(c) for c in class_ids]
        self.box_decimals, self.score_decimals = int(box_decimals), int(score_decimals)
        self.reset()

    def reset(self) -> None:
        self._records: List[Dict[str, Any]] = []
        self._result: Optional[FrameMapResult] = None
        self._table: Optional[BoxTable] = None
        self._stats: Dict[str, int] = {}

    def process(self, inputs: Any, outputs: Any) -> None:
        items = [outputs] if isinstance(outputs, Mapping) else list(outputs)
        for o in items:
            vid, ts = str(o["video_id"]), int(o["timestamp"])
            boxes = _to_numpy(o["boxes"]).astype(np.float64).reshape(-1, 4)
            scores = _to_numpy(o["scores"]).astype(np.float64)
            if scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
                raise ValueError(f"keyframe {vid},{ts}: scores of shape {tuple(scores.shape)} "
                                 f"for {boxes.shape[0]} boxes (expected N x num_classes)")
            k = scores.shape[1]
            if self.class_ids is not None and k != len(self.class_ids):
                raise ValueError(f"keyframe {vid},{ts}: {k} score columns, expected "
                                 f"{len(self.class_ids)} (class_ids)")
            boxes = _quantise(boxes, self.box_decimals)
            bad = ~np.isfinite(boxes).all(1) | (boxes < 0).any(1) | (boxes > 1).any(1)
            bad |= (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])
            if bad.any() or not np.isfinite(scores).all():
                raise ValueError(f"keyframe {vid},{ts}: boxes must be normalised x1,y1,x2,y2 "
                                 f"in [0, 1] with finite scores, got {boxes[bad][:1].tolist()}")
            if self.class_ids is None:  # the first keyframe fixes the columns: ids 1..K
                self.class_ids = list(range(1, k + 1))
            self._records.append({"video_id": vid, "timestamp": ts, "boxes": boxes,
                                  "scores": _quantise(scores, self.score_decimals)})

    def detections(self) -> BoxTable:
        """The gathered keyframes as AVA detection rows (the rows ``write_reports`` writes)."""
        records = comm.gather_list(self._records)
        seen, keep = set(), []
        for r in records:
            key = (r["video_id"], r["timestamp"])
            if key not in seen:
                seen.add(key)
                keep.append(r)
        ids = self.class_ids or []
        in_map = set(self.labelmap.ids)
        cols = np.asarray([j for j, c in enumerate(ids) if c in in_map], dtype=np.int64)
        n_box = np.asarray([len(r["boxes"]) for r in keep], dtype=np.int64)
        c = cols.size
        names, vcode = factorize([r["video_id"] for r in keep])
        per_box = lambda key: (np.concatenate([r[key] for r in keep]) if keep  # noqa: E731
                               else np.zeros((0, 4 if key == "boxes" else len(ids))))
        boxes, scores = per_box("boxes"), per_box("scores")
        n = int(n_box.sum()) * c
        table = BoxTable(
            video_names=names,
            video=np.repeat(np.repeat(vcode, n_box), c),
            timestamp=np.repeat(np.repeat(np.asarray([r["timestamp"] for r in keep],
                                                     dtype=np.int64), n_box), c),
            boxes=np.repeat(boxes, c, axis=0),
            action=np.tile(np.asarray(ids, dtype=np.int64)[cols] if c else cols, len(boxes)),
            score=scores[:, cols].reshape(-1) if c else np.zeros(0),
            line=np.arange(1, n + 1, dtype=np.int64), source="<AvaEvaluator>")
        self._stats = {"num_keyframes": len(keep),
                       "num_duplicate_keyframes": len(records) - len(keep),
                       "num_det_rows": n}
        return table

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        self._table = self.detections()
        self._result = evaluate(self.groundtruth, self._table, self.labelmap, self.exclusions,
                                protocol=self.protocol, breakdown=self.breakdown)
        metrics: Dict[str, float] = {"mAP": 100.0 * self._result.mean_ap}
        for g, v in (self._result.groups or {}).items():
            metrics[f"mAP_{g}"] = 100.0 * v
        metrics.update(self._stats)
        return {self.task_name: metrics}

    @property
    def result(self) -> FrameMapResult:
        """The last ``evaluate()``'s full result (per-class APs, counts)."""
        if self._result is None:
            raise RuntimeError("call evaluate() before reading results or writing reports")
        return self._result

    def write_reports(self, output_dir: str) -> List[str]:
        """``ava_detections.csv`` (AVA format) and ``ava_frame_map.json`` (``tools/eval_ava.py``'s
        JSON) in ``output_dir``; returns their paths."""
        result, t = self.result, self._table
        assert t is not None
        lines = format_detection_rows(t.video_names, t.video, t.timestamp, t.boxes, t.action,
                                      t.score, self.box_decimals, self.score_decimals)
        csv_path = write_text(os.path.join(output_dir, "ava_detections.csv"), lines)
        json_path = os.path.join(output_dir, "ava_frame_map.json")
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result.to_json_dict(), f, indent=1)
        return [csv_path, json_path]
