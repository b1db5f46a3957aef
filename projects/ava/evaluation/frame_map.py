"""AVA frame-mAP: Pascal VOC average precision at IoU 0.5 per class of the label map.

Two protocols, chosen by name and reported with the result:

``activitynet`` (default): the official ActivityNet evaluator (``activitynet/ActivityNet``,
    ``Evaluation/get_ava_performance.py`` with ``--exclusions``,
    ``ava/object_detection_evaluation.py``, ``ava/per_image_evaluation.py``, ``ava/metrics.py``),
    result for result:

    - rows whose action id is not in the label map are ignored (we count them);
    - excluded ``(video, timestamp)`` frames are skipped in ground truth and detections;
    - at most 50 detections per frame, the highest scores (ties resolved as the official heap);
    - detections without a positive extent (not ``x1 < x2 and y1 < y2``: zero-area, inverted
      or NaN boxes) are dropped after the cap, where they took slots;
    - boxes are taken as they are: coordinates outside [0, 1] are not clipped;
    - detections on frames without ground truth are false positives;
    - matching per frame and class as in :mod:`.matching`;
    - per class, detections of all frames (frames in first-seen order of the detection file)
      are sorted with numpy's default ``argsort`` of the scores, reversed (the same call, so
      equal scores end up in the same order); AP = VOC area under the precision envelope
      (precision made non-increasing, summed over the recall steps); a class with ground
      truth and no detection has AP 0; a class without ground truth has no AP (NaN, JSON null);
    - mAP = mean over the classes that have an AP (``nanmean``).

``mmaction2``: mmaction2's ``ava_eval(..., ignore_empty_frames=True)``
    (``mmaction/evaluation/functional/ava_utils.py``): only frames with ground truth are
    evaluated (detections elsewhere are ignored, not false positives); no per-frame cap, no
    zero-area filter; boxes and scores in float32; the ground-truth count of a class includes
    rows in excluded frames; only classes with at least one evaluated detection get an AP.

Inputs that the official code reads but that look wrong are scored as it scores them, and
reported (``FrameMapResult.warnings`` / ``counts``; :func:`.io.box_findings`): coordinates
outside [0, 1], inverted or zero-area boxes, non-finite numbers, repeated rows, action ids
outside the label map's id range, and inverted ground-truth boxes that share a frame and class
with a detection (there the official code stops with ``ValueError('Invalid box data')``; here
they are scored arithmetically). ``strict=True`` refuses them instead, naming ``file:line``.

Breakdown (optional): mean AP of the person-movement (PM), object-manipulation (OM) and
person-interaction (PI) classes, from the label map's ``label_type`` fields when every class has
one, else by AVA id ranges (1-14 PM, 15-63 OM, 64+ PI, mmaction2's rule; always used for the
``mmaction2`` protocol).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional

import numpy as np

from .io import (FINDINGS, BoxTable, Exclusions, Finding, LabelMap, box_findings,
                 empty_exclusions, finding, raise_findings)
from .matching import (frame_codes, gt_order_ranks, match_detections, order_frames,
                       replay_gt_ranks)

PROTOCOLS = ("activitynet", "mmaction2")
DEFAULT_CAPACITY = 50  # detections kept per frame by the official reader
GROUP_NAMES = {"PERSON_MOVEMENT": "PM", "OBJECT_MANIPULATION": "OM", "PERSON_INTERACTION": "PI"}


@dataclasses.dataclass
class FrameMapResult:
    """Frame-mAP of one evaluation (values are fractions in [0, 1], NaN = no AP).

    Attributes:
        protocol: ``"activitynet"`` or ``"mmaction2"``.
        class_ids / class_names: the label map's classes, in its order.
        ap: (C,) float64 AP per class.  mean_ap: ``nanmean(ap)`` (NaN when no class has one).
        num_gt: (C,) ground-truth boxes counted per class.
        num_det: (C,) detections entering each class's precision/recall.
        counts: row and frame counts (read, ignored, excluded, capped ...), see ``evaluate``.
        groups: ``{"PM": mAP, "OM": ..., "PI": ...}`` when a breakdown was asked for.
        group_source: ``"label_type"`` or ``"id ranges"``.
        findings: what looks wrong in the inputs (scored anyway; see the module docstring).
    """

    protocol: str
    class_ids: List[int]
    class_names: List[str]
    ap: np.ndarray
    mean_ap: float
    num_gt: np.ndarray
    num_det: np.ndarray
    counts: Dict[str, int]
    groups: Optional[Dict[str, float]] = None
    group_source: Optional[str] = None
    findings: List[Finding] = dataclasses.field(default_factory=list)

    @property
    def warnings(self) -> List[str]:
        """One line per finding: ``file:line: N rows ... (first here)``."""
        return [str(f) for f in self.findings]

    def per_class(self) -> Dict[str, Optional[float]]:
        """``{class_name: AP or None}`` for every class of the label map."""
        return {n: _num(a) for n, a in zip(self.class_names, self.ap.tolist())}

    def to_json_dict(self) -> Dict[str, object]:
        """``{"mAP", "per_class", "protocol", "counts", "warnings"[, "groups",
        "group_source"]}``."""
        out: Dict[str, object] = {"mAP": _num(self.mean_ap), "per_class": self.per_class(),
                                  "protocol": self.protocol, "counts": dict(self.counts),
                                  "warnings": self.warnings}
        if self.groups is not None:
            out["groups"] = {k: _num(v) for k, v in self.groups.items()}
            out["group_source"] = self.group_source
        return out

    def summary_lines(self) -> List[str]:
        """Human-readable report: protocol, mAP, breakdown, per-class APs, counts."""
        lines = [f"protocol: {self.protocol}", f"mAP@0.5IOU: {_fmt(self.mean_ap)}"]
        if self.groups is not None:
            lines.append(f"breakdown ({self.group_source}): " + ", ".join(
                f"{k} {_fmt(v)}" for k, v in self.groups.items()))
        lines.append("per class (id, AP, #gt, #det, name):")
        for cid, n, a, g, d in zip(self.class_ids, self.class_names, self.ap.tolist(),
                                   self.num_gt.tolist(), self.num_det.tolist()):
            lines.append(f"  {cid:3d}  {_fmt(a):>7}  {g:7d}  {d:8d}  {n}")
        lines.append("counts: " + ", ".join(f"{k}={v}" for k, v in self.counts.items()))
        if self.findings:
            lines.append(f"warnings ({len(self.findings)}; scored as the official evaluator "
                         "scores them, --strict refuses them):")
            lines += [f"  {w}" for w in self.warnings]
        return lines


def _num(v: float) -> Optional[float]:
    return None if v is None or math.isnan(v) else float(v)


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4f}"


def nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN (no warning) when there are none."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or np.isnan(v).all():
        return float("nan")
    return float(np.nanmean(v))


def voc_average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """VOC AP of one class (``metrics.compute_precision_recall`` + ``compute_average_precision``).

    Args:
        scores: (K,) detection scores (float64, or float32 for mmaction2), in visiting order;
            sorted here with numpy's default argsort, reversed, as the official code does.
        tp: (K,) bool true-positive flags.  num_gt: ground-truth boxes of the class.

    Returns:
        AP in [0, 1]; NaN when ``num_gt == 0``; 0.0 when there are no detections.
    """
    if num_gt == 0:
        return float("nan")
    if scores.size == 0:
        return 0.0
    t = tp[np.argsort(scores)[::-1]].astype(np.int64)
    ctp, cfp = np.cumsum(t), np.cumsum(1 - t)
    precision = ctp.astype(np.float64) / (ctp + cfp)
    recall = ctp.astype(np.float64) / np.int64(num_gt)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))


def class_groups(labelmap: LabelMap, protocol: str = "activitynet"):
    """``({group: [class index]}, source)`` for the PM / OM / PI breakdown (module docstring)."""
    groups: Dict[str, List[int]] = {}
    if protocol == "activitynet" and all(t is not None for t in labelmap.types):
        for i, t in enumerate(labelmap.types):
            groups.setdefault(GROUP_NAMES.get(t, t), []).append(i)
        return groups, "label_type"
    for i, cid in enumerate(labelmap.ids):
        g = "PM" if cid <= 14 else ("OM" if cid < 64 else "PI")
        groups.setdefault(g, []).append(i)
    return {k: groups[k] for k in ("PM", "OM", "PI") if k in groups}, "id ranges"


def evaluate(groundtruth: BoxTable, detections: BoxTable, labelmap: LabelMap,
             exclusions: Optional[Exclusions] = None, protocol: str = "activitynet",
             iou_threshold: float = 0.5, capacity: int = DEFAULT_CAPACITY,
             breakdown: bool = False, strict: bool = False) -> FrameMapResult:
    """Frame-mAP of ``detections`` against ``groundtruth`` (see the module docstring).

    Args:
        groundtruth, detections: tables from :func:`.io.read_box_csv` (or built in memory);
            boxes are normalised ``x1, y1, x2, y2``.
        labelmap: the evaluated classes.  exclusions: frames to skip (None: none).
        protocol: ``"activitynet"`` or ``"mmaction2"``.
        iou_threshold: matching IoU.  capacity: detections per frame (activitynet only).
        breakdown: also compute the PM / OM / PI means.
        strict: raise :class:`.io.AvaFormatError` at the first finding instead of scoring it.

    Returns:
        :class:`FrameMapResult`; ``counts`` holds ``gt_rows``, ``gt_rows_out_of_map``,
        ``gt_rows_excluded``, ``gt_frames``, ``det_rows``, ``det_rows_out_of_map``,
        ``det_rows_excluded``, ``det_rows_over_frame_cap``, ``det_rows_invalid_box``,
        ``det_rows_on_frames_without_gt`` (false positives for activitynet, ignored for
        mmaction2), ``det_rows_evaluated``, ``excluded_frames``, and per finding kind
        ``gt_rows_<kind>`` / ``det_rows_<kind>`` (:data:`.io.FINDINGS`, ``id_out_of_range``)
        and ``gt_boxes_inverted_with_detections``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if len(labelmap) == 0:
        raise ValueError("the label map has no classes")
    mm = protocol == "mmaction2"
    ex = exclusions if exclusions is not None else empty_exclusions()
    gt, det = groundtruth, detections
    g_fr, d_fr, x_fr = frame_codes(
        [(gt.video_names, gt.video), (det.video_names, det.video), (ex.video_names, ex.video)],
        [gt.timestamp, det.timestamp, ex.timestamp])
    ids = np.asarray(labelmap.ids, dtype=np.int64)
    n_cls = len(ids)
    id_sort = np.argsort(ids)

    def class_index(action: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(ids[id_sort], action), 0, n_cls - 1)
        return np.where(ids[id_sort][pos] == action, id_sort[pos], -1)

    g_cls, d_cls = class_index(gt.action), class_index(det.action)
    found = {who: _table_findings(t, ids) for who, t in (("gt", gt), ("det", det))}
    g_ex, d_ex = np.isin(g_fr, x_fr), np.isin(d_fr, x_fr)
    counts = {"gt_rows": len(gt), "gt_rows_out_of_map": int((g_cls < 0).sum()),
              "gt_rows_excluded": int(((g_cls >= 0) & g_ex).sum())}
    g_rows = np.flatnonzero((g_cls >= 0) & ~g_ex)
    gt_frames = np.unique(g_fr[g_rows])
    counts["gt_frames"] = int(gt_frames.size)
    for who, fs in found.items():
        counts.update({f"{who}_rows_{k}": 0 for k in (*FINDINGS, "id_out_of_range")})
        counts.update({f"{who}_rows_{f.code}": f.count for f in fs})
    counts.update(det_rows=len(det), det_rows_out_of_map=int((d_cls < 0).sum()),
                  det_rows_excluded=int(((d_cls >= 0) & d_ex).sum()))
    d_rows = np.flatnonzero((d_cls >= 0) & ~d_ex)
    on_gt = np.isin(d_fr[d_rows], gt_frames)
    counts["det_rows_on_frames_without_gt"] = int((~on_gt).sum())
    if mm:
        d_rows = d_rows[on_gt]

    # per-frame visiting order (and the official cap), then the zero-area filter
    k_rows, pos, n_capped = order_frames(d_rows, d_fr, det.score, det.action, det.boxes,
                                         0 if mm else capacity, replay=not mm)
    counts["det_rows_over_frame_cap"] = n_capped
    zero = np.zeros(k_rows.size, bool)
    if not mm:  # the official _remove_invalid_boxes keeps x1 < x2 and y1 < y2 (False for NaN)
        b = det.boxes[k_rows]
        zero = ~((b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3]))
        # what the official evaluator scores as false positives on frames without GT
        counts["det_rows_on_frames_without_gt"] = int(
            (~np.isin(d_fr[k_rows[~zero]], gt_frames)).sum())
    counts["det_rows_invalid_box"] = int(zero.sum())
    k_rows, pos = k_rows[~zero], pos[~zero]
    findings = found["gt"] + found["det"]
    if not mm:
        crash = _inverted_gt_with_detections(gt, g_rows, g_fr, g_cls, d_fr[k_rows] * n_cls
                                             + d_cls[k_rows], n_cls)
        counts["gt_boxes_inverted_with_detections"] = int(crash.size)
        bad = finding("inverted_gt_with_detections", np.isin(np.arange(len(gt)), crash), gt,
                      "with an inverted ground-truth box in a frame and class that has a "
                      "detection: the official evaluator stops with ValueError('Invalid box "
                      "data') on this file; here it is scored as is (IoU 0)")
        findings += [bad] if bad is not None else []
    if strict:
        raise_findings(findings)

    # matching, per frame and class
    g_rank = gt_order_ranks(g_rows, g_fr, gt.score)
    replayed: set = set()
    nan_gt = g_fr[g_rows][np.isnan(gt.score[g_rows])]
    if nan_gt.size and not mm:  # NaN person ids: the heap/sort order is replayed
        replay_gt_ranks(nan_gt, g_rows, g_fr, gt.score, gt.action, gt.boxes, g_rank, replayed)

    def rerank(groups: np.ndarray) -> None:
        replay_gt_ranks(groups // n_cls, g_rows, g_fr, gt.score, gt.action, gt.boxes, g_rank,
                        replayed)

    tp = match_detections(d_fr[k_rows] * n_cls + d_cls[k_rows], pos, det.boxes[k_rows],
                          g_fr[g_rows] * n_cls + g_cls[g_rows], g_rank, gt.boxes[g_rows],
                          iou_threshold, float32=mm, gt_rerank=None if mm else rerank)

    # per-class score lists: frames in first-seen order (detection file, or GT file for mm)
    ref_fr, ref_rows = (g_fr, g_rows) if mm else (d_fr, d_rows)
    first_seen = np.full(int(max(g_fr.max(initial=-1), d_fr.max(initial=-1))) + 1,
                         np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_seen, ref_fr[ref_rows], ref_rows)
    order = np.lexsort((pos, first_seen[d_fr[k_rows]]))
    cls_o = d_cls[k_rows][order]
    by_cls = np.argsort(cls_o, kind="stable")
    score_o = det.score[k_rows][order][by_cls]
    if mm:
        score_o = score_o.astype(np.float32)
    tp_o = tp[order][by_cls]
    bounds = np.searchsorted(cls_o[by_cls], np.arange(n_cls + 1))
    if mm:
        num_gt = np.bincount(g_cls[g_cls >= 0], minlength=n_cls)  # excluded frames included
    else:
        num_gt = np.bincount(g_cls[g_rows], minlength=n_cls)
    num_det = np.diff(bounds)
    ap = np.full(n_cls, np.nan)
    for c in range(n_cls):
        if mm and num_det[c] == 0:
            continue  # mmaction2 reports only classes with detections
        s, e = bounds[c], bounds[c + 1]
        ap[c] = voc_average_precision(score_o[s:e], tp_o[s:e], int(num_gt[c]))
    counts["det_rows_evaluated"] = int(k_rows.size)
    counts["excluded_frames"] = int(np.unique(x_fr).size)
    if mm or int(ids.max()) > 100000:
        mean_ap = nanmean(ap)
    else:  # the official nanmean over an id-indexed array (same summation, same bits)
        full = np.full(int(ids.max()), np.nan)
        full[ids - 1] = ap
        mean_ap = nanmean(full)
    result = FrameMapResult(protocol, list(labelmap.ids), list(labelmap.names), ap, mean_ap,
                            num_gt.astype(np.int64), num_det.astype(np.int64), counts,
                            findings=findings)
    if breakdown:
        groups, source = class_groups(labelmap, protocol)
        result.groups = {k: nanmean(ap[v]) for k, v in groups.items()}
        result.group_source = source
    return result


def _table_findings(table: BoxTable, ids: np.ndarray) -> List[Finding]:
    """:func:`.io.box_findings` plus action ids outside the label map's id range (ids inside
    it that the map leaves out, e.g. the 20 AVA classes the 60-class map does not evaluate,
    are expected and only counted as ``*_rows_out_of_map``)."""
    out = box_findings(table)
    odd = (table.action < ids.min()) | (table.action > ids.max())
    f = finding("id_out_of_range", odd, table, f"with an action id outside the label map's "
                f"range {int(ids.min())}..{int(ids.max())} (ignored, as the official "
                "evaluator ignores every id not in the label map)")
    return out + ([f] if f is not None else [])


def _inverted_gt_with_detections(gt: BoxTable, g_rows: np.ndarray, g_fr: np.ndarray,
                                 g_cls: np.ndarray, det_groups: np.ndarray,
                                 n_cls: int) -> np.ndarray:
    """Rows of ``gt`` (evaluated, inverted) whose frame and class hold an evaluated detection:
    where the official ``np_box_list.BoxList`` raises."""
    b = gt.boxes[g_rows]
    inv = (b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3])
    rows = g_rows[inv]
    return rows[np.isin(g_fr[rows] * n_cls + g_cls[rows], det_groups)]
