"""One run per ``OUTPUT_DIR``: a new training run does not write into another run's folder.

A folder holds a run when it has a checkpoint (``checkpoints/*.pth``) or a
``final_report.json``. A new (not resumed) training run there is refused with a message that
names the files, unless the user asks to overwrite: then the old run's files
(:data:`RUN_FILES`) are removed first, so the two runs' logs and checkpoints never mix. A run
killed before its first checkpoint left nothing to resume; a new run simply starts over there
(its ``metrics.jsonl`` is started anew).
"""
from __future__ import annotations

import os
import shutil
from typing import List

from mvit_tasks.utils.cli import UserError

RUN_FILES = ("checkpoints", "metrics.jsonl", "iterations.jsonl", "final_report.json", "eval",
             "tensorboard", "plots", "config.yaml", "report.html")


def run_files(output_dir: str) -> List[str]:
    """The :data:`RUN_FILES` present in ``output_dir``."""
    return [n for n in RUN_FILES if os.path.exists(os.path.join(output_dir, n))]


def holds_run(output_dir: str) -> bool:
    """A checkpoint or a final report of a run is in ``output_dir``."""
    ckpt = os.path.join(output_dir, "checkpoints")
    has_ckpt = os.path.isdir(ckpt) and any(
        n.endswith(".pth") and not n.startswith(".tmp_") for n in os.listdir(ckpt))
    return has_ckpt or os.path.isfile(os.path.join(output_dir, "final_report.json"))


def claim_output_dir(output_dir: str, resume: bool, overwrite: bool) -> List[str]:
    """Make ``output_dir`` ready for a training run; returns the files removed.

    Raises:
        UserError: the folder holds another run and neither ``resume`` nor ``overwrite``.
    """
    if resume or not holds_run(output_dir):
        return []
    present = run_files(output_dir)
    if not overwrite:
        raise UserError(
            f"OUTPUT_DIR {output_dir} holds another run ({', '.join(present)}): pass --resume "
            "to continue it, --overwrite to delete it and start over, or choose another "
            "OUTPUT_DIR")
    for name in present:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return present
