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

Rows are read by the evaluator's reader (:func:`..evaluation.io.read_box_csv`: one reader for
converters, dataset, evaluator, demo and ``prepare_ava.py validate``), under its rules: a row it
cannot parse raises :class:`~mvit_tasks.projects.ava.evaluation.io.AvaFormatError` naming ``file:line``
(wrong field count, unparsable field), as does an action id outside the model's classes
(SlowFast's dataset asserts it); rows that parse but look wrong (boxes outside [0, 1],
inverted, zero-area, repeated) are kept and reported, or refused with ``strict``.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import numpy as np

from ..evaluation.io import (AvaFormatError, BoxTable, Finding, box_findings, parse_int,
                             raise_findings, read_box_csv, read_text, split_lines)
from ..evaluation.io import write_detection_csv  # noqa: F401  (the one writer, re-exported)

logger = logging.getLogger(__name__)

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


def read_ava_boxes(
    path: str,
    valid_ids: Optional[Set[int]] = None,
    allow_unlabelled: bool = False,
    score_thresh: Optional[float] = None,
    strict: bool = False,
    findings: Optional[List[Finding]] = None,
) -> Dict[Key, KeyframeRecord]:
    """Read an AVA box CSV (``.gz`` ok) into per-keyframe records (file order kept).

    The rows are read by the evaluator's reader (:func:`..evaluation.io.read_box_csv`) under
    the same rules: rows it cannot parse stop with ``file:line``; rows that parse but look wrong
    (:func:`..evaluation.io.box_findings`: boxes outside [0, 1], inverted, zero-area, repeated)
    are kept as they are (the dataset clips boxes to the frame, as SlowFast does) and reported.
    Rows with a non-finite coordinate are dropped (and reported): no RoI can be cut from them.

    Args:
        path: ground-truth or detected-box CSV.
        valid_ids: action ids the model knows (e.g. ``1..80``); another id is an error, as
            SlowFast's dataset asserts it.
        allow_unlabelled: accept empty / ``-1`` action ids (detector files).
        score_thresh: drop rows whose 8th column (detector score) is below it
            (SlowFast ``AVA.DETECTION_SCORE_THRESH``); ``None`` keeps all rows.
        strict: refuse the findings (:class:`AvaFormatError` naming the first one).
        findings: if given, the findings are appended here instead of logged as warnings.

    Raises:
        AvaFormatError: the first malformed row, as ``file:line: message``.
    """
    table = read_box_csv(path, allow_unlabelled=allow_unlabelled)
    found = box_findings(table)
    if strict:
        raise_findings(found)
    if findings is not None:
        findings.extend(found)
    else:
        for f in found:
            logger.warning("%s", f)
    labelled = table.action != -1
    if not allow_unlabelled and not labelled.all():
        ln = int(table.line[np.flatnonzero(~labelled)[0]])
        raise AvaFormatError(path, ln, "missing action id -1 in a ground-truth file")
    if valid_ids is not None:
        bad = labelled & ~np.isin(table.action, np.asarray(sorted(valid_ids), np.int64))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AvaFormatError(path, int(table.line[i]), f"unknown action id "
                                 f"{int(table.action[i])} (valid: {min(valid_ids)}.."
                                 f"{max(valid_ids)})")
    keep = np.isfinite(table.boxes).all(axis=1)
    if score_thresh is not None:
        keep &= ~(table.score < score_thresh)  # SlowFast: `if score < thresh: continue`
    return _group_rows(table, np.flatnonzero(keep), score_is_detector=allow_unlabelled)


def _group_rows(table: BoxTable, rows: np.ndarray,
                score_is_detector: bool) -> Dict[Key, KeyframeRecord]:
    """Records of ``rows``: one per ``(video, timestamp)``, one box per distinct box of a
    keyframe (equal coordinates: one person with several actions)."""
    out: Dict[Key, KeyframeRecord] = {}
    acc: Dict[Key, Dict[Tuple[float, ...], List[Any]]] = {}
    names = table.video_names.tolist()
    for r, v, t, b, a, sc in zip(rows.tolist(), table.video[rows].tolist(),
                                 table.timestamp[rows].tolist(), table.boxes[rows].tolist(),
                                 table.action[rows].tolist(), table.score[rows].tolist()):
        key = (names[v], t)
        persons = acc.get(key)
        if persons is None:
            persons = acc[key] = {}
            out[key] = KeyframeRecord(names[v], t, np.zeros((0, 4), np.float32), [],
                                      np.zeros(0, np.float32),
                                      f"{table.source}:{int(table.line[r])}")
        entry = persons.setdefault(tuple(b), [[], 1.0 if not score_is_detector else sc])
        if score_is_detector:
            entry[1] = max(entry[1], sc)
        if a != -1 and a not in entry[0]:
            entry[0].append(a)
    for key, rec in out.items():
        persons = acc[key]
        rec.boxes = np.asarray(list(persons), np.float32).reshape(-1, 4)
        rec.labels = [e[0] for e in persons.values()]
        rec.scores = np.asarray([e[1] for e in persons.values()], np.float32)
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
        idx = parse_int(parts[2], "frame_idx", path, ln)
        per = frames.setdefault(parts[0], {})
        if idx in per:
            raise AvaFormatError(path, ln, f"frame {idx} of {parts[0]} listed twice")
        per[idx] = parts[3]
    return {v: [p for _, p in sorted(d.items())] for v, d in frames.items()}
