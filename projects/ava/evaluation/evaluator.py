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
from .io import (BoxTable, Exclusions, LabelMap, as_numpy, detection_table,
                 format_detection_rows, read_box_csv, read_exclusions, read_labelmap,
                 write_text)


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
        strict: refuse inputs the official evaluator accepts but that look wrong (boxes
            outside [0, 1], inverted, non-finite scores ...) instead of listing them in
            :meth:`warnings`.

    ``process(inputs, outputs)``: ``outputs`` is a list with one dict per keyframe,
    ``{"video_id": str, "timestamp": int, "boxes": (N, 4) normalised x1, y1, x2, y2,
    "scores": (N, K) per-class probabilities (sigmoid)}`` (tensors or arrays); ``inputs`` is not
    read. ``evaluate()`` returns ``{task_name: {"mAP": percent, ["mAP_PM", "mAP_OM",
    "mAP_PI"], "num_keyframes", "num_duplicate_keyframes", "num_det_rows",
    "num_input_warnings"}}``; a keyframe seen
    twice (e.g. padding of a distributed sampler) counts once, the first occurrence wins.
    """

    def __init__(self, groundtruth: Union[str, BoxTable], labelmap: Union[str, LabelMap],
                 exclusions: Union[None, str, Exclusions] = None, task_name: str = "ava",
                 protocol: str = "activitynet", breakdown: bool = True,
                 class_ids: Optional[Sequence[int]] = None, box_decimals: int = 3,
                 score_decimals: int = 6, strict: bool = False) -> None:
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
        self.strict = strict
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
            boxes = as_numpy(o["boxes"]).astype(np.float64).reshape(-1, 4)
            scores = as_numpy(o["scores"]).astype(np.float64)
            if scores.ndim != 2 or scores.shape[0] != boxes.shape[0]:
                raise ValueError(f"keyframe {vid},{ts}: scores of shape {tuple(scores.shape)} "
                                 f"for {boxes.shape[0]} boxes (expected N x num_classes)")
            k = scores.shape[1]
            if self.class_ids is not None and k != len(self.class_ids):
                raise ValueError(f"keyframe {vid},{ts}: {k} score columns, expected "
                                 f"{len(self.class_ids)} (class_ids)")
            boxes = _quantise(boxes, self.box_decimals)
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
        table = detection_table(keep, self.class_ids or [], self.labelmap.ids,
                                source="<AvaEvaluator>")
        n = len(table)
        self._stats = {"num_keyframes": len(keep),
                       "num_duplicate_keyframes": len(records) - len(keep),
                       "num_det_rows": n}
        return table

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        self._table = self.detections()
        self._result = evaluate(self.groundtruth, self._table, self.labelmap, self.exclusions,
                                protocol=self.protocol, breakdown=self.breakdown,
                                strict=self.strict)
        metrics: Dict[str, float] = {"mAP": 100.0 * self._result.mean_ap}
        for g, v in (self._result.groups or {}).items():
            metrics[f"mAP_{g}"] = 100.0 * v
        metrics.update(self._stats)
        metrics["num_input_warnings"] = len(self._result.findings)
        return {self.task_name: metrics}

    def warnings(self) -> List[str]:
        """The last evaluation's findings (``file:line: N rows ...``; the model's detections
        are named ``<AvaEvaluator>`` with the row of the detections CSV it writes)."""
        return [] if self._result is None else self._result.warnings

    @property
    def result(self) -> FrameMapResult:
        """The last ``evaluate()``'s full result (per-class APs, counts)."""
        if self._result is None:
            raise RuntimeError("call evaluate() before reading results or writing reports")
        return self._result

    def write_reports(self, output_dir: str) -> List[str]:
        """``ava_detections.csv`` (AVA format) and ``ava_frame_map.json`` (``tools/eval_ava.py``'s
        JSON) in ``output_dir``; returns their paths. Also draws ``ava_per_class_ap.png``
        (frame-AP of each label-map class, sorted, with its ground-truth box count; not in
        the returned list, which names the files ``tools/eval_ava.py`` reproduces)."""
        from mvit_tasks.engine.events import per_class_figure, save_figure

        result, t = self.result, self._table
        assert t is not None
        lines = format_detection_rows(t, self.box_decimals, self.score_decimals)
        csv_path = write_text(os.path.join(output_dir, "ava_detections.csv"), lines)
        json_path = os.path.join(output_dir, "ava_frame_map.json")
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result.to_json_dict(), f, indent=1)
        ap = {f"{name} ({int(n)} GT)": None if a is None else 100.0 * a for (name, a), n
              in zip(result.per_class().items(), result.num_gt.tolist())}
        mean = "n/a" if result.mean_ap != result.mean_ap else f"{100.0 * result.mean_ap:.2f}"
        save_figure(per_class_figure(ap, f"AVA frame-AP per class (mAP {mean}, "
                                         f"{result.protocol} protocol)"),
                    os.path.join(output_dir, "ava_per_class_ap.png"))
        return [csv_path, json_path]
