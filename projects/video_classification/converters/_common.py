"""Helpers shared by the dataset converters: media indexing, missing-media lists, summaries.

Every converter returns a *summary* dict of the same shape (see :func:`new_summary`), writes
its skipped (missing) media to ``missing_<split>.txt`` next to the manifests, and refuses to
overwrite its own inputs.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def new_summary(dataset: str, out_dir: str) -> Dict[str, Any]:
    """The summary every converter returns.

    Keys: ``dataset``, ``out_dir``, ``labels_file`` (``None`` until written), ``num_classes``
    and ``splits``: ``{split: {"manifest", "source", "rows", "missing", "missing_file", ...}}``
    (``rows`` = manifest rows written, ``missing`` = annotated items whose media was not found
    and were skipped, listed in ``missing_file``).
    """
    return {"dataset": dataset, "out_dir": os.path.abspath(out_dir), "labels_file": None,
            "num_classes": 0, "splits": {}}


def index_media(root: str, extensions: Sequence[str], recursive: bool = True,
                with_dirs: bool = False) -> Dict[str, List[str]]:
    """Map file stem (name without extension) -> absolute paths of matching files under ``root``.

    Args:
        root: folder to scan.
        extensions: lower-case extensions with the dot (matched case-insensitively).
        recursive: scan sub-folders too (any depth); otherwise only ``root`` itself.
        with_dirs: also index the sub-folders of ``root`` by their full name (frame folders).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"media folder not found: '{root}'")
    exts = tuple(e.lower() for e in extensions)
    index: Dict[str, List[str]] = {}
    stack = [os.path.abspath(root)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.is_dir():
                if with_dirs and folder == os.path.abspath(root):
                    index.setdefault(entry.name, []).append(entry.path)
                if recursive:
                    stack.append(entry.path)
                continue
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in exts:
                index.setdefault(stem, []).append(entry.path)
    for paths in index.values():
        paths.sort()
    return index


def write_missing(out_dir: str, split: str, missing: Sequence[str]) -> Optional[str]:
    """Write ``missing_<split>.txt`` (one item per line) and return its path.

    With nothing missing the file is removed if an earlier run left one, and ``None`` is
    returned, so a stale list never outlives a fixed dataset.
    """
    path = os.path.join(out_dir, f"missing_{split}.txt")
    if not missing:
        if os.path.isfile(path):
            os.remove(path)
        return None
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{m}\n" for m in missing)
    return path


def check_not_input(outputs: Iterable[str], inputs: Iterable[Optional[str]]) -> None:
    """Raise ``ValueError`` if an output file would overwrite one of the input files.

    (The official Kinetics-700-2020 CSVs are themselves named ``train.csv``.)
    """
    ins = [os.path.realpath(p) for p in inputs if p]
    for out in outputs:
        if os.path.realpath(out) in ins:
            raise ValueError(f"output '{out}' is one of the input annotation files; "
                             "choose another out_dir")


def format_summary(summary: Dict[str, Any]) -> str:
    """A few human-readable lines for the CLIs (library code does not print)."""
    lines = [f"{summary['dataset']}: {summary['num_classes']} classes -> "
             f"{summary['labels_file'] or '(no class list)'}"]
    for split, s in summary["splits"].items():
        line = f"  {split}: {s['rows']} rows -> {s['manifest']}; missing media: {s['missing']}"
        if s.get("missing_file"):
            line += f" (listed in {s['missing_file']})"
        lines.append(line)
        for key, value in s.items():
            if key not in ("manifest", "source", "rows", "missing", "missing_file") and value:
                lines.append(f"    {key}: {value}")
    for key, value in summary.items():
        if key not in ("dataset", "out_dir", "labels_file", "num_classes", "splits") and value:
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def run_cli(convert: Callable[[], Dict[str, Any]]) -> int:
    """Run ``convert()`` for a ``datasets/prepare_*.py`` CLI: print its summary and return 0,
    or print ``error: file:line: ...`` for malformed input and return 1."""
    from mvit_tasks.data.manifest import ManifestError

    try:
        summary = convert()
    except (ManifestError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0
