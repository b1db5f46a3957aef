"""The canonical clip manifest: one CSV format that every dataset converter writes.

Format (UTF-8 CSV with a header; columns in any order, unknown columns are kept in ``extra``)::

    path,label[,video_id][,start_sec][,end_sec]
    train/abseiling/0347ZoDXyP0_000095_000105.mp4,abseiling,0347ZoDXyP0,,
    frames/12345,17,12345,,

- ``path``: a video file (mp4/webm/mkv/avi, decoded with PyAV), an image file (jpg/png) or a
  folder of frames (``*.jpg`` sorted by name). Relative paths are relative to ``root``
  (default: the manifest's folder).
- ``label``: a class name from the class list, or an integer index ``0 <= i < num_classes``.
  ``-1`` (or empty) means "unlabelled" only when ``allow_unlabelled`` is set.
- ``video_id``: groups several rows (views) of one video for evaluation; default ``path``.
- ``start_sec`` / ``end_sec``: an optional segment of a longer video (empty = whole video).

The class list is a text file, one class name per line, line ``i`` = label ``i``
(``labels.txt`` next to the manifest by convention).

Malformed rows stop reading with :class:`ManifestError`, which names the file and line.
"""
from __future__ import annotations

import csv
import io
import dataclasses
import os
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from mvit_tasks.utils.fileio import atomic_write_text

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("video_id", "start_sec", "end_sec")


class ManifestError(ValueError):
    """A manifest or class list is malformed; the message names the file and the line."""

    def __init__(self, path: str, line: Optional[int], reason: str) -> None:
        self.path, self.line, self.reason = os.fspath(path), line, reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One manifest row. ``path`` is absolute (joined with the root); ``line`` is 1-based."""

    path: str
    label: int
    video_id: str
    start_sec: Optional[float] = None
    end_sec: Optional[float] = None
    line: int = 0
    extra: Dict[str, str] = dataclasses.field(default_factory=dict)


def read_class_list(path: str) -> List[str]:
    """Class names from a text file (line i = class i); blank lines are skipped at the end only."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class list not found: '{path}'")
    lines = [ln.rstrip("\r") for ln in read_text(path).split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    names: List[str] = []
    seen: Dict[str, int] = {}
    for i, name in enumerate(lines, start=1):
        name = name.strip()
        if not name:
            raise ManifestError(path, i, "empty class name")
        if name in seen:
            raise ManifestError(path, i, f"duplicate class name {name!r} (first on line {seen[name]})")
        seen[name] = i
        names.append(name)
    if not names:
        raise ManifestError(path, None, "the class list is empty")
    return names


def format_class_list(names: Sequence[str]) -> str:
    """The text of a class list: one name per line."""
    return "".join(f"{n}\n" for n in names)


def write_class_list(path: str, names: Sequence[str]) -> None:
    """Write one class name per line (atomically)."""
    atomic_write_text(path, format_class_list(names))


def _parse_float(value: str, path: str, line: int, column: str) -> Optional[float]:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ManifestError(path, line, f"column {column!r}: {value!r} is not a number") from None


def read_manifest(
    path: str,
    classes: Optional[Sequence[str]] = None,
    num_classes: Optional[int] = None,
    root: Optional[str] = None,
    allow_unlabelled: bool = False,
) -> List[ClipRecord]:
    """Read a canonical manifest.

    Args:
        path: the CSV file.
        classes: class names (label column may then hold names or indices).
        num_classes: number of classes when ``classes`` is not given (indices only).
        root: folder that relative paths start from (default: the manifest's folder).
        allow_unlabelled: accept ``-1`` / empty labels (stored as -1), e.g. for a test set.

    Raises:
        FileNotFoundError: no such manifest.
        ManifestError: missing column/field, unknown label, bad number; names file and line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"manifest not found: '{path}'")
    root = os.path.dirname(os.path.abspath(path)) if root is None else root
    index = {name: i for i, name in enumerate(classes)} if classes is not None else None
    n_cls = len(classes) if classes is not None else num_classes
    records: List[ClipRecord] = []
    for line, row, col in iter_csv_rows(path, REQUIRED_COLUMNS, "a header 'path,label,...'"):
        rel = row[col["path"]].strip()
        if not rel:
            raise ManifestError(path, line, "empty 'path'")
        label = _parse_label(row[col["label"]].strip(), index, n_cls, allow_unlabelled,
                             path, line)
        full = rel if os.path.isabs(rel) else os.path.join(root, rel)
        vid = row[col["video_id"]].strip() if "video_id" in col else ""
        start = _parse_float(row[col["start_sec"]], path, line, "start_sec") \
            if "start_sec" in col else None
        end = _parse_float(row[col["end_sec"]], path, line, "end_sec") \
            if "end_sec" in col else None
        if start is not None and end is not None and end <= start:
            raise ManifestError(path, line, f"end_sec {end} <= start_sec {start}")
        extra = {h: row[i] for h, i in col.items()
                 if h not in REQUIRED_COLUMNS and h not in OPTIONAL_COLUMNS}
        records.append(ClipRecord(full, label, vid or rel, start, end, line, extra))
    return records


def read_text(path: str, encoding: str = "utf-8") -> str:
    """The whole text of ``path``; a byte that is not valid ``encoding`` raises
    :class:`ManifestError` naming the line and column (``open()`` names neither)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ManifestError(path, line, f"byte 0x{data[e.start]:02x} at column {col} is not "
                                        f"valid {encoding} text ({e.reason})") from None


def iter_csv_rows(path: str, required: Sequence[str], expected: str, lower: bool = False,
                  encoding: str = "utf-8") -> Iterator[Tuple[int, List[str], Dict[str, int]]]:
    """``(line, fields, column index)`` for each non-blank data row of a CSV with a header.

    Raises :class:`ManifestError` (file:line) for an empty file, a header without the
    ``required`` columns (``expected`` describes the header in the message) or a row whose
    field count differs from the header's. ``lower`` lower-cases the header names.
    """
    with io.StringIO(read_text(path, encoding), newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() if lower else h.strip() for h in next(reader)]
        except StopIteration:
            raise ManifestError(path, 1, f"empty file (expected {expected})") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(path, 1, f"header {header} lacks column(s) {missing}")
        col = {name: i for i, name in enumerate(header)}
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ManifestError(path, reader.line_num,
                                    f"{len(row)} fields, the header has {len(header)}")
            yield reader.line_num, row, col


def _parse_label(value: str, index: Optional[Dict[str, int]], n_cls: Optional[int],
                 allow_unlabelled: bool, path: str, line: int) -> int:
    if value in ("", "-1"):
        if allow_unlabelled:
            return -1
        raise ManifestError(path, line, "missing label" if not value else "label -1 (unlabelled)")
    if index is not None and value in index:
        return index[value]
    try:
        label = int(value)
    except ValueError:
        raise ManifestError(path, line, f"unknown label {value!r} (not in the class list)") \
            from None
    if label < 0 or (n_cls is not None and label >= n_cls):
        raise ManifestError(path, line, f"label {label} out of range [0, {n_cls})")
    return label


def write_manifest(path: str, records: Iterable[ClipRecord], classes: Optional[Sequence[str]] = None,
                   root: Optional[str] = None) -> int:
    """Write ``records`` as a canonical manifest (atomically); returns the row count.

    Paths are written relative to ``root`` (default: the manifest's folder) when inside it.
    Labels are written as class names when ``classes`` is given, else as indices.
    """
    root = os.path.dirname(os.path.abspath(path)) if root is None else os.path.abspath(root)
    text, n = format_manifest(records, classes, root)
    atomic_write_text(path, text)
    return n


def format_manifest(records: Iterable[ClipRecord], classes: Optional[Sequence[str]],
                    root: str) -> Tuple[str, int]:
    """``(text, rows)`` of a manifest whose paths are relative to ``root`` when inside it."""
    root = os.path.abspath(root)
    rows = ["path,label,video_id,start_sec,end_sec\n"]
    for r in records:
        p = os.path.abspath(r.path)
        rel = os.path.relpath(p, root) if p.startswith(root + os.sep) else r.path
        label = classes[r.label] if (classes is not None and r.label >= 0) else str(r.label)
        fields = [rel, label, r.video_id,
                  "" if r.start_sec is None else f"{r.start_sec:g}",
                  "" if r.end_sec is None else f"{r.end_sec:g}"]
        rows.append(_csv_line(fields))
    return "".join(rows), len(rows) - 1


def _csv_line(fields: Sequence[str]) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()
