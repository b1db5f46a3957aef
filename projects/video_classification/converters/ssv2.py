"""Something-Something v2 annotations -> canonical manifests (``mvit_tasks.data.manifest``).

Input (the 20BN / Qualcomm release, as read by PySlowFast ``slowfast/datasets/ssv2.py``):

- ``labels.json`` (or ``something-something-v2-labels.json``): ``{template: "id"}``, 174
  templates without brackets, ids ``"0"`` ... ``"173"``.
- ``train.json`` / ``validation.json``: a list of ``{"id", "label", "template",
  "placeholders"}``. The class is the *template* with its brackets removed, as in SlowFast
  (``"Putting [something] on a surface"`` -> ``"Putting something on a surface"``).
- ``test.json``: a list of ``{"id"}`` (no labels).
- Media, one of: ``{id}.webm`` videos (any video extension) or ``{id}/`` frame folders under one
  root; or SlowFast's frame lists (``original_vido_id video_id frame_id path labels``,
  space separated, paths relative to ``DATA.PATH_PREFIX``).

Outputs: ``<split>.csv`` (labels as class names, ``video_id`` = the SSv2 id), ``labels.txt``
(class names ordered by id), ``flip_pairs.json`` (``{label_id: swapped_label_id}`` for the
templates that a horizontal flip turns into each other: "left" <-> "right"), and
``missing_<split>.txt`` for annotated videos without media (skipped and counted).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mvit_tasks.data.manifest import ClipRecord, ManifestError

from ._common import (VIDEO_EXTENSIONS, StagedOutputs, check_not_input, index_media,
                      new_summary, write_missing)

ANNOTATION_NAMES = {
    "labels": ("labels.json", "something-something-v2-labels.json"),
    "train": ("train.json", "something-something-v2-train.json"),
    "val": ("validation.json", "something-something-v2-validation.json"),
    "test": ("test.json", "something-something-v2-test.json"),
}
_LEFT_RIGHT = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def template_to_class(template: str) -> str:
    """``"Putting [something] on a surface"`` -> ``"Putting something on a surface"``."""
    return template.replace("[", "").replace("]", "")


def _line_of(text: str, needle: str) -> Optional[int]:
    pos = text.find(needle)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def read_ssv2_labels(path: str) -> List[str]:
    """Class names from ``labels.json``, ordered by id (list index = label id).

    Raises:
        ManifestError: not a JSON object, an id that is not an integer, duplicate ids, or ids
            that are not exactly ``0 .. N-1``; names the file and (where found) the line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SSv2 labels file not found: '{path}'")
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(path, e.lineno, f"invalid JSON: {e.msg}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ManifestError(path, None, "expected a non-empty JSON object {template: id}")
    by_id: Dict[int, str] = {}
    for template, value in mapping.items():
        line = _line_of(text, json.dumps(template))
        try:
            idx = int(value)
        except (TypeError, ValueError):
            raise ManifestError(path, line, f"template {template!r}: id {value!r} is not an "
                                            "integer") from None
        if idx in by_id:
            raise ManifestError(path, line, f"template {template!r}: id {idx} is also used by "
                                            f"{by_id[idx]!r}")
        by_id[idx] = template_to_class(template).strip()
    if sorted(by_id) != list(range(len(by_id))):
        gaps = sorted(set(range(len(by_id))) - set(by_id))
        raise ManifestError(path, None, f"ids must be 0..{len(by_id) - 1}; missing {gaps[:10]}")
    return [by_id[i] for i in range(len(by_id))]


def load_json_entries(path: str) -> List[Tuple[Any, int]]:
    """The elements of a top-level JSON list, each with the 1-based line it starts on.

    Raises:
        ManifestError: not a JSON list, or malformed JSON (names the entry index and line).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: '{path}'")
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    decoder, n = json.JSONDecoder(), len(text)
    pos, line_pos, line = 0, 0, 1

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def line_at(i: int) -> int:
        nonlocal line_pos, line
        line += text.count("\n", line_pos, i)
        line_pos = i
        return line

    pos = skip(pos)
    if pos >= n or text[pos] != "[":
        raise ManifestError(path, line_at(pos), "expected a JSON list of entries")
    entries: List[Tuple[Any, int]] = []
    pos = skip(pos + 1)
    if pos < n and text[pos] == "]":
        return entries
    while True:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ManifestError(path, e.lineno, f"entry {len(entries)}: invalid JSON "
                                                f"({e.msg})") from None
        entries.append((obj, line_at(pos)))
        pos = skip(end)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            break
        raise ManifestError(path, line_at(min(pos, n)), f"after entry {len(entries) - 1}: "
                                                        "expected ',' or ']'")
    if skip(pos + 1) != n:
        raise ManifestError(path, line_at(pos), "unexpected content after the list")
    return entries


def read_ssv2_split(path: str, classes: Sequence[str], labelled: bool = True,
                    labels_path: str = "labels.json") -> List[Tuple[str, int, int]]:
    """``(video_id, label, line)`` per entry of ``train.json`` / ``validation.json`` /
    ``test.json``; ``label`` is ``-1`` when ``labelled`` is False and the entry has no template.

    Raises:
        ManifestError: an entry that is not an object, lacks ``id`` (or ``template`` when
            ``labelled``), repeats an id, or whose template is not a class; names the entry
            index, its id and its line.
    """
    index = {c: i for i, c in enumerate(classes)}
    out: List[Tuple[str, int, int]] = []
    seen: Dict[str, int] = {}
    for k, (entry, line) in enumerate(load_json_entries(path)):
        if not isinstance(entry, dict):
            raise ManifestError(path, line, f"entry {k}: expected an object, got "
                                            f"{type(entry).__name__}")
        vid = str(entry.get("id", "")).strip()
        if not vid:
            raise ManifestError(path, line, f"entry {k}: missing 'id'")
        if vid in seen:
            raise ManifestError(path, line, f"entry {k}: id {vid!r} repeats line {seen[vid]}")
        seen[vid] = line
        template = entry.get("template")
        if template is None:
            if labelled:
                raise ManifestError(path, line, f"entry {k} (id {vid!r}): missing 'template'")
            out.append((vid, -1, line))
            continue
        name = template_to_class(str(template)).strip()
        if name not in index:
            raise ManifestError(path, line, f"entry {k} (id {vid!r}): template {template!r} "
                                            f"is not a class of {labels_path}")
        out.append((vid, index[name], line))
    return out


def _swap_word(word: str) -> str:
    other = "right" if word.lower() == "left" else "left"
    return other.capitalize() if word[0].isupper() else other


def ssv2_flip_pairs(classes: Sequence[str]) -> Dict[int, int]:
    """``{label: mirrored_label}`` for classes that a horizontal flip turns into another class.

    Two classes pair up when swapping the words "left" and "right" in one gives the other
    ("Pushing something from left to right" <-> "... from right to left"). On the official
    labels this gives {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166} (pulling, pushing,
    turning the camera), the map mmaction2's SSv2 configs use. Other classes keep their label.
    """
    index = {c: i for i, c in enumerate(classes)}
    pairs: Dict[int, int] = {}
    for i, name in enumerate(classes):
        swapped = _LEFT_RIGHT.sub(lambda m: _swap_word(m.group(0)), name)
        if swapped != name and swapped in index:
            pairs[i] = index[swapped]
    return pairs


def format_flip_pairs(pairs: Mapping[int, int]) -> str:
    """``{"86": 87, ...}`` (JSON keys are strings), sorted by label."""
    return json.dumps({str(k): int(pairs[k]) for k in sorted(pairs)}, indent=1) + "\n"


def write_flip_pairs(path: str, pairs: Mapping[int, int]) -> None:
    """Write :func:`format_flip_pairs` to ``path`` (atomically)."""
    from mvit_tasks.utils.fileio import atomic_write_text

    atomic_write_text(path, format_flip_pairs(pairs))


def load_flip_pairs(path: str) -> Dict[int, int]:
    """Read ``flip_pairs.json`` back as ``{int: int}``."""
    with open(path, encoding="utf-8") as f:
        return {int(k): int(v) for k, v in json.load(f).items()}


def read_frame_list(path: str, prefix: str = "") -> Dict[str, Tuple[str, int]]:
    """SlowFast frame list -> ``{original_video_id: (frame folder, first line)}``.

    Each video's frames must lie in one folder and be listed in file-name order (the manifest
    reads a frame folder sorted by name).

    Raises:
        ManifestError: bad header, a row without 4-5 fields, frames in several folders or out of
            name order; names file and line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"frame list not found: '{path}'")
    folders: Dict[str, Tuple[str, int]] = {}
    last: Dict[str, str] = {}
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().split()
        if not header or header[0] not in ("original_vido_id", "original_video_id"):
            raise ManifestError(path, 1, "expected the header 'original_vido_id video_id "
                                         "frame_id path labels'")
        for line, text in enumerate(f, start=2):
            row = text.split()
            if not row:
                continue
            if len(row) not in (4, 5):
                raise ManifestError(path, line, f"{len(row)} fields, expected 5 "
                                                "('original_vido_id video_id frame_id path "
                                                "labels')")
            vid, frame = row[0], row[3]
            folder, name = os.path.split(frame)
            full = os.path.join(prefix, folder)
            if vid not in folders:
                folders[vid] = (full, line)
            elif folders[vid][0] != full:
                raise ManifestError(path, line, f"video {vid!r}: frame in '{folder}', earlier "
                                                f"frames in '{folders[vid][0]}'")
            elif name <= last[vid]:
                raise ManifestError(path, line, f"video {vid!r}: frame {name!r} listed after "
                                                f"{last[vid]!r} (must follow file-name order)")
            last[vid] = name
    return folders


def find_ssv2_annotations(anno_dir: str) -> Dict[str, str]:
    """Find ``labels``/``train``/``val``/``test`` JSON files (short or ``something-something-v2-``
    names) in ``anno_dir``; ``labels`` is required."""
    found: Dict[str, str] = {}
    for key, names in ANNOTATION_NAMES.items():
        for name in names:
            if os.path.isfile(os.path.join(anno_dir, name)):
                found[key] = os.path.join(anno_dir, name)
                break
    if "labels" not in found:
        raise FileNotFoundError(f"no {' or '.join(ANNOTATION_NAMES['labels'])} in '{anno_dir}'")
    return found


def convert_ssv2(
    labels_json: str,
    splits: Mapping[str, str],
    out_dir: str,
    media_root: Optional[str] = None,
    frame_lists: Optional[Mapping[str, str]] = None,
    frame_prefix: str = "",
    media: str = "auto",
    unlabelled_splits: Sequence[str] = ("test",),
) -> Dict[str, Any]:
    """Convert SSv2 JSON annotations into ``<split>.csv``, ``labels.txt``, ``flip_pairs.json``.

    Args:
        labels_json: ``labels.json`` (template -> id).
        splits: output split name -> JSON list, e.g. ``{"train": "train.json",
            "val": "validation.json"}``.
        out_dir: output folder (at or above the media for relative manifest paths).
        media_root: folder with ``{id}.webm`` (any video extension) and/or ``{id}/`` frames.
        frame_lists: split -> SlowFast frame list; these splits take their frame folders from
            the list (joined with ``frame_prefix``) instead of ``media_root``.
        frame_prefix: ``DATA.PATH_PREFIX`` for the frame lists.
        media: ``"auto"`` (a video file, else a frame folder), ``"video"`` or ``"frames"``.
        unlabelled_splits: splits whose entries may lack a template (label ``-1``).

    Returns:
        The summary; plus ``flip_pairs_file``, and per split ``unannotated`` (frame-list
        videos that no JSON entry names).

    Raises:
        ManifestError: malformed JSON entry, unknown template, bad frame list (file + line).
        ValueError: bad ``media``, no media source for a split, output overwriting an input.
    """
    if media not in ("auto", "video", "frames"):
        raise ValueError(f"media must be 'auto', 'video' or 'frames', got {media!r}")
    frame_lists = dict(frame_lists or {})
    for split in splits:
        if split not in frame_lists and media_root is None:
            raise ValueError(f"split {split!r}: pass media_root or a frame list")
    check_not_input([os.path.join(out_dir, f"{s}.csv") for s in splits],
                    [labels_json, *splits.values(), *frame_lists.values()])
    classes = read_ssv2_labels(labels_json)
    entries = {s: read_ssv2_split(p, classes, s not in unlabelled_splits, labels_json)
               for s, p in splits.items()}
    index: Dict[str, List[str]] = {}
    if media_root is not None and any(s not in frame_lists for s in splits):
        index = index_media(media_root, VIDEO_EXTENSIONS if media != "frames" else (),
                            recursive=False, with_dirs=media != "video")
    os.makedirs(out_dir, exist_ok=True)
    summary = new_summary("ssv2", out_dir)
    stage = StagedOutputs()  # nothing is written before every split has validated
    labels_file = os.path.join(out_dir, "labels.txt")
    stage.write_class_list(labels_file, classes)
    flip_file = os.path.join(out_dir, "flip_pairs.json")
    stage.write(flip_file, format_flip_pairs(ssv2_flip_pairs(classes)))
    summary.update(labels_file=labels_file, num_classes=len(classes), flip_pairs_file=flip_file)
    for split, rows in entries.items():
        listed = read_frame_list(frame_lists[split], frame_prefix) if split in frame_lists \
            else None
        records: List[ClipRecord] = []
        missing: List[str] = []
        for vid, label, line in rows:
            if listed is not None:
                folder = listed[vid][0] if vid in listed else None
                path = folder if folder is not None and os.path.isdir(folder) else None
            else:
                # sorted() puts the video file 'ID.webm' before the folder 'ID'
                found = sorted(index.get(vid, []), key=lambda p: os.path.isdir(p))
                path = found[0] if found else None
            if path is None:
                missing.append(f"{vid}\t{splits[split]}:{line}")
                continue
            records.append(ClipRecord(os.path.abspath(path), label, vid, line=line))
        manifest = os.path.join(out_dir, f"{split}.csv")
        n = stage.write_manifest(manifest, records, classes=classes)
        names = {vid for vid, _, _ in rows}
        summary["splits"][split] = {
            "manifest": manifest, "source": splits[split], "rows": n, "missing": len(missing),
            "missing_file": write_missing(stage, out_dir, split, missing),
            "unannotated": 0 if listed is None else len(set(listed) - names)}
    stage.commit()
    return summary
