"""ImageNet-1k (ILSVRC2012) folders and validation labels -> canonical manifests.

Layouts (the ones torchvision ``ImageFolder`` / ``ImageNet``, timm and PySlowFast
``slowfast/datasets/imagenet.py`` read):

- ``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*.JPEG`` (class folders);
- a flat ``<root>/val/ILSVRC2012_val_00000001.JPEG ...`` plus one of:
  - Kaggle ``LOC_val_solution.csv``: ``ImageId,PredictionString``; the class is the first token of
    ``PredictionString`` (``"n01751748 x1 y1 x2 y2 ..."``);
  - a text file, line ``i`` for image ``ILSVRC2012_val_{i:08d}``: a wnid (e.g. TensorFlow's
    ``imagenet_2012_validation_synset_labels.txt``) or the devkit's 1-based ``ILSVRC2012_ID``
    (``ILSVRC2012_validation_ground_truth.txt``, needs ``val_synsets``: the wnids in devkit id
    order, one per line, which is *not* sorted order);
  - a text file of ``<image file> <wnid>`` lines.

Outputs: ``train.csv`` / ``val.csv`` (image paths, labels as wnids), ``labels.txt`` (the sorted
wnids: index = ``ImageFolder`` class index) and ``missing_val.txt`` for annotated images not
found. Files with other extensions and empty class folders are counted in the summary.
"""
from __future__ import annotations

import csv
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mvit_tasks.data.manifest import (
    ClipRecord,
    ManifestError,
    read_class_list,
)

from ._common import (IMAGE_EXTENSIONS, StagedOutputs, check_not_input, index_media,
                      new_summary, write_missing)

_WNID = re.compile(r"^n\d{8}$")


def list_image_folder(split_dir: str, classes: Optional[Sequence[str]] = None
                      ) -> Tuple[List[str], List[Tuple[str, str]], int, List[str]]:
    """List ``<split_dir>/<class>/**/<image>`` in ``ImageFolder`` order.

    Args:
        split_dir: e.g. ``<root>/train``.
        classes: allowed class names (default: the sorted sub-folder names).

    Returns:
        ``(classes, [(path, class)], skipped non-image files, empty class folders)``.

    Raises:
        ValueError: a class folder that is not in ``classes`` (names the folder).
    """
    dirs = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    names = list(dirs) if classes is None else list(classes)
    known = set(names)
    items: List[Tuple[str, str]] = []
    skipped, empty = 0, []
    for name in dirs:
        folder = os.path.join(split_dir, name)
        if name not in known:
            raise ValueError(f"'{folder}': class folder {name!r} is not one of the "
                             f"{len(names)} classes")
        count = 0
        for sub, _, files in sorted(os.walk(folder, followlinks=True)):
            for fname in sorted(files):
                if os.path.splitext(fname)[1].lower() in IMAGE_EXTENSIONS:
                    items.append((os.path.join(sub, fname), name))
                    count += 1
                else:
                    skipped += 1
        if count == 0:
            empty.append(name)
    return names, items, skipped, empty


def _read_synsets(path: str) -> List[str]:
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            tok = text.split()
            if not tok:
                continue
            if not _WNID.match(tok[0]):
                raise ManifestError(path, line, f"{tok[0]!r} is not a WordNet id (nXXXXXXXX)")
            out.append(tok[0])
    if len(out) > 2 and out == sorted(out):
        raise ValueError(f"'{path}' lists the wnids in sorted order; the devkit's ILSVRC2012_ID "
                         "order (meta.mat) is not sorted, so this mapping would mislabel images")
    return out


def read_val_annotations(path: str, val_synsets: Optional[str] = None
                         ) -> List[Tuple[str, str, int]]:
    """``(image stem, wnid, line)`` for each annotated validation image (formats: see module).

    Raises:
        ManifestError: a malformed row, a bad wnid, an id out of range, or an integer label
            without ``val_synsets``; names file and line.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"validation annotations not found: '{path}'")
    out: List[Tuple[str, str, int]] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        first = f.readline()
        f.seek(0)
        if first.startswith("ImageId"):
            reader = csv.reader(f)
            next(reader)
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                tokens = row[1].split() if len(row) == 2 else []
                if not tokens or not row[0].strip():
                    raise ManifestError(path, reader.line_num,
                                        "expected 'ImageId,PredictionString' with a wnid first")
                out.append((row[0].strip(), tokens[0], reader.line_num))
        else:
            synsets = _read_synsets(val_synsets) if val_synsets else None
            for line, text in enumerate(f, start=1):
                tok = text.split()
                if not tok:
                    continue
                if len(tok) > 2:
                    raise ManifestError(path, line, f"expected '[image] label', got {text!r}")
                image = os.path.splitext(os.path.basename(tok[0]))[0] if len(tok) == 2 \
                    else f"ILSVRC2012_val_{line:08d}"
                label = tok[-1]
                if label.isdigit():
                    if synsets is None:
                        raise ManifestError(path, line, "integer label needs val_synsets (wnids "
                                                        "in devkit ILSVRC2012_ID order)")
                    if not 1 <= int(label) <= len(synsets):
                        raise ManifestError(path, line, f"ILSVRC2012_ID {label} out of range "
                                                        f"[1, {len(synsets)}]")
                    label = synsets[int(label) - 1]
                out.append((image, label, line))
    for image, wnid, line in out:
        if not _WNID.match(wnid):
            raise ManifestError(path, line, f"{wnid!r} is not a WordNet id (nXXXXXXXX)")
    return out


def convert_imagenet(
    root: str,
    out_dir: str,
    splits: Sequence[str] = ("train", "val"),
    val_annotations: Optional[str] = None,
    val_synsets: Optional[str] = None,
    classes: Optional[Union[str, Sequence[str]]] = None,
) -> Dict[str, Any]:
    """Convert ImageNet folders into ``train.csv``, ``val.csv`` and ``labels.txt``.

    Args:
        root: folder holding ``train/`` and ``val/``.
        out_dir: output folder (``root`` itself keeps the manifest paths relative).
        splits: which of ``train`` / ``val`` to convert.
        val_annotations: labels of a flat ``val/`` folder (formats: see the module docstring);
            without it ``val/`` must hold class folders.
        val_synsets: wnids in devkit id order, for integer ``val_annotations``.
        classes: wnids (list or file); default: the sorted folder names of ``train/``.

    Returns:
        The summary; per split also ``skipped_files`` (non-image files), ``empty_classes``
        and, for annotated val, ``unannotated`` (images without a label, not written).

    Raises:
        ManifestError: bad annotation row or a wnid that is not a class (file + line).
        ValueError: unknown split, no class source, a val class folder that is not a class,
            flat ``val/`` without annotations.
    """
    bad = [s for s in splits if s not in ("train", "val")]
    if bad or not splits:
        raise ValueError(f"unknown split(s) {bad}; ImageNet has 'train' and 'val'")
    check_not_input([os.path.join(out_dir, f"{s}.csv") for s in splits],
                    [val_annotations, val_synsets])
    names: Optional[List[str]] = None
    if classes is not None:
        names = read_class_list(classes) if isinstance(classes, str) else list(classes)
    elif "train" not in splits:
        raise ValueError("no 'train' split to take the classes from: pass classes=")
    os.makedirs(out_dir, exist_ok=True)
    summary = new_summary("imagenet", out_dir)
    stage = StagedOutputs()  # nothing is written before every split has validated
    results: Dict[str, Tuple[List[ClipRecord], Dict[str, Any]]] = {}
    for split in sorted(splits, key=lambda s: s != "train"):  # train first: it sets the classes
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"ImageNet {split} folder not found: '{split_dir}'")
        info: Dict[str, Any] = {"source": split_dir, "missing": 0, "missing_file": None}
        if split == "val" and val_annotations is not None:
            records, missing, info["unannotated"] = _annotated_val(split_dir, val_annotations,
                                                                   val_synsets, names)
            info["source"] = val_annotations
            info["missing_file"] = write_missing(stage, out_dir, split, missing)
            info["missing"] = len(missing)
        else:
            if split == "val" and not any(e.is_dir() for e in os.scandir(split_dir)):
                raise ValueError(f"'{split_dir}' has no class folders: pass val_annotations "
                                 "(LOC_val_solution.csv or a ground-truth txt)")
            names, items, info["skipped_files"], info["empty_classes"] = \
                list_image_folder(split_dir, names)
            index = {n: i for i, n in enumerate(names)}
            records = [ClipRecord(p, index[c], os.path.splitext(os.path.basename(p))[0])
                       for p, c in items]
            write_missing(stage, out_dir, split, [])
        results[split] = (records, info)
    labels_file = os.path.join(out_dir, "labels.txt")
    assert names is not None  # set by 'train' or by classes= (checked above)
    stage.write_class_list(labels_file, names)
    summary.update(labels_file=labels_file, num_classes=len(names))
    for split, (records, info) in results.items():
        manifest = os.path.join(out_dir, f"{split}.csv")
        rows = stage.write_manifest(manifest, records, classes=names)
        summary["splits"][split] = {"manifest": manifest, "rows": rows, **info}
    stage.commit()
    return summary


def _annotated_val(split_dir: str, annotations: str, synsets: Optional[str],
                   names: Optional[List[str]]) -> Tuple[List[ClipRecord], List[str], int]:
    if names is None:
        raise ValueError("annotated val needs the classes (convert 'train' too or pass classes=)")
    index = {n: i for i, n in enumerate(names)}
    images = index_media(split_dir, IMAGE_EXTENSIONS)
    records: List[ClipRecord] = []
    missing: List[str] = []
    seen: Dict[str, int] = {}
    for stem, wnid, line in read_val_annotations(annotations, synsets):
        if wnid not in index:
            raise ManifestError(annotations, line, f"wnid {wnid!r} is not one of the "
                                                   f"{len(names)} classes")
        if stem in seen:
            raise ManifestError(annotations, line, f"image {stem!r} already labelled on line "
                                                   f"{seen[stem]}")
        seen[stem] = line
        if stem not in images:
            missing.append(f"{stem}\t{annotations}:{line}")
            continue
        records.append(ClipRecord(images[stem][0], index[wnid], stem, line=line))
    return records, missing, len(set(images) - set(seen))
