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

What the official reader cannot read at all stays an error: every such row raises
:class:`AvaFormatError` naming ``file:line`` (a wrong column count, a field that ``int`` /
``float`` cannot parse, an empty action id, a blank line). What it reads but that looks wrong is
accepted as it is and reported by :func:`box_findings` (coordinates outside [0, 1], inverted or
zero-area boxes, non-finite numbers, repeated rows); ``strict`` callers turn those findings into
errors with :func:`raise_findings`. Files may be gzip-compressed (detected from the content).
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import os
import re
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

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
_EMPTY_ACTION = re.compile(r"^((?:[^,\n]*,){6})(?=,|$)", re.M)


def read_box_csv(path: str, allow_unlabelled: bool = False) -> BoxTable:
    """Read an AVA box CSV (ground truth or detections; see module docstring).

    Args:
        path: the CSV (``.gz`` ok).
        allow_unlabelled: accept an empty action id (detector box files such as
            ``ava_val_predicted_boxes.csv``); it is stored as -1, as a written ``-1`` is.

    Raises:
        AvaFormatError: the first row the official reader cannot read, as ``file:line: ...``.
    """
    text = read_text(path)
    if allow_unlabelled:
        text = _EMPTY_ACTION.sub(r"\g<1>-1", text)
    lines = split_lines(text)
    # numpy's loadtxt parses like the csv module + int()/float() when there are no quotes,
    # blanks or empty lines; otherwise (or on any parse error) the row-by-row reader decides
    simple = lines and "" not in lines and not any(c in text for c in ('"', " ", "\t"))
    parsed = _parse_fast(lines) if simple else None
    if parsed is None:
        parsed = _parse_slow(lines, path)
    video, ts, boxes, action, score = parsed
    names, codes = factorize(video.tolist() if isinstance(video, np.ndarray) else video)
    return BoxTable(names, codes, ts, boxes, action, score,
                    np.arange(1, len(ts) + 1, dtype=np.int64), path)


_INT = re.compile(r"\s*[-+]?\d+\s*")


def sniff_box_kind(path: str, max_lines: int = 2000) -> str:
    """``"groundtruth"`` or ``"detections"`` from a box CSV's first rows.

    Ground truth (``ava_{train,val}_v2.2.csv``) has an action id on every row and, in an 8th
    column, an integer person id; detector files (``ava_val_predicted_boxes.csv``, the
    ``person_box_67091280_iou90`` files, our ``ava_detections.csv``) have a fractional score
    there (and often an empty action id). A file without an 8th column has no score to
    threshold: ground truth. Raises :class:`AvaFormatError` on an unreadable file.
    """
    for row in csv.reader(split_lines(read_text(path))[:max_lines]):
        if len(row) == 8 and (not row[6].strip() or not _INT.fullmatch(row[7])):
            return "detections"
    return "groundtruth"


# ---------------------------------------------------------------------------- findings
FINDINGS = {
    "non_finite": "with a box coordinate or score that is not a finite number (nan / inf)",
    "out_of_range": "with a box coordinate outside [0, 1] (boxes are normalised x1,y1,x2,y2)",
    "inverted": "with an inverted box (x1 > x2 or y1 > y2)",
    "zero_area": "with a zero-area box (x1 == x2 or y1 == y2)",
    "duplicate": "repeating an earlier row (same frame, box and action id)",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """Rows that the official tools read but that look wrong: ``count`` rows of kind ``code``
    (a key of :data:`FINDINGS`, or a caller's own), the first at ``source:first_line``."""

    code: str
    count: int
    first_line: int
    source: str
    what: str

    def __str__(self) -> str:
        rows = "row" if self.count == 1 else "rows"
        return f"{self.source}:{self.first_line}: {self.count} {rows} {self.what} (first here)"


def finding(code: str, mask: np.ndarray, table: BoxTable,
            what: Optional[str] = None) -> Optional[Finding]:
    """A :class:`Finding` for the rows of ``table`` where ``mask`` (N,) holds; None if none."""
    hit = np.flatnonzero(mask)
    if hit.size == 0:
        return None
    return Finding(code, int(hit.size), int(table.line[hit[0]]), table.source,
                   what or FINDINGS[code])


def box_findings(table: BoxTable) -> List[Finding]:
    """What looks wrong in ``table`` (the kinds of :data:`FINDINGS`), in that order.

    A row counts once per kind; an inverted box is not also zero-area; out-of-range is
    counted on finite coordinates only.
    """
    b = table.boxes
    finite = np.isfinite(b).all(axis=1)
    inverted = (b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3])
    masks = {
        "non_finite": ~finite | ~np.isfinite(table.score),
        "out_of_range": finite & ((b < 0.0) | (b > 1.0)).any(axis=1),
        "inverted": inverted,
        "zero_area": ~inverted & ((b[:, 0] == b[:, 2]) | (b[:, 1] == b[:, 3])),
        "duplicate": duplicate_rows(table),
    }
    return [f for f in (finding(k, m, table) for k, m in masks.items()) if f is not None]


def duplicate_rows(table: BoxTable) -> np.ndarray:
    """(N,) bool: the row repeats an earlier one (same video, timestamp, box, action id).

    Rows are hashed to one 64-bit key and sorted once; only rows whose key is shared are then
    compared field by field (in file order), so a hash collision is never taken for a repeat.
    NaN coordinates never repeat (NaN != NaN).
    """
    n = len(table)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    b = table.boxes
    cols = [np.asarray(x, np.int64) for x in (table.video, table.timestamp, table.action)]
    cols += list(np.ascontiguousarray(b + 0.0).T)
    h = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:  # FNV-style mixing of the raw 64-bit fields (-0.0 made 0.0 above)
            h = (h ^ np.ascontiguousarray(c).view(np.uint64)) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
    order = np.argsort(h)
    hs = h[order]
    shared = np.zeros(n, bool)
    eq = hs[1:] == hs[:-1]
    shared[1:] |= eq
    shared[:-1] |= eq
    rows = np.sort(order[shared])  # the few rows whose key is not unique, in file order
    if rows.size == 0:
        return out
    keys = (rows, b[rows, 3], b[rows, 2], b[rows, 1], b[rows, 0], table.action[rows],
            table.timestamp[rows], table.video[rows])
    o = np.lexsort(keys)
    same = np.ones(rows.size - 1, bool)
    for k in keys[1:]:
        ks = k[o]
        same &= ks[1:] == ks[:-1]
    out[rows[o[1:][same]]] = True
    return out


def raise_findings(findings: Sequence[Finding]) -> None:
    """``--strict``: raise :class:`AvaFormatError` at the earliest finding (if any) of the
    first file that has one (files in the order of ``findings``)."""
    if not findings:
        return
    first = findings[0].source
    f = min((x for x in findings if x.source == first), key=lambda x: x.first_line)
    more = f" ({f.count} such rows)" if f.count > 1 else ""
    raise AvaFormatError(f.source, f.first_line, f"row {f.what}{more}; refused in strict "
                                                 "mode (the official tools accept it)")


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
        ts[i] = parse_int(row[1], "timestamp", path, ln)
        for j, c in enumerate(BOX_COLUMNS):
            boxes[i, j] = parse_float(row[2 + j], c, path, ln)
        action[i] = parse_int(row[6], "action_id", path, ln)
        if len(row) == 8:
            score[i] = parse_float(row[7], "score", path, ln)
    return video, ts, boxes, action, score


def parse_int(s: str, what: str, path: str, line: int) -> int:
    try:
        v = int(s)
    except ValueError:
        raise AvaFormatError(path, line, f"unparsable {what} {s!r} (expected an integer)")
    if not -(2**63) <= v < 2**63:
        raise AvaFormatError(path, line, f"{what} {s!r} out of range")
    return v


def parse_float(s: str, what: str, path: str, line: int) -> float:
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
        ts[i] = parse_int(row[1], "timestamp", path, i + 1)
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
    cid = parse_int(raw_id, "class id", path, ln)
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
def as_numpy(x: Any) -> np.ndarray:
    """A tensor (detached, half widened to float32, on the CPU) or array-like as numpy."""
    if hasattr(x, "detach"):
        x = x.detach()
        x = x.float() if x.is_floating_point() else x
        return x.cpu().numpy()
    return np.asarray(x)


def detection_table(outputs: Iterable[Mapping[str, Any]], class_ids: Sequence[int],
                    keep_ids: Optional[Iterable[int]] = None,
                    source: str = "<memory>") -> BoxTable:
    """Per-keyframe model outputs as AVA detection rows: keyframes in the given order, then
    boxes, then the score columns whose id is in ``keep_ids`` (all if None), in column order.

    Args:
        outputs: dicts ``{"video_id", "timestamp", "boxes": (N, 4) normalised x1, y1, x2, y2,
            "scores": (N, K)}`` (tensors or arrays).
        class_ids: (K,) action id of each score column.
    """
    ids = np.asarray(list(class_ids), np.int64)
    keep = None if keep_ids is None else set(int(c) for c in keep_ids)
    cols = np.asarray([j for j, c in enumerate(ids.tolist()) if keep is None or c in keep],
                      np.int64)
    items = list(outputs)
    boxes = [as_numpy(o["boxes"]).astype(np.float64).reshape(-1, 4) for o in items]
    scores = [as_numpy(o["scores"]).astype(np.float64).reshape(len(b), len(ids))
              for o, b in zip(items, boxes)]
    n_box = np.asarray([len(b) for b in boxes], np.int64)
    c = cols.size
    names, vcode = factorize([str(o["video_id"]) for o in items])
    ts = np.asarray([int(o["timestamp"]) for o in items], np.int64)
    all_boxes = np.concatenate(boxes) if items else np.zeros((0, 4))
    all_scores = np.concatenate(scores) if items else np.zeros((0, len(ids)))
    n = int(n_box.sum()) * c
    return BoxTable(
        video_names=names, video=np.repeat(np.repeat(vcode, n_box), c),
        timestamp=np.repeat(np.repeat(ts, n_box), c), boxes=np.repeat(all_boxes, c, axis=0),
        action=np.tile(ids[cols], len(all_boxes)), score=all_scores[:, cols].reshape(-1),
        line=np.arange(1, n + 1, dtype=np.int64), source=source)


def format_detection_rows(table: BoxTable, box_decimals: int = 3,
                          score_decimals: int = 6) -> List[str]:
    """AVA detection CSV lines ``video_id,%04d timestamp,x1,y1,x2,y2,action_id,score``."""
    bf, sf = f"%.{box_decimals}f", f"%.{score_decimals}f"
    fmt = f"%s,%04d,{bf},{bf},{bf},{bf},%d,{sf}\n"
    names = table.video_names[table.video].tolist()
    return [fmt % (v, t, b[0], b[1], b[2], b[3], a, s) for v, t, b, a, s in
            zip(names, table.timestamp.tolist(), table.boxes.tolist(), table.action.tolist(),
                table.score.tolist())]


def write_text(path: str, lines: Sequence[str]) -> str:
    """Write ``lines`` (with their line ends) to ``path`` atomically; gzip for ``.gz``."""
    from mvit_tasks.utils.fileio import atomic_write

    data = "".join(lines).encode("utf-8")
    if path.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(data))
    return path


def write_detection_csv(path: str, outputs: Iterable[Mapping[str, Any]],
                        class_ids: Sequence[int], keep_ids: Optional[Iterable[int]] = None,
                        box_decimals: int = 3, score_decimals: int = 6) -> int:
    """Write per-keyframe outputs (see :func:`detection_table`) as an AVA detection CSV
    (``.gz`` compresses); returns the number of rows."""
    lines = format_detection_rows(detection_table(outputs, class_ids, keep_ids), box_decimals,
                                  score_decimals)
    write_text(path, lines)
    return len(lines)
