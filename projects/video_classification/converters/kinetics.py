"""Kinetics-400/600/700 annotations -> canonical manifests (``mvit_tasks.data.manifest``).

Input formats:

- The official CSVs (DeepMind / CVDF ``kinetics-dataset``; read by the ActivityNet crawler
  ``Crawler/Kinetics/download.py``): header ``label,youtube_id,time_start,time_end,split``
  (Kinetics-700-2020 adds ``is_cc``; the unlabelled test CSVs have no ``label`` column).
  The crawler names each trimmed clip ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`` and
  puts it either flat in one folder or under ``<split>/<label>/`` (label folders with spaces or
  underscores). The files are found by name anywhere under the video root, whatever the layout,
  and any video extension (``.mp4``, ``.mkv``, ``.webm``, ...).
- PySlowFast's plain lists (``slowfast/datasets/kinetics.py``): one ``path label`` line per clip,
  ``label`` an integer, ``path`` relative to ``DATA.PATH_PREFIX``, fields separated by
  ``DATA.PATH_LABEL_SEPARATOR`` (a space by default).

Outputs: ``<split>.csv`` manifests (``path,label,video_id,start_sec,end_sec``; labels as class
names; ``video_id`` = ``{youtube_id}_{start:06d}_{end:06d}``), ``labels.txt`` (the sorted class
names of the training CSV: 400/600/700 lines) and ``missing_<split>.txt`` for annotated clips
whose video file was not found (skipped and counted, never dropped silently).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from mvit_tasks.data.manifest import (
    iter_csv_rows,
    ClipRecord,
    ManifestError,
    read_class_list,
)

from ._common import (VIDEO_EXTENSIONS, StagedOutputs, check_not_input, index_media,
                      new_summary, write_missing)

DEFAULT_NAME_FORMAT = "{youtube_id}_{time_start:06d}_{time_end:06d}"
UNTRIMMED_NAME_FORMAT = "{youtube_id}"

ClassesArg = Optional[Union[str, Sequence[str]]]


@dataclasses.dataclass(frozen=True)
class KineticsRow:
    """One row of an official Kinetics CSV; ``label`` is ``None`` for an unlabelled row.

    ``time_start`` / ``time_end`` are seconds (``int`` when whole, as in the official files).
    """

    youtube_id: str
    time_start: Union[int, float]
    time_end: Union[int, float]
    label: Optional[str]
    split: str
    line: int

    @property
    def clip_id(self) -> str:
        """``{youtube_id}_{time_start:06d}_{time_end:06d}``: unique per clip."""
        return f"{self.youtube_id}_{_fmt_time(self.time_start)}_{_fmt_time(self.time_end)}"


def _fmt_time(t: Union[int, float]) -> str:
    return f"{t:06d}" if isinstance(t, int) else f"{t:g}"


def _parse_time(value: str, path: str, line: int, column: str) -> Union[int, float]:
    try:
        t = float(value)
    except ValueError:
        raise ManifestError(path, line, f"column {column!r}: {value!r} is not a number") from None
    if not math.isfinite(t):
        raise ManifestError(path, line, f"column {column!r}: {value!r} is not a finite time")
    if t < 0:
        raise ManifestError(path, line, f"column {column!r}: negative time {value!r}")
    return int(t) if t.is_integer() else t


def read_kinetics_csv(path: str, labelled: bool = True) -> List[KineticsRow]:
    """Parse an official Kinetics CSV.

    Args:
        path: the CSV (``label,youtube_id,time_start,time_end,split[,is_cc]``, any column order).
        labelled: every row needs a label. If False (a test split) the ``label`` column may be
            absent or empty (``label=None``).

    Raises:
        ManifestError: missing column or field, bad time, missing label; names file and line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Kinetics CSV not found: '{path}'")
    rows: List[KineticsRow] = []
    seen: Dict[str, int] = {}
    required = ("label",) * labelled + ("youtube_id", "time_start", "time_end")
    for line, row, col in iter_csv_rows(path, required, "a Kinetics CSV header", lower=True,
                                        encoding="utf-8-sig"):
        yid = row[col["youtube_id"]].strip()
        if not yid:
            raise ManifestError(path, line, "empty 'youtube_id'")
        start = _parse_time(row[col["time_start"]].strip(), path, line, "time_start")
        end = _parse_time(row[col["time_end"]].strip(), path, line, "time_end")
        if end <= start:
            raise ManifestError(path, line, f"time_end {end} <= time_start {start}")
        label: Optional[str] = None
        if "label" in col:
            label = row[col["label"]].strip() or None
            if label is None and labelled:
                raise ManifestError(path, line, "empty 'label' (only unlabelled splits, e.g. "
                                                "test, may lack labels)")
        split = row[col["split"]].strip() if "split" in col else ""
        rec = KineticsRow(yid, start, end, label, split, line)
        if rec.clip_id in seen:
            raise ManifestError(path, line, f"duplicate clip {rec.clip_id!r} (first on line "
                                            f"{seen[rec.clip_id]})")
        seen[rec.clip_id] = line
        rows.append(rec)
    return rows


def _norm(name: str) -> str:
    """Folder-name key: lower case letters and digits only ('air_drumming' == 'air drumming')."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _pick(candidates: List[str], row: KineticsRow, split: str) -> str:
    """Among several files with the clip's name prefer the one under its label / split folder."""
    if len(candidates) == 1:
        return candidates[0]
    wanted_label = _norm(row.label or "")
    wanted_split = {_norm(split), _norm(row.split)} - {""}

    def score(p: str) -> int:
        parts = [_norm(x) for x in p.split(os.sep)[:-1]]
        return 2 * (bool(wanted_label) and wanted_label in parts) + \
            any(s in parts for s in wanted_split)

    return max(candidates, key=score)  # max() keeps the first (sorted) among equal scores


def _resolve_classes(classes: ClassesArg) -> Optional[List[str]]:
    if classes is None:
        return None
    if isinstance(classes, str):
        return read_class_list(classes)
    return list(classes)


def convert_kinetics(
    splits: Mapping[str, str],
    video_root: str,
    out_dir: str,
    name_format: str = DEFAULT_NAME_FORMAT,
    classes: ClassesArg = None,
    num_classes: Optional[int] = None,
    unlabelled_splits: Sequence[str] = ("test",),
    segments: bool = False,
) -> Dict[str, Any]:
    """Convert official Kinetics CSVs into ``<split>.csv`` manifests and ``labels.txt``.

    Args:
        splits: output split name -> official CSV, e.g. ``{"train": "k400/train.csv",
            "val": "k400/validate.csv", "test": "k400/test.csv"}``.
        video_root: folder holding the videos, flat or in ``<split>/<label>/`` sub-folders.
        out_dir: where manifests, ``labels.txt`` and missing lists go. Put it at or above
            ``video_root`` to get relative paths in the manifests.
        name_format: ``str.format`` pattern of a video's file name without extension; fields
            ``youtube_id``, ``time_start``, ``time_end`` (int seconds), ``label``, ``split``.
            Use ``"{youtube_id}"`` with ``segments=True`` for full (untrimmed) downloads.
        classes: class names (list or ``labels.txt`` path). Default: the sorted labels of the
            ``train`` split.
        num_classes: expected class count (400/600/700); a mismatch is an error.
        unlabelled_splits: splits whose CSV may lack labels (no ``label`` column or empty
            fields); such rows are written with label ``-1``. Other splits need every label.
        segments: write ``start_sec``/``end_sec`` from the CSV (the files are whole videos).

    Returns:
        The summary (see ``_common.new_summary``); per split also ``ambiguous``: rows whose
        name matched several files (the one under the label/split folder was taken).

    Raises:
        ManifestError: malformed CSV row, or a label that is not a class; names file and line.
        ValueError: no class source, wrong class count, a name pattern with folders, or an
            output that would overwrite an input.
    """
    if os.sep in name_format or "/" in name_format:
        raise ValueError(f"name_format {name_format!r} must be a file name: folders under "
                         "video_root are searched automatically")
    check_not_input([os.path.join(out_dir, f"{s}.csv") for s in splits], splits.values())
    parsed = {s: read_kinetics_csv(p, s not in unlabelled_splits) for s, p in splits.items()}
    names = _resolve_classes(classes)
    if names is None:
        if "train" not in parsed:
            raise ValueError("no 'train' split to take the classes from: pass classes=")
        names = sorted({r.label for r in parsed["train"] if r.label is not None})
    if num_classes is not None and len(names) != num_classes:
        source = splits.get("train") if classes is None else "the class list"
        raise ValueError(f"{source} has {len(names)} classes, expected {num_classes}")
    index = {n: i for i, n in enumerate(names)}

    media = index_media(video_root, VIDEO_EXTENSIONS)
    os.makedirs(out_dir, exist_ok=True)
    summary = new_summary("kinetics", out_dir)
    stage = StagedOutputs()  # nothing is written before every split has validated
    labels_file = os.path.join(out_dir, "labels.txt")
    stage.write_class_list(labels_file, names)
    summary.update(labels_file=labels_file, num_classes=len(names))
    for split, rows in parsed.items():
        csv_path = splits[split]
        records: List[ClipRecord] = []
        missing: List[str] = []
        ambiguous = 0
        for r in rows:
            if r.label is not None and r.label not in index:
                raise ManifestError(csv_path, r.line,
                                    f"unknown label {r.label!r} (not among the {len(names)} "
                                    "classes)")
            try:
                stem = name_format.format(youtube_id=r.youtube_id, time_start=r.time_start,
                                          time_end=r.time_end, label=r.label or "", split=split)
            except (KeyError, IndexError, ValueError) as e:
                raise ManifestError(csv_path, r.line,
                                    f"cannot build the file name with {name_format!r}: {e}") \
                    from None
            found = media.get(stem)
            if not found:
                missing.append(f"{stem}\t{csv_path}:{r.line}")
                continue
            ambiguous += len(found) > 1
            label = -1 if r.label is None else index[r.label]
            start, end = (float(r.time_start), float(r.time_end)) if segments else (None, None)
            records.append(ClipRecord(_pick(found, r, split), label, r.clip_id, start, end,
                                      r.line))
        manifest = os.path.join(out_dir, f"{split}.csv")
        n = stage.write_manifest(manifest, records, classes=names)
        summary["splits"][split] = {
            "manifest": manifest, "source": csv_path, "rows": n, "missing": len(missing),
            "missing_file": write_missing(stage, out_dir, split, missing),
            "ambiguous": ambiguous}
    _check_across_splits(parsed, splits)
    stage.commit()
    return summary


def _check_across_splits(parsed: Mapping[str, List[KineticsRow]],
                         splits: Mapping[str, str]) -> None:
    """A clip in two splits (train and val) is an error naming both places."""
    where: Dict[str, str] = {}
    for split, rows in parsed.items():
        for r in rows:
            other = where.get(r.clip_id)
            if other is not None:
                raise ManifestError(splits[split], r.line, f"clip {r.clip_id!r} is also in "
                                                           f"{other}")
            where[r.clip_id] = f"{splits[split]}:{r.line}"


def convert_path_label_list(
    list_file: str,
    out_file: str,
    path_prefix: str = "",
    separator: str = " ",
    classes: ClassesArg = None,
    num_classes: Optional[int] = None,
    allow_unlabelled: bool = False,
) -> Dict[str, Any]:
    """Convert a PySlowFast ``path label`` list into one canonical manifest.

    A line is split at the *last* ``separator``, so paths may contain it (Kinetics folders like
    ``air drumming/``). Paths are joined with ``path_prefix`` (``DATA.PATH_PREFIX``); clips whose
    file does not exist are skipped and listed in ``missing_<name>.txt`` next to ``out_file``.

    Args:
        list_file: the list (e.g. SlowFast's ``train.csv``).
        out_file: the manifest to write.
        path_prefix: folder the listed paths are relative to.
        separator: field separator (``DATA.PATH_LABEL_SEPARATOR``).
        classes: class names (list or file): the manifest then holds names and ``labels.txt``
            is written next to it; without them it holds indices.
        num_classes: labels must be below it (default ``len(classes)`` when given).
        allow_unlabelled: accept label ``-1``.

    Raises:
        ManifestError: a line without a label, a non-integer or out-of-range label.
    """
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"list file not found: '{list_file}'")
    check_not_input([out_file], [list_file])
    names = _resolve_classes(classes)
    n_cls = len(names) if names is not None else num_classes
    records: List[ClipRecord] = []
    missing: List[str] = []
    max_label = -1
    with open(list_file, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            text = text.strip()
            if not text:
                continue
            fields = text.rsplit(separator, 1)
            if len(fields) != 2 or not fields[0].strip():
                raise ManifestError(list_file, line, f"expected 'path{separator}label', "
                                                     f"got {text!r}")
            rel, value = fields[0].strip(), fields[1].strip()
            try:
                label = int(value)
            except ValueError:
                raise ManifestError(list_file, line, f"label {value!r} is not an integer") \
                    from None
            if label == -1 and allow_unlabelled:
                pass
            elif label < 0 or (n_cls is not None and label >= n_cls):
                raise ManifestError(list_file, line, f"label {label} out of range [0, {n_cls})")
            max_label = max(max_label, label)
            full = os.path.abspath(os.path.join(path_prefix, rel))
            if not os.path.exists(full):
                missing.append(f"{rel}\t{list_file}:{line}")
                continue
            records.append(ClipRecord(full, label, rel, line=line))
    out_dir = os.path.dirname(os.path.abspath(out_file))
    summary = new_summary("path_label_list", out_dir)
    stage = StagedOutputs()
    n = stage.write_manifest(out_file, records, classes=names)
    if names is not None:
        labels_file = os.path.join(out_dir, "labels.txt")
        if not (isinstance(classes, str)
                and os.path.realpath(classes) == os.path.realpath(labels_file)):
            stage.write_class_list(labels_file, names)
        summary["labels_file"] = labels_file
    summary["num_classes"] = n_cls if n_cls is not None else max_label + 1
    split = os.path.splitext(os.path.basename(out_file))[0]
    summary["splits"][split] = {
        "manifest": os.path.abspath(out_file), "source": list_file, "rows": n,
        "missing": len(missing), "missing_file": write_missing(stage, out_dir, split, missing)}
    stage.commit()
    return summary
