"""Helpers shared by the dataset converters: media indexing, missing-media lists, summaries.

Every converter returns a *summary* dict of the same shape (see :func:`new_summary`), writes
its skipped (missing) media to ``missing_<split>.txt`` next to the manifests, and refuses to
overwrite its own inputs. Converters write all or nothing: outputs are collected in a
:class:`StagedOutputs` while every split is validated, then written to temporary files and
renamed into place together, so a failed conversion leaves the old files intact.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set

from mvit_tasks.data.manifest import ClipRecord, format_class_list, format_manifest

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


class StagedOutputs:
    """Output files of one conversion, held until :meth:`commit` writes them all.

    ``commit`` writes every file to a temporary file in its folder first (fsync'd, with the
    usual umask-derived mode), and only when all of them are written renames them into place
    and removes the files marked for removal; on any error the temporaries are deleted and no
    target is touched.
    """

    def __init__(self) -> None:
        self._files: Dict[str, str] = {}
        self._remove: Set[str] = set()

    def write(self, path: str, text: str) -> str:
        path = os.path.abspath(path)
        self._files[path] = text
        self._remove.discard(path)
        return path

    def write_manifest(self, path: str, records: Iterable[ClipRecord],
                       classes: Optional[Sequence[str]] = None) -> int:
        """Stage a manifest (see :func:`mvit_tasks.data.manifest.write_manifest`); rows."""
        text, n = format_manifest(records, classes, os.path.dirname(os.path.abspath(path)))
        self.write(path, text)
        return n

    def write_class_list(self, path: str, names: Sequence[str]) -> str:
        return self.write(path, format_class_list(names))

    def remove(self, path: str) -> None:
        path = os.path.abspath(path)
        self._files.pop(path, None)
        self._remove.add(path)

    def commit(self) -> None:
        from mvit_tasks.utils.fileio import write_temp_file

        temps: List[str] = []
        try:
            for path, text in self._files.items():
                temps.append(write_temp_file(path, text.encode("utf-8")))
        except BaseException:
            for t in temps:
                if os.path.exists(t):
                    os.unlink(t)
            raise
        for tmp, path in zip(temps, self._files):
            os.replace(tmp, path)
        for path in self._remove:
            if os.path.isfile(path):
                os.remove(path)


def write_missing(stage: StagedOutputs, out_dir: str, split: str,
                  missing: Sequence[str]) -> Optional[str]:
    """Stage ``missing_<split>.txt`` (one item per line) and return its path.

    With nothing missing, a list an earlier run left is removed on commit and ``None`` is
    returned, so a stale list never outlives a fixed dataset.
    """
    path = os.path.join(out_dir, f"missing_{split}.txt")
    if not missing:
        stage.remove(path)
        return None
    return stage.write(path, "".join(f"{m}\n" for m in missing))


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
