"""``prepare_ava.py validate``: every official AVA file in a tree, read by the task's own readers.

Recognised names (AVA download page, SlowFast ``DATASET.md``, the LFB person boxes that SlowFast
links; ``.gz`` allowed on CSVs):

=========================  =====================================================================
kind                       names
=========================  =====================================================================
ground truth               ``ava_{train,val}_v2.{1,2}.csv``
predicted boxes            ``ava_{train,val,test}_predicted_boxes.csv`` (LFB / SlowFast) and
                           ``ava_detection_{train,val,test}_boxes_and_labels[_include_negative]
                           [_v2.{1,2}].csv`` (``person_box_67091280_iou90/``)
exclusions                 ``ava_{train,val,test}_excluded_timestamps_v2.{1,2}.csv``
label maps                 ``ava_action_list_v2.{1,2}[_for_activitynet_{2018,2019}].pbtxt[.txt]``
frame lists                ``frame_lists/{train,val}.csv`` (any ``.csv`` under ``frame_lists/``)
timestamp / file lists     ``ava_included_timestamps_v2.{1,2}.txt``, ``ava_file_names_*.txt``
=========================  =====================================================================

Box files are read by :func:`.ava.read_ava_boxes` (the evaluator's reader and rules), so a row
that training or evaluation would refuse is refused here with ``file:line``; rows that look
wrong are counted as warnings. Frame lists are read by :func:`.ava.read_frame_list`, and a
sample of their frames (first, middle, last and every keyframe of up to ``sample`` videos) is
looked up on disk under the frame folder.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, List, Optional, Set, Tuple

from ..evaluation.io import (AvaFormatError, Finding, read_exclusions, read_labelmap, read_text,
                             split_lines)
from .ava import keyframe_frame_index, read_ava_boxes, read_frame_list

_V = r"_v2\.[12]"
PATTERNS: List[Tuple[str, re.Pattern]] = [
    ("groundtruth", re.compile(rf"ava_(train|val){_V}\.csv")),
    ("detections", re.compile(r"ava_(train|val|test)_predicted_boxes\.csv")),
    ("detections", re.compile(rf"ava_detection_(train|val|test)_boxes_and_labels"
                              rf"(_include_negative)?({_V})?\.csv")),
    ("exclusions", re.compile(rf"ava_(train|val|test)_excluded_timestamps{_V}\.csv")),
    ("labelmap", re.compile(rf"ava_action_list{_V}(_for_activitynet_20(18|19))?\.pbtxt"
                            r"(\.txt)?")),
    ("timestamps", re.compile(rf"ava_included_timestamps{_V}\.txt")),
    ("file_names", re.compile(r"ava_file_names_[\w.]+\.txt")),
]
SLOWFAST_SECONDS = (902, 1798)  # SlowFast's AVA_VALID_FRAMES: range(902, 1799)


def classify(path: str) -> Optional[str]:
    """The kind of an AVA file from its name (and ``frame_lists/`` folder), or None."""
    name = os.path.basename(path)
    base = name[:-3] if name.endswith(".gz") else name
    for kind, pattern in PATTERNS:
        if pattern.fullmatch(base):
            return kind
    if base.endswith(".csv") and os.path.basename(os.path.dirname(path)) == "frame_lists":
        return "frame_list"
    return None


@dataclasses.dataclass
class Report:
    """What ``validate`` found: one summary line per file, warnings, files not recognised."""

    lines: List[str] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)
    unknown: List[str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        out = list(self.lines)
        if self.unknown:
            more = f" (+{len(self.unknown) - 10} more)" if len(self.unknown) > 10 else ""
            out.append(f"not recognised (skipped): {', '.join(self.unknown[:10])}{more}")
        out.append(f"warnings: {len(self.warnings)}")
        out += [f"  {w}" for w in self.warnings]
        return "\n".join(out)


def validate_tree(root: str, num_classes: int = 80, frame_dir: Optional[str] = None,
                  sample: int = 20) -> Report:
    """Read every recognised file under ``root`` (walked recursively).

    Args:
        root: the AVA folder (``annotations/``, ``frame_lists/``, ...) or one of its folders.
        num_classes: model outputs; action ids outside ``1..num_classes`` are errors.
        frame_dir: where frame-list paths live (default: ``frames`` next to ``frame_lists``).
        sample: videos per frame list whose frames are looked up on disk.

    Raises:
        AvaFormatError: the first row a reader refuses (``file:line``).
    """
    rep = Report()
    valid = set(range(1, num_classes + 1))
    gt_videos: Dict[str, Set[str]] = {}
    keyframes: Dict[str, Set[int]] = {}
    found_files = []
    skip = {os.path.abspath(frame_dir)} if frame_dir else set()
    for folder, dirs, files in os.walk(root):
        # frames and videos are looked up from the frame lists, not walked (millions of files)
        dirs[:] = sorted(d for d in dirs if d not in ("frames", "videos")
                         and os.path.abspath(os.path.join(folder, d)) not in skip)
        found_files += [os.path.join(folder, name) for name in sorted(files)]
    kinds = [(p, os.path.relpath(p, root), classify(p)) for p in found_files]
    listed: Set[str] = set()
    # frame lists last: their keyframes come from the ground truth
    for path, rel, kind in sorted(kinds, key=lambda x: x[2] == "frame_list"):
        if kind is None:
            rep.unknown.append(rel)
        elif kind in ("groundtruth", "detections"):
            found: List[Finding] = []
            recs = read_ava_boxes(path, valid, allow_unlabelled=kind == "detections",
                                  findings=found)
            rep.warnings += [str(f) for f in found]
            secs = sorted({r.timestamp for r in recs.values()})
            odd = [s for s in secs if not SLOWFAST_SECONDS[0] <= s <= SLOWFAST_SECONDS[1]]
            if odd:
                rep.warnings.append(f"{path}: {len(odd)} keyframe seconds outside "
                                    f"{SLOWFAST_SECONDS[0]}..{SLOWFAST_SECONDS[1]} (SlowFast's"
                                    f" AVA_VALID_FRAMES), e.g. {odd[:3]}")
            vids = {r.video_id for r in recs.values()}
            labelled = sum(sum(1 for x in r.labels if x) for r in recs.values())
            rep.lines.append(f"{rel}: {kind}, {len(recs)} keyframes, "
                             f"{sum(len(r.boxes) for r in recs.values())} boxes "
                             f"({labelled} labelled), {len(vids)} videos")
            if kind == "groundtruth":
                gt_videos[rel] = vids
                for r in recs.values():
                    keyframes.setdefault(r.video_id, set()).add(r.timestamp)
        elif kind == "labelmap":
            lm = read_labelmap(path)
            rep.lines.append(f"{rel}: label map, {len(lm)} classes (ids {min(lm.ids)}.."
                             f"{max(lm.ids)})")
            over = [i for i in lm.ids if i not in valid]
            if over:
                rep.warnings.append(f"{path}: class ids {over[:5]} outside the model's "
                                    f"1..{num_classes}")
        elif kind == "exclusions":
            rep.lines.append(f"{rel}: exclusions, {len(read_exclusions(path))} keyframes")
        elif kind in ("timestamps", "file_names"):
            rows = [s for s in split_lines(read_text(path)) if s.strip()]
            rep.lines.append(f"{rel}: {kind.replace('_', ' ')} list, {len(rows)} entries")
        else:
            listed |= _check_frame_list(path, rel, frame_dir, sample, keyframes, rep)
    for rel, vids in gt_videos.items():
        gone = sorted(vids - listed)
        if listed and gone:
            rep.warnings.append(f"{os.path.join(root, rel)}: {len(gone)} of {len(vids)} videos "
                                f"are in no frame list, e.g. {gone[0]}")
    if not rep.lines:
        rep.warnings.append(f"{root}: no AVA file recognised (names: see "
                            "projects/ava/README.md)")
    return rep


def _check_frame_list(path: str, rel: str, frame_dir: Optional[str], sample: int,
                      keyframes: Dict[str, Set[int]], rep: Report) -> Set[str]:
    """Frame counts per video and a sample of frame files looked up on disk; returns the
    listed videos."""
    videos = read_frame_list(path)
    folder = frame_dir or os.path.join(os.path.dirname(os.path.dirname(path)), "frames")
    counts = [len(v) for v in videos.values()]
    rep.lines.append(f"{rel}: frame list, {len(videos)} videos, "
                     f"{min(counts, default=0)}..{max(counts, default=0)} frames per video")
    if not os.path.isdir(folder):
        rep.warnings.append(f"{path}: frame folder {folder} not found; frames not checked")
        return set(videos)
    missing: List[str] = []
    checked = 0
    for vid in sorted(videos)[:sample]:
        frames = videos[vid]
        idx = {0, len(frames) // 2, len(frames) - 1}
        idx |= {min(max(keyframe_frame_index(s), 0), len(frames) - 1)
                for s in keyframes.get(vid, ())}
        for i in sorted(idx):
            checked += 1
            if not os.path.isfile(os.path.join(folder, frames[i])):
                missing.append(os.path.join(folder, frames[i]))
    rep.lines.append(f"{rel}: {checked} frames of {min(sample, len(videos))} videos looked up "
                     f"in {folder}: {checked - len(missing)} found")
    if missing:
        rep.warnings.append(f"{path}: {len(missing)} of {checked} sampled frames missing, "
                            f"e.g. {missing[0]}")
    return set(videos)


__all__ = ["AvaFormatError", "PATTERNS", "Report", "classify", "validate_tree"]
