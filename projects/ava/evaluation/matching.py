"""Vectorised building blocks of the AVA frame-mAP: frame keys, per-frame order and cap, IoU and
true/false-positive assignment.

Semantics of the official ActivityNet evaluator (``activitynet/ActivityNet``,
``Evaluation/get_ava_performance.py`` + ``ava/per_image_evaluation.py``, ``np_box_ops.py``):

- a frame is ``(video_id, int(timestamp))`` (the official key ``"%s,%04d"``);
- ``read_csv`` keeps, per frame, a min-heap of ``(score, action_id, y1, x1, y2, x2)`` tuples with
  ``capacity`` entries (50 for detections, unlimited for ground truth): a row is pushed while the
  heap is not full, else it replaces the smallest tuple when its score is strictly larger. The
  frame's rows are then ``sorted`` by descending score, a stable sort over the *heap's array
  layout*. That layout decides the order of equal scores; where it can change a result (ties
  at the cap boundary, or equal scores of one class with different boxes, or a detection whose
  best IoU is shared by different ground-truth boxes) :func:`official_frame_order` replays the
  reader exactly for that frame. Everywhere else the plain (score desc, file order) order is
  used: it keeps the same rows (the cap keeps the top scores, and without a tie at the boundary
  the heap keeps exactly those) and differs from the official one only between equal scores,
  i.e. only between rows that are either of different classes (never compared) or identical;
- IoU without a +1 offset: ``inter / (area_d + area_g - inter)``;
- per frame and class, detections are visited in that order; each takes the ground-truth box of
  maximal IoU (the first one in ground-truth order on ties) and is a true positive when the IoU
  is >= the threshold and that box is still unclaimed; otherwise it is a false positive (it does
  not fall back to another box).
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def frame_codes(videos: Sequence[Tuple[np.ndarray, np.ndarray]], timestamps: Sequence[np.ndarray]
                ) -> List[np.ndarray]:
    """Shared int64 frame codes for several tables.

    Args:
        videos: per table ``(video_names (V,) str, video (N,) int64 index)``.
        timestamps: per table (N,) int64.

    Returns:
        per table (N,) int64 codes; equal codes <=> same ``(video_id, timestamp)``.
    """
    names = np.concatenate([v[0] for v in videos]) if videos else np.zeros(0, str)
    _, name_code = np.unique(names, return_inverse=True)
    vcodes, off = [], 0
    for vn, vi in videos:
        vcodes.append(name_code[off:off + len(vn)][vi] if len(vi) else vi.astype(np.int64))
        off += len(vn)
    allv = np.concatenate(vcodes).astype(np.int64)
    allt = np.concatenate(list(timestamps)).astype(np.int64)
    if allt.size == 0:
        return [np.zeros(0, np.int64) for _ in timestamps]
    lo, hi = int(allt.min()), int(allt.max())
    span = hi - lo + 1
    if span * (int(allv.max()) + 1) < 2**62:
        key = allv * span + (allt - lo)
        _, codes = np.unique(key, return_inverse=True)
    else:  # huge timestamp range: unique over (video, timestamp) pairs
        _, codes = np.unique(np.stack([allv, allt], axis=1), axis=0, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    out, off = [], 0
    for t in timestamps:
        out.append(codes[off:off + len(t)])
        off += len(t)
    return out


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of every run of equal values in a sorted 1-D array."""
    if sorted_keys.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def rank_in_group(sorted_keys: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal keys (array sorted by key)."""
    n = sorted_keys.size
    starts = group_starts(sorted_keys)
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def reader_tuples(rows: np.ndarray, score: np.ndarray, action: np.ndarray, boxes: np.ndarray
                  ) -> List[tuple]:
    """The official reader's heap tuples ``(score, action_id, y1, x1, y2, x2)`` of ``rows``."""
    return list(zip(score[rows].tolist(), action[rows].tolist(), boxes[rows, 1].tolist(),
                    boxes[rows, 0].tolist(), boxes[rows, 3].tolist(), boxes[rows, 2].tolist()))


def official_frame_order(rows: np.ndarray, score: np.ndarray, action: np.ndarray,
                         boxes: np.ndarray, capacity: int) -> np.ndarray:
    """Replay the official reader on one frame's rows (given in file order).

    Returns:
        the kept row indices in the order the official evaluator visits them. Rows with
        identical tuples are interchangeable; any one of them stands for another.
    """
    tuples = reader_tuples(rows, score, action, boxes)
    heap: List[tuple] = []
    for t in tuples:
        if capacity < 1 or len(heap) < capacity:
            heapq.heappush(heap, t)
        elif t[0] > heap[0][0]:
            heapq.heapreplace(heap, t)
    slots: Dict[tuple, List[int]] = defaultdict(list)
    for r, t in zip(rows.tolist(), tuples):
        slots[t].append(r)
    return np.asarray([slots[t].pop() for t in sorted(heap, key=lambda t: -t[0])],
                      dtype=np.int64)


def order_frames(rows: np.ndarray, frame: np.ndarray, score: np.ndarray, action: np.ndarray,
                 boxes: np.ndarray, capacity: int, replay: bool
                 ) -> Tuple[np.ndarray, np.ndarray, int]:
    """Per-frame order (and cap) of the rows ``rows`` (ascending = file order).

    Args:
        rows: (R,) row indices to order; frame, score, action, boxes: per-row arrays of the table.
        capacity: rows kept per frame (< 1: all).
        replay: True = the official reader's order and cap (heap replayed where ties make it
            matter); False = the plain stable order (score desc, file order), mmaction2's.

    Returns:
        ``(kept_rows, pos, num_capped)``: kept rows grouped by frame (frames in ascending code
        order), ``pos`` (K,) the visiting position within the frame, and how many rows the
        cap dropped.
    """
    fr, sc = frame[rows], score[rows]
    order = np.lexsort((rows, -sc, fr))
    srows, sfr, ssc = rows[order], fr[order], sc[order]
    rank = rank_in_group(sfr)
    keep = rank < capacity if capacity >= 1 else np.ones(len(srows), bool)
    num_capped = int((~keep).sum())
    if not replay:
        return srows[keep], rank[keep], num_capped
    flagged = set(np.unique(sfr[np.isnan(ssc)]).tolist())  # NaN scores: heap order decides
    if capacity >= 1 and num_capped:
        # ambiguous cap: the first dropped row ties with the last kept one
        at_cap = np.flatnonzero(rank == capacity)
        tie = ssc[at_cap] == ssc[at_cap - 1]
        flagged.update(sfr[at_cap[tie]].tolist())
    krows = srows[keep]
    flagged.update(_frames_with_order_ties(krows, frame, score, action, boxes).tolist())
    if not flagged:
        return krows, rank[keep], num_capped
    in_fl = np.isin(sfr, np.asarray(sorted(flagged), dtype=np.int64))
    out_rows, out_pos = [srows[keep & ~in_fl]], [rank[keep & ~in_fl]]
    num_capped = int((~keep & ~in_fl).sum())
    fl_rows = srows[in_fl]
    fl_rows = fl_rows[np.lexsort((fl_rows, frame[fl_rows]))]  # per frame, in file order
    for s, e in _runs(frame[fl_rows]):
        got = official_frame_order(fl_rows[s:e], score, action, boxes, capacity)
        num_capped += (e - s) - len(got)
        out_rows.append(got)
        out_pos.append(np.arange(len(got), dtype=np.int64))
    krows, pos = np.concatenate(out_rows), np.concatenate(out_pos)
    regroup = np.lexsort((pos, frame[krows]))
    return krows[regroup], pos[regroup], num_capped


def _runs(sorted_keys: np.ndarray):
    """``(start, end)`` of each run of equal keys in a sorted array."""
    starts = group_starts(sorted_keys)
    ends = np.r_[starts[1:], sorted_keys.size]
    return zip(starts.tolist(), ends.tolist())


def _frames_with_order_ties(rows: np.ndarray, frame: np.ndarray, score: np.ndarray,
                            action: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Frames holding rows of one class with equal scores but different boxes."""
    if rows.size < 2:
        return np.zeros(0, np.int64)
    order = np.lexsort((score[rows], action[rows], frame[rows]))
    r = rows[order]
    same = ((frame[r[1:]] == frame[r[:-1]]) & (action[r[1:]] == action[r[:-1]])
            & (score[r[1:]] == score[r[:-1]]))
    differ = same & (boxes[r[1:]] != boxes[r[:-1]]).any(axis=1)
    return np.unique(frame[r[1:][differ]])


def pair_iou(det_boxes: np.ndarray, gt_boxes: np.ndarray, float32: bool = False) -> np.ndarray:
    """(P,) IoU of paired boxes (P, 4) ``x1, y1, x2, y2``, no +1 offset.

    The arithmetic (and, with ``float32``, the float32/float64 promotions of mmaction2's
    float32 boxes) follows ``np_box_ops.iou`` operation by operation, so values match bit for
    bit. A zero-area pair gives NaN (0 / 0), as there.
    """
    d = det_boxes.astype(np.float32) if float32 else det_boxes
    g = gt_boxes.astype(np.float32) if float32 else gt_boxes
    h = np.minimum(d[:, 3], g[:, 3]) - np.maximum(d[:, 1], g[:, 1])
    w = np.minimum(d[:, 2], g[:, 2]) - np.maximum(d[:, 0], g[:, 0])
    inter = np.maximum(0.0, h.astype(np.float64)) * np.maximum(0.0, w.astype(np.float64))
    area_d = (d[:, 3] - d[:, 1]) * (d[:, 2] - d[:, 0])
    area_g = (g[:, 3] - g[:, 1]) * (g[:, 2] - g[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / ((area_d + area_g) - inter)


def match_detections(det_group: np.ndarray, det_pos: np.ndarray, det_boxes: np.ndarray,
                     gt_group: np.ndarray, gt_rank: np.ndarray, gt_boxes: np.ndarray,
                     iou_threshold: float, float32: bool = False,
                     gt_rerank=None) -> np.ndarray:
    """True-positive flags of detections (see module docstring).

    Args:
        det_group / gt_group: (D,) / (G,) int64 ``frame * num_classes + class`` of each row.
        det_pos: (D,) visiting position of each detection within its frame.
        det_boxes / gt_boxes: (D, 4) / (G, 4) ``x1, y1, x2, y2``.
        gt_rank: (G,) position of each ground-truth box in its frame's order.
        gt_rerank: optional ``f(groups) -> None`` that rewrites ``gt_rank`` in place for the
            frames of the given group keys (called when different boxes tie for a detection's
            best IoU at or above the threshold).

    Returns:
        (D,) bool, True = true positive.
    """
    d_n = det_group.size
    tp = np.zeros(d_n, dtype=bool)
    if d_n == 0 or gt_group.size == 0:
        return tp
    g_order = np.argsort(gt_group, kind="stable")
    g_sorted = gt_group[g_order]
    lo = np.searchsorted(g_sorted, det_group, "left")
    cnt = np.searchsorted(g_sorted, det_group, "right") - lo
    has = np.flatnonzero(cnt > 0)
    if has.size == 0:
        return tp
    cnt_h = cnt[has]
    p_det = np.repeat(has, cnt_h)
    seg = np.r_[0, np.cumsum(cnt_h)[:-1]]
    p_gt = g_order[np.repeat(lo[has], cnt_h) + np.arange(p_det.size) - np.repeat(seg, cnt_h)]
    iou = pair_iou(det_boxes[p_det], gt_boxes[p_gt], float32)
    best = np.maximum.reduceat(iou, seg)  # NaN if any pair is NaN: argmax lands on it -> FP
    ok = best >= iou_threshold
    is_max = iou == np.repeat(best, cnt_h)
    n_max = np.add.reduceat(is_max.astype(np.int64), seg)
    tie = ok & (n_max > 1)
    if tie.any() and gt_rerank is not None:
        pm = is_max & np.repeat(tie, cnt_h)
        tb, td = gt_boxes[p_gt[pm]], np.repeat(np.arange(has.size), cnt_h)[pm]
        starts = group_starts(td)
        spread = (np.maximum.reduceat(tb, starts) != np.minimum.reduceat(tb, starts)).any(1)
        groups = det_group[has[td[starts[spread]]]]
        if groups.size:
            gt_rerank(groups)
    big = np.iinfo(np.int64).max
    key = np.where(is_max, gt_rank[p_gt], big)
    first = np.minimum.reduceat(key, seg)
    chosen = is_max & (key == np.repeat(first, cnt_h)) & np.repeat(ok, cnt_h)
    c_det, c_gt = p_det[chosen], p_gt[chosen]
    # each ground-truth box goes to the first detection (in visiting order) that chose it
    o = np.lexsort((det_pos[c_det], c_gt))
    c_det, c_gt = c_det[o], c_gt[o]
    winners = c_det[group_starts(c_gt)]
    tp[winners] = True
    return tp


def gt_order_ranks(rows: np.ndarray, frame: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(len(rows),) rank of each ground-truth row in its frame: score desc, then file order."""
    order = np.lexsort((rows, -score[rows], frame[rows]))
    ranks = np.empty(rows.size, np.int64)
    ranks[order] = rank_in_group(frame[rows][order])
    return ranks


def replay_gt_ranks(frames: np.ndarray, rows: np.ndarray, frame: np.ndarray, score: np.ndarray,
                    action: np.ndarray, boxes: np.ndarray, ranks: np.ndarray,
                    done: Optional[set] = None) -> None:
    """Rewrite ``ranks`` (aligned with ``rows``) for ``frames`` with the official GT order."""
    done = set() if done is None else done
    todo = [f for f in np.unique(frames).tolist() if f not in done]
    if not todo:
        return
    sel = np.flatnonzero(np.isin(frame[rows], todo))
    sel = sel[np.argsort(frame[rows[sel]], kind="stable")]
    where = {int(r): i for i, r in zip(sel.tolist(), rows[sel].tolist())}
    for s, e in _runs(frame[rows[sel]]):
        got = official_frame_order(rows[sel[s:e]], score, action, boxes, 0)
        for k, r in enumerate(got.tolist()):
            ranks[where[r]] = k
    done.update(todo)
