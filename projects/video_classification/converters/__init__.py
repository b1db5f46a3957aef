"""Dataset converters: public annotation formats -> the canonical manifest
(``mvit_tasks.data.manifest``: ``<split>.csv`` + ``labels.txt``).

Each ``convert_*`` function validates its input (errors name the file and line or JSON entry),
skips annotated items whose media is missing (counted, and listed in ``missing_<split>.txt``)
and returns a summary dict (``_common.new_summary``). The CLIs are
``datasets/prepare_{kinetics,ssv2,imagenet}.py``.
"""
from ._common import format_summary, run_cli
from .imagenet import convert_imagenet, read_val_annotations
from .kinetics import convert_kinetics, convert_path_label_list, read_kinetics_csv
from .ssv2 import (
    convert_ssv2,
    find_ssv2_annotations,
    load_flip_pairs,
    read_frame_list,
    read_ssv2_labels,
    ssv2_flip_pairs,
)

__all__ = [
    "convert_imagenet",
    "convert_kinetics",
    "convert_path_label_list",
    "convert_ssv2",
    "find_ssv2_annotations",
    "format_summary",
    "run_cli",
    "load_flip_pairs",
    "read_frame_list",
    "read_kinetics_csv",
    "read_ssv2_labels",
    "read_val_annotations",
    "ssv2_flip_pairs",
]
