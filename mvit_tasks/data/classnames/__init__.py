"""Class-name lists of the datasets the published weights were trained on, shipped as data.

``load_class_names("kinetics400")`` returns the names in class-index order (index ``i`` is
output ``i`` of a head trained on that dataset). Where each list comes from, and how it was
checked, is in ``SOURCES.md`` next to the files and in :data:`CLASS_LISTS`.

AVA (``"ava80"``) is indexed by action id - 1 (ids 1..80); only the 60 ids of the official
evaluation label map have names here (:func:`ava_evaluated_ids`), the other 20 names are
``""``: the full 80-name list (``ava_action_list_v2.2.pbtxt``) was not available offline from
an official source.
"""
from __future__ import annotations

import functools
import os
from typing import Dict, List, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))

#: name -> (file, number of classes, provenance in one line)
CLASS_LISTS: Dict[str, Tuple[str, int, str]] = {
    "kinetics400": ("kinetics400.txt", 400,
                    "torchvision.models._meta._KINETICS400_CATEGORIES; equals the sorted labels "
                    "of the official kinetics-400_val.csv (activitynet/ActivityNet "
                    "Crawler/Kinetics/data)"),
    "kinetics600": ("kinetics600.txt", 600,
                    "sorted unique labels of the official kinetics-600_val.csv "
                    "(activitynet/ActivityNet Crawler/Kinetics/data)"),
    "kinetics700": ("kinetics700.txt", 700,
                    "open-mmlab/mmaction2 tools/data/kinetics/label_map_k700.txt (third-party; "
                    "its K400 / K600 lists equal the two above)"),
    "ssv2": ("ssv2.txt", 174,
             "open-mmlab/mmaction2 tools/data/sthv2/label_map.txt (third-party): the 174 "
             "templates in id order of the official something-something-v2-labels.json"),
    "imagenet1k": ("imagenet1k.txt", 1000, "torchvision.models._meta._IMAGENET_CATEGORIES"),
    "coco80": ("coco80.txt", 80,
               "torchvision.models._meta._COCO_CATEGORIES without '__background__' and the "
               "'N/A' gaps (contiguous ids in category-id order, as detectron2)"),
    "ava80": ("ava80.tsv", 80,
              "ids 1..80; the 60 evaluated names from the official "
              "ava_action_list_v2.1_for_activitynet_2018.pbtxt (activitynet/ActivityNet "
              "Evaluation/ava); the other 20 names are not available offline ('')"),
}


def list_class_lists() -> List[str]:
    """Names accepted by :func:`load_class_names`."""
    return sorted(CLASS_LISTS)


def _path(name: str) -> str:
    if name not in CLASS_LISTS:
        raise KeyError(f"unknown class list {name!r}; known: {list_class_lists()}")
    return os.path.join(_HERE, CLASS_LISTS[name][0])


@functools.lru_cache(maxsize=None)
def _read(name: str) -> Tuple[str, ...]:
    path = _path(name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class list '{path}' is missing from this install (package "
                                "data mvit_tasks/data/classnames/*)")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if path.endswith(".tsv"):
        names = [row.split("\t")[1] for row in lines[1:]]
    else:
        names = lines
    expected = CLASS_LISTS[name][1]
    if len(names) != expected:
        raise ValueError(f"class list '{path}' has {len(names)} names, expected {expected}")
    return tuple(names)


def load_class_names(name: str) -> List[str]:
    """The ``K`` class names of list ``name`` in class-index order (a new list each call)."""
    return list(_read(name))


@functools.lru_cache(maxsize=None)
def _ava_evaluated() -> Tuple[int, ...]:
    with open(_path("ava80"), encoding="utf-8") as f:
        rows = [row.split("\t") for row in f.read().splitlines()[1:]]
    return tuple(int(r[0]) for r in rows if r[2] == "1")


def ava_evaluated_ids() -> List[int]:
    """The 60 AVA action ids (1-based) of the official evaluation (ActivityNet label map)."""
    return list(_ava_evaluated())


__all__ = ["CLASS_LISTS", "ava_evaluated_ids", "list_class_lists", "load_class_names"]
