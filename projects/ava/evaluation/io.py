"""Readers and writers of AVA's file formats: label map ``.pbtxt``, box CSVs, excluded timestamps.

Formats: https://research.google.com/ava/download.html. Parsing follows the official ActivityNet
evaluator (``activitynet/ActivityNet``, ``Evaluation/get_ava_performance.py``: ``read_csv``,
``read_exclusions``, ``read_labelmap``), so the same files give the same values:

- box CSV rows are ``video_id,timestamp,x1,y1,x2,y2,action_id[,score]``; boxes are normalised
  ``x1, y1, x2, y2`` in [0, 1]; the 8th column is the detection score (for ground truth it is the
  person id, which the official reader also stores as the row's "score"); a row without it has
  score 1.0. Fields are parsed as Python's ``int`` / ``float`` parse them; the video id is kept
  verbatim (no stripping); the timestamp is an integer, so ``0902`` and ``902`` are one frame.
- excluded timestamps: ``video_id,timestamp`` rows.
- label maps: ``item { name: "..." id: N }`` or ``label { name: "..." label_id: N
  label_type: PERSON_MOVEMENT }`` blocks, one field per line or several on one line.

Stricter than the official reader (which asserts, crashes later or silently drops): every
malformed row raises :class:`AvaFormatError` naming ``file:line``: wrong column count, an
unparsable field, a blank line, a non-finite value, a box coordinate outside [0, 1] or a box
with ``x1 > x2`` / ``y1 > y2``. Files may be gzip-compressed (detected from the content).
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import os
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

BOX_COLUMNS = ("x1", "y1", "x2", "y2")
_FAST_PATH_SAMPLE = 1000  # lines used to guess the width of the video-id column


class AvaFormatError(ValueError):
    """A malformed AVA file; ``str(e)`` is ``"<path>:<line>: <what is wrong>"``."""

    def __init__(self, path: str, line: Optional[int], message: str) -> None:
        self.path, self.line = path, line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclasses.dataclass
class LabelMap:
    """The classes of a label map, in file order.

    Attributes:
        ids: action ids (>= 1, unique).  names: class names (unique).
        types: ``label_type`` per class (e.g. ``PERSON_MOVEMENT``) or None where absent.
    """

    ids: List[int]
    names: List[str]
    types: List[Optional[str]]

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class BoxTable:
    """The rows of one AVA box CSV (or of in-memory detections), in file order.

    Attributes:
        video_names: (V,) str, the distinct video ids.
        video: (N,) int64 index into ``video_names``.
        timestamp: (N,) int64 keyframe second.
        boxes: (N, 4) float64 normalised ``x1, y1, x2, y2``.
        action: (N,) int64 action id.
        score: (N,) float64; the 8th column (score, or person id in ground truth), else 1.0.
        line: (N,) int64 1-based line of each row in ``source``.
        source: the file name used in messages.
    """

    video_names: np.ndarray
    video: np.ndarray
    timestamp: np.ndarray
    boxes: np.ndarray
    action: np.ndarray
    score: np.ndarray
    line: np.ndarray
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.action.shape[0])


@dataclasses.dataclass
class Exclusions:
    """Excluded keyframes: ``video_names[video[i]], timestamp[i]`` (``(K,)`` arrays)."""

    video_names: np.ndarray
    video: np.ndarray
    timestamp: np.ndarray
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])


def empty_exclusions() -> Exclusions:
    return Exclusions(np.zeros(0, dtype=str), np.zeros(0, np.int64), np.zeros(0, np.int64))


def factorize(values: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(names (V,) str, first-seen order; codes (N,) int64)``, ``names[codes] == values``."""
    table: dict = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values), np.int64,
                        count=len(values))
    return np.asarray(list(table), dtype=str), codes


# ----------------------------------------------------------------------------------- text
def read_text(path: str) -> str:
    """The content of a (possibly gzipped) UTF-8 text file, with line ends normalised to ``\\n``.

    Universal newlines, as the official reader's text-mode file: ``\\r\\n`` and ``\\r`` end lines.
    """
    if not os.path.isfile(path):
        raise AvaFormatError(path, None, "file not found")
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise AvaFormatError(path, None, f"corrupt gzip data ({e})") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AvaFormatError(path, data[: e.start].count(b"\n") + 1, "not UTF-8 text") from e
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split_lines(text: str) -> List[str]:
    """Lines without line ends; a final line end does not start an extra (empty) line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


# ------------------------------------------------------------------------------ box CSVs
def read_box_csv(path: str) -> BoxTable:
    """Read and validate an AVA box CSV (ground truth or detections; see module docstring).

    Raises:
        AvaFormatError: the first malformed row, as ``file:line: message``.
    """
    text = read_text(path)
    lines = split_lines(text)
    # numpy's loadtxt parses like the csv module + int()/float() when there are no quotes,
    # blanks or empty lines; otherwise (or on any parse error) the row-by-row reader decides
    simple = lines and "" not in lines and not any(c in text for c in ('"', " ", "\t"))
    parsed = _parse_fast(lines) if simple else None
    if parsed is None:
        parsed = _parse_slow(lines, path)
    video, ts, boxes, action, score = parsed
    names, codes = factorize(video.tolist() if isinstance(video, np.ndarray) else video)
    table = BoxTable(names, codes, ts, boxes, action, score,
                     np.arange(1, len(ts) + 1, dtype=np.int64), path)
    validate_boxes(table)
    return table


def validate_boxes(table: BoxTable) -> None:
    """Raise :class:`AvaFormatError` at the first row with a bad box or score."""
    b = table.boxes
    checks = (
        (~np.isfinite(b).all(axis=1), "box coordinate is not a finite number"),
        (((b < 0.0) | (b > 1.0)).any(axis=1), "box coordinate outside [0, 1] (boxes are "
                                               "normalised x1,y1,x2,y2)"),
        ((b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3]), "box has x1 > x2 or y1 > y2"),
        (~np.isfinite(table.score), "score is not a finite number"),
    )
    for bad, what in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            vals = ",".join(repr(float(v)) for v in b[i])
            raise AvaFormatError(table.source, int(table.line[i]),
                                 f"{what} (box {vals}, score {float(table.score[i])!r})")


def _parse_fast(lines: List[str]):
    ncol = lines[0].count(",") + 1
    if ncol not in (7, 8):
        return None
    width = max(max(len(s.split(",", 1)[0]) for s in lines[:_FAST_PATH_SAMPLE]), 1)
    while True:
        fields = [("v", f"U{width}"), ("t", "i8")] + [(c, "f8") for c in BOX_COLUMNS]
        fields += [("a", "i8")] + ([("s", "f8")] if ncol == 8 else [])
        try:
            arr = np.loadtxt(lines, delimiter=",", dtype=fields, comments=None, ndmin=1,
                             quotechar=None)
        except ValueError:  # any parse problem: the slow path finds and names the bad line
            return None
        if len(arr) != len(lines):
            return None
        if np.strings.str_len(arr["v"]).max() < width:  # else an id may be cut: widen
            break
        width *= 2
    boxes = np.stack([arr[c] for c in BOX_COLUMNS], axis=1)
    score = arr["s"].copy() if ncol == 8 else np.ones(len(arr), dtype=np.float64)
    return arr["v"], arr["t"].copy(), boxes, arr["a"].copy(), score


def _parse_slow(lines: List[str], path: str):
    """The csv module and Python's int/float, row by row; raises at the first bad line."""
    n = len(lines)
    video: List[str] = []
    ts = np.zeros(n, dtype=np.int64)
    boxes = np.zeros((n, 4), dtype=np.float64)
    action = np.zeros(n, dtype=np.int64)
    score = np.ones(n, dtype=np.float64)
    for i, row in enumerate(csv.reader(lines)):
        ln = i + 1
        if len(row) not in (7, 8):
            what = "empty line" if not row else f"{len(row)} fields"
            raise AvaFormatError(path, ln, f"{what}; expected 7 or 8 comma-separated fields "
                                           "video_id,timestamp,x1,y1,x2,y2,action_id[,score]")
        video.append(row[0])
        ts[i] = _to_int(row[1], "timestamp", path, ln)
        for j, c in enumerate(BOX_COLUMNS):
            boxes[i, j] = _to_float(row[2 + j], c, path, ln)
        action[i] = _to_int(row[6], "action_id", path, ln)
        if len(row) == 8:
            score[i] = _to_float(row[7], "score", path, ln)
    return video, ts, boxes, action, score


def _to_int(s: str, what: str, path: str, line: int) -> int:
    try:
        v = int(s)
    except ValueError:
        raise AvaFormatError(path, line, f"unparsable {what} {s!r} (expected an integer)")
    if not -(2**63) <= v < 2**63:
        raise AvaFormatError(path, line, f"{what} {s!r} out of range")
    return v


def _to_float(s: str, what: str, path: str, line: int) -> float:
    try:
        return float(s)
    except ValueError:
        raise AvaFormatError(path, line, f"unparsable {what} {s!r} (expected a number)")


# --------------------------------------------------------------------------- exclusions
def read_exclusions(path: Optional[str]) -> Exclusions:
    """Excluded ``video_id,timestamp`` keyframes; an empty set for ``None``."""
    if path is None:
        return empty_exclusions()
    lines = split_lines(read_text(path))
    video: List[str] = []
    ts = np.zeros(len(lines), dtype=np.int64)
    for i, row in enumerate(csv.reader(lines)):
        if len(row) != 2:
            what = "empty line" if not row else f"{len(row)} fields"
            raise AvaFormatError(path, i + 1, f"{what}; expected 2 fields video_id,timestamp")
        video.append(row[0])
        ts[i] = _to_int(row[1], "timestamp", path, i + 1)
    names, codes = factorize(video)
    return Exclusions(names, codes, ts, path)


# ---------------------------------------------------------------------------- label map
_TOKEN = re.compile(
    r'\s*(?:(?P<open>[A-Za-z_]\w*)\s*\{|(?P<close>\})|(?P<key>[A-Za-z_]\w*)\s*:\s*'
    r'(?P<val>"(?:[^"\\]|\\.)*"|[^\s{}"#]+)|(?P<comment>#.*)|(?P<end>$))')
_LABEL_KEYS = {"name", "id", "label_id", "label_type", "display_name"}


def read_labelmap(path: str) -> LabelMap:
    """Parse a label map (``item``/``label`` blocks with ``name``, ``id``/``label_id`` and
    optional ``label_type``).

    Raises:
        AvaFormatError: syntax errors, unknown keys, a block without name or id, ids < 1,
            duplicate ids or names, no classes at all.
    """
    ids: List[int] = []
    names: List[str] = []
    types: List[Optional[str]] = []
    block: Optional[dict] = None
    for ln, text in enumerate(split_lines(read_text(path)), 1):
        pos = 0
        while True:
            m = _TOKEN.match(text, pos)
            if m is None:
                raise AvaFormatError(path, ln, f"cannot parse {text[pos:].strip()!r}")
            if m.group("end") is not None or m.group("comment") is not None:
                break
            pos = m.end()
            if m.group("open"):
                if block is not None:
                    raise AvaFormatError(path, ln, "nested block (missing '}'?)")
                block = {"line": ln}
            elif m.group("close"):
                if block is None:
                    raise AvaFormatError(path, ln, "'}' without an open block")
                _finish_block(block, path, ln, ids, names, types)
                block = None
            else:
                key, val = m.group("key"), m.group("val")
                if block is None:
                    raise AvaFormatError(path, ln, f"field {key!r} outside an item block")
                if key not in _LABEL_KEYS:
                    raise AvaFormatError(path, ln, f"unknown field {key!r}; expected one of "
                                                   f"{sorted(_LABEL_KEYS)}")
                block[key] = val
    if block is not None:
        raise AvaFormatError(path, block["line"], "block not closed with '}'")
    if not ids:
        raise AvaFormatError(path, None, "no classes in the label map")
    return LabelMap(ids, names, types)


def _finish_block(block: dict, path: str, ln: int, ids: List[int], names: List[str],
                  types: List[Optional[str]]) -> None:
    raw_id = block.get("id", block.get("label_id"))
    if raw_id is None or "name" not in block:
        raise AvaFormatError(path, block["line"], "item needs both a name and an id/label_id")
    cid = _to_int(raw_id, "class id", path, ln)
    name = block["name"]
    if not (len(name) >= 2 and name[0] == name[-1] == '"'):
        raise AvaFormatError(path, ln, f"name {name} must be a quoted string")
    name = re.sub(r"\\(.)", r"\1", name[1:-1])
    if cid < 1:
        raise AvaFormatError(path, ln, f"class id {cid} < 1 (AVA ids are 1-based)")
    if cid in ids:
        raise AvaFormatError(path, ln, f"duplicate class id {cid}")
    if name in names:
        raise AvaFormatError(path, ln, f"duplicate class name {name!r}")
    ids.append(cid)
    names.append(name)
    types.append(block.get("label_type"))


# ------------------------------------------------------------------------------ writing
def format_detection_rows(video_names: np.ndarray, video: np.ndarray, timestamp: np.ndarray,
                          boxes: np.ndarray, action: np.ndarray, score: np.ndarray,
                          box_decimals: int = 3, score_decimals: int = 6) -> List[str]:
    """AVA detection CSV lines ``video_id,%04d timestamp,x1,y1,x2,y2,action_id,score``."""
    bf, sf = f"%.{box_decimals}f", f"%.{score_decimals}f"
    fmt = f"%s,%04d,{bf},{bf},{bf},{bf},%d,{sf}\n"
    names = video_names[video].tolist()
    return [fmt % (v, t, b[0], b[1], b[2], b[3], a, s) for v, t, b, a, s in
            zip(names, timestamp.tolist(), boxes.tolist(), action.tolist(), score.tolist())]


def write_text(path: str, lines: Sequence[str]) -> str:
    """Write ``lines`` (with their line ends) to ``path``; gzip when it ends in ``.gz``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = "".join(lines).encode("utf-8")
    if path.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return path
