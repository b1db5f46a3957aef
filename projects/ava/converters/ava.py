"""AVA v2.2 annotation files -> per-keyframe records (and back to detection CSVs).

Formats (https://research.google.com/ava/download.html) and the data protocol follow PySlowFast
(``slowfast/datasets/ava_helper.py``: ``load_boxes_and_labels``, ``load_image_lists``):

- box CSVs ``video_id,timestamp,x1,y1,x2,y2,action_id[,score_or_person_id]`` with normalised
  ``x1, y1, x2, y2`` boxes; rows of one keyframe with the same box are one person with several
  actions (multi-label); in detector files (``ava_val_predicted_boxes.csv``,
  ``ava_detection_*_boxes_and_labels*.csv``) an empty or ``-1`` action is a box without label
  and the 8th column is the detector score, kept when ``score >= score_thresh``;
- SlowFast frame lists ``frame_lists/{train,val}.csv``: a header, then space-separated
  ``original_video_id video_idx frame_idx path labels`` rows;
- the keyframe at second ``s`` of a segment starting at ``start_sec`` (900 for AVA) is frame
  ``(s - start_sec) * fps``.

Unlike SlowFast (which skips or crashes), every malformed row raises
:class:`~projects.ava.evaluation.io.AvaFormatError` naming ``file:line``: wrong field count,
unparsable timestamp / coordinate / action id / score, box outside [0, 1] or inverted, action
id outside the model's classes. The text reading (gzip, line ends) is the evaluator's.
"""
from __future__ import annotations

import csv
import dataclasses
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from ..evaluation.io import AvaFormatError, format_detection_rows, read_text, split_lines, \
    write_text

Key = Tuple[str, int]


@dataclasses.dataclass
class KeyframeRecord:
    """The persons of one keyframe.

    Attributes:
        video_id: AVA video id.  timestamp: keyframe second.
        boxes: (N, 4) float32 normalised ``x1, y1, x2, y2``.
        labels: N lists of action ids (empty: a box without label, a negative).
        scores: (N,) float32 detector scores (1.0 for ground truth).
        source: ``file:line`` of the keyframe's first row (for messages).
    """

    video_id: str
    timestamp: int
    boxes: np.ndarray
    labels: List[List[int]]
    scores: np.ndarray
    source: str = ""

    @property
    def key(self) -> Key:
        return (self.video_id, self.timestamp)


def _int(s: str, what: str, path: str, ln: int) -> int:
    try:
        return int(s)
    except ValueError:
        raise AvaFormatError(path, ln, f"unparsable {what} {s!r} (expected an integer)") from None


def _float(s: str, what: str, path: str, ln: int) -> float:
    try:
        v = float(s)
    except ValueError:
        raise AvaFormatError(path, ln, f"unparsable {what} {s!r} (expected a number)") from None
    if not math.isfinite(v):
        raise AvaFormatError(path, ln, f"{what} {s!r} is not finite")
    return v


def read_ava_boxes(
    path: str,
    valid_ids: Optional[Set[int]] = None,
    allow_unlabelled: bool = False,
    score_thresh: Optional[float] = None,
) -> Dict[Key, KeyframeRecord]:
    """Read an AVA box CSV (``.gz`` ok) into per-keyframe records (file order kept).

    Args:
        path: ground-truth or detected-box CSV.
        valid_ids: action ids the model knows (e.g. ``1..80``); another id is an error.
        allow_unlabelled: accept empty / ``-1`` action ids (detector files).
        score_thresh: drop rows whose 8th column (detector score) is below it
            (SlowFast ``AVA.DETECTION_SCORE_THRESH``); ``None`` keeps all rows.

    Raises:
        AvaFormatError: the first malformed row, as ``file:line: message``.
    """
    out: Dict[Key, KeyframeRecord] = {}
    per_key: Dict[Key, Dict[Tuple[float, ...], int]] = {}
    lists: Dict[Key, Tuple[List[List[float]], List[List[int]], List[float]]] = {}
    for i, row in enumerate(csv.reader(split_lines(read_text(path)))):
        ln = i + 1
        if len(row) not in (7, 8):
            raise AvaFormatError(path, ln, f"{len(row)} fields; expected video_id,timestamp,"
                                           "x1,y1,x2,y2,action_id[,score]")
        vid = row[0]
        ts = _int(row[1], "timestamp", path, ln)
        box = [_float(v, c, path, ln) for v, c in zip(row[2:6], ("x1", "y1", "x2", "y2"))]
        if any(v < 0.0 or v > 1.0 for v in box):
            raise AvaFormatError(path, ln, f"box {box} outside [0, 1] (AVA boxes are normalised "
                                           "x1,y1,x2,y2)")
        if box[0] > box[2] or box[1] > box[3]:
            raise AvaFormatError(path, ln, f"box {box} has x1 > x2 or y1 > y2")
        raw_action = row[6].strip()
        action: Optional[int] = None
        if raw_action not in ("", "-1"):
            action = _int(raw_action, "action_id", path, ln)
            if valid_ids is not None and action not in valid_ids:
                raise AvaFormatError(path, ln, f"unknown action id {action} (valid: "
                                               f"{min(valid_ids)}..{max(valid_ids)})")
        elif not allow_unlabelled:
            raise AvaFormatError(path, ln, f"missing action id {row[6]!r} in a ground-truth "
                                           "file")
        score = _float(row[7], "score", path, ln) if len(row) == 8 else 1.0
        if score_thresh is not None and score < score_thresh:
            continue
        key = (vid, ts)
        if key not in out:
            out[key] = KeyframeRecord(vid, ts, np.zeros((0, 4), np.float32), [],
                                      np.zeros(0, np.float32), f"{path}:{ln}")
            per_key[key], lists[key] = {}, ([], [], [])
        bkey = tuple(round(v, 6) for v in box)
        boxes, labels, scores = lists[key]
        j = per_key[key].get(bkey)
        if j is None:
            j = per_key[key][bkey] = len(boxes)
            boxes.append(box)
            labels.append([])
            scores.append(score if allow_unlabelled else 1.0)
        elif allow_unlabelled:
            scores[j] = max(scores[j], score)
        if action is not None and action not in labels[j]:
            labels[j].append(action)
    for key, rec in out.items():
        boxes, labels, scores = lists[key]
        rec.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        rec.labels = labels
        rec.scores = np.asarray(scores, np.float32)
    return out


def group_keyframes(*tables: Mapping[Key, KeyframeRecord]) -> Dict[Key, KeyframeRecord]:
    """Union of several files' records (e.g. SlowFast's lists of GT files); boxes of one
    keyframe are concatenated (equal boxes merge their labels)."""
    out: Dict[Key, KeyframeRecord] = {}
    for table in tables:
        for key, rec in table.items():
            if key not in out:
                out[key] = dataclasses.replace(rec, labels=[list(x) for x in rec.labels])
                continue
            cur = out[key]
            for b, lab, s in zip(rec.boxes, rec.labels, rec.scores):
                same = np.flatnonzero(np.all(np.abs(cur.boxes - b) < 1e-6, axis=1))
                if same.size:
                    j = int(same[0])
                    cur.labels[j] += [a for a in lab if a not in cur.labels[j]]
                else:
                    cur.boxes = np.concatenate([cur.boxes, b[None]])
                    cur.labels.append(list(lab))
                    cur.scores = np.concatenate([cur.scores, np.float32([s])])
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of ``x1, y1, x2, y2`` boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def merge_detected_boxes(
    gt: Mapping[Key, KeyframeRecord],
    detected: Mapping[Key, KeyframeRecord],
    iou_thresh: float = 0.9,
    include_negatives: bool = True,
) -> Dict[Key, KeyframeRecord]:
    """Training boxes = ground truth + detected boxes (SlowFast's
    ``person_box_67091280_iou90`` rule): a detected box with IoU >= ``iou_thresh`` to a GT box
    takes that box's labels; the others are negatives (no label), kept if
    ``include_negatives``. Keyframes only in ``detected`` appear only with negatives."""
    out = {k: dataclasses.replace(r, labels=[list(x) for x in r.labels]) for k, r in gt.items()}
    for key, det in detected.items():
        rec = out.get(key)
        gt_boxes = rec.boxes if rec is not None else np.zeros((0, 4), np.float32)
        iou = box_iou(det.boxes, gt_boxes)
        add_b: List[np.ndarray] = []
        add_l: List[List[int]] = []
        for j, b in enumerate(det.boxes):
            best = int(iou[j].argmax()) if iou.shape[1] else -1
            if best >= 0 and iou[j, best] >= iou_thresh:
                if iou[j, best] >= 1.0 - 1e-9:  # the GT box itself
                    continue
                add_b.append(b)
                add_l.append(list(rec.labels[best]))  # type: ignore[union-attr]
            elif include_negatives:
                add_b.append(b)
                add_l.append([])
        if not add_b:
            continue
        if rec is None:
            rec = out[key] = KeyframeRecord(det.video_id, det.timestamp,
                                            np.zeros((0, 4), np.float32), [],
                                            np.zeros(0, np.float32), det.source)
        rec.boxes = np.concatenate([rec.boxes, np.asarray(add_b, np.float32)])
        rec.labels += add_l
        rec.scores = np.concatenate([rec.scores, np.ones(len(add_b), np.float32)])
    return out


def keyframe_frame_index(timestamp: int, fps: float = 30.0, start_sec: float = 900.0) -> int:
    """Frame index of the keyframe at second ``timestamp`` in a segment starting at
    ``start_sec`` (AVA: the 15-min segment from 900 s; ``(s - 900) * 30``)."""
    return int(round((timestamp - start_sec) * fps))


def read_frame_list(path: str) -> Dict[str, List[str]]:
    """SlowFast frame list -> ``{video_id: [frame path, ...]}`` ordered by frame index.

    Raises:
        AvaFormatError: a row without 5 space-separated fields, a bad frame index, or a frame
            index given twice for one video.
    """
    frames: Dict[str, Dict[int, str]] = {}
    for i, line in enumerate(split_lines(read_text(path))):
        ln = i + 1
        parts = line.split()
        if ln == 1 and len(parts) >= 3 and not parts[2].lstrip("-").isdigit():
            continue  # header "original_vido_id video_id frame_id path labels"
        if len(parts) != 5:
            raise AvaFormatError(path, ln, f"{len(parts)} fields; expected 'original_video_id "
                                           "video_idx frame_idx path labels'")
        idx = _int(parts[2], "frame_idx", path, ln)
        per = frames.setdefault(parts[0], {})
        if idx in per:
            raise AvaFormatError(path, ln, f"frame {idx} of {parts[0]} listed twice")
        per[idx] = parts[3]
    return {v: [p for _, p in sorted(d.items())] for v, d in frames.items()}


def write_detection_csv(
    path: str,
    outputs: Iterable[Mapping[str, Any]],
    class_ids: Sequence[int],
    keep_ids: Optional[Set[int]] = None,
    box_decimals: int = 3,
    score_decimals: int = 6,
) -> int:
    """Write per-keyframe model outputs as AVA detection rows
    ``video_id,timestamp,x1,y1,x2,y2,action_id,score`` (``.gz`` compresses).

    Args:
        outputs: dicts ``{"video_id", "timestamp", "boxes": (N, 4) normalised,
            "scores": (N, K)}`` (tensors or arrays).
        class_ids: action id of each score column.
        keep_ids: write only these ids (e.g. the 60 evaluated classes); None = all.

    Returns:
        the number of rows written.
    """
    ids = np.asarray(class_ids, np.int64)
    cols = np.asarray([j for j, c in enumerate(ids) if keep_ids is None or int(c) in keep_ids],
                      np.int64)
    names: Dict[str, int] = {}
    video, ts, boxes, action, score = [], [], [], [], []
    for o in outputs:
        b = np.asarray(getattr(o["boxes"], "cpu", lambda: o["boxes"])(), np.float64).reshape(-1, 4)
        s = np.asarray(getattr(o["scores"], "cpu", lambda: o["scores"])(), np.float64)
        s = s.reshape(len(b), len(ids))[:, cols]
        n = len(b) * len(cols)
        code = names.setdefault(str(o["video_id"]), len(names))
        video.append(np.full(n, code))
        ts.append(np.full(n, int(o["timestamp"])))
        boxes.append(np.repeat(b, len(cols), axis=0))
        action.append(np.tile(ids[cols], len(b)))
        score.append(s.reshape(-1))
    cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape)  # noqa: E731
    lines = format_detection_rows(np.asarray(list(names), dtype=str),
                                  cat(video, 0).astype(np.int64), cat(ts, 0).astype(np.int64),
                                  cat(boxes, (0, 4)), cat(action, 0).astype(np.int64),
                                  cat(score, 0), box_decimals, score_decimals)
    write_text(path, lines)
    return len(lines)
