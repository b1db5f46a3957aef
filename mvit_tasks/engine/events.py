"""Metric writers (JSON lines, TensorBoard) and plots of a run's metrics.

Follows detectron2's ``detectron2/utils/events.py`` (``JSONWriter`` appending one JSON object
per line to ``metrics.json``, ``TensorboardXWriter``) with resume-exact files: a record is a
flat mapping with an int ``"iteration"`` (the number of iterations done when it was logged),
numeric scalars, and nested dicts for evaluation results, e.g.

    ``{"iteration": 120, "epoch": 0.12, "loss": 1.23, "loss_cls": 1.23, "lr": 1.2e-4}``
    ``{"iteration": 1000, "epoch": 1, "eval": {"video_classification": {"top1": 55.0}}}``

(``eval`` holds a ``DatasetEvaluator`` result ``{task: {metric: value}}``; any dict-valued key,
e.g. ``eval_ema``, is treated alike.) Tensors and NumPy scalars are written as numbers.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any, Dict, List, Mapping, Optional, TextIO, Tuple

from mvit_tasks.utils.fileio import atomic_write, atomic_write_text, dumps_json

logger = logging.getLogger(__name__)


def flatten_record(record: Mapping[str, Any], sep: str = "/") -> Dict[str, Any]:
    """Nested dicts become ``outer/inner/...`` keys: ``{"eval": {"t": {"top1": 1}}}`` ->
    ``{"eval/t/top1": 1}``."""
    out: Dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, Mapping):
            for k2, v2 in flatten_record(v, sep).items():
                out[f"{k}{sep}{k2}"] = v2
        else:
            out[k] = v
    return out


def _parse_lines(path: str, text: str) -> Tuple[List[Tuple[str, Dict[str, Any]]], int]:
    """``(raw line, record)`` pairs of a JSONL text and the length of its complete lines.

    A last line without ``\\n`` (a write cut short by a crash) is skipped with a warning; any
    other line that is not a JSON object raises ``ValueError`` naming ``path:line``.
    """
    out: List[Tuple[str, Dict[str, Any]]] = []
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        logger.warning("%s:%d: skipped 1 incomplete last line (interrupted write)",
                       path, len(complete) + 1)
    for i, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
        out.append((line, rec))
    return out, len(text) - len(tail)


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    """All records of a metrics file (see :func:`_parse_lines` for the error rules)."""
    with open(path, "r", encoding="utf-8") as f:
        return [rec for _, rec in _parse_lines(path, f.read())[0]]


class JSONLWriter:
    """Appends one JSON object per line to ``path`` and flushes after every record.

    Opening an existing file appends to it (after dropping an incomplete last line left by a
    crash); ``num_records`` counts the records in the file. On resume from a checkpoint that
    recorded ``num_records == n``, call ``truncate_to(n)`` first (or, for a checkpoint taken
    after iteration ``n`` without a count, ``truncate_after(n)``): the records logged after
    the checkpoint are dropped, so the file of the resumed run equals that of an uninterrupted
    one.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.num_records = 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            with open(path, "r", encoding="utf-8") as f:
                text = f.read()
            records, keep = _parse_lines(path, text)
            self.num_records = len(records)
            if text and not text.endswith("\n"):
                atomic_write_text(path, text[:keep])
        self._file: Optional[TextIO] = open(path, "a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (must have an int ``"iteration"``)."""
        it = record.get("iteration")
        if not isinstance(it, int) or isinstance(it, bool):
            raise ValueError(f"metrics record needs an int 'iteration', got {record!r}")
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        self._file.write(dumps_json(dict(record)) + "\n")  # strict: NaN -> null
        self._file.flush()
        self.num_records += 1

    def truncate_after(self, iteration: int) -> int:
        """Drop the records with ``record["iteration"] > iteration``; returns how many."""
        def keep(i: int, line: str, rec: Dict[str, Any]) -> bool:
            it = rec.get("iteration")
            if not isinstance(it, int):
                raise ValueError(f"{self.path}: record {i} has no int 'iteration': {line}")
            return it <= iteration

        return self._rewrite(keep)

    def truncate_to(self, num_records: int) -> int:
        """Keep the first ``num_records`` records; returns how many were dropped."""
        return self._rewrite(lambda i, line, rec: i <= num_records)

    def _rewrite(self, keep: Any) -> int:
        if self._file is not None:
            self._file.close()
        with open(self.path, "r", encoding="utf-8") as f:
            records, _ = _parse_lines(self.path, f.read())
        kept = [line + "\n" for i, (line, rec) in enumerate(records, 1) if keep(i, line, rec)]
        atomic_write_text(self.path, "".join(kept))
        self._file = open(self.path, "a", encoding="utf-8")
        self.num_records = len(kept)
        return len(records) - len(kept)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "JSONLWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TensorBoardWriter:
    """Writes the numeric scalars of each record to TensorBoard at step ``record["iteration"]``.

    Nested results are flattened (``eval/video_classification/top1``). ``torch.utils.tensorboard``
    is imported on construction; if it is missing a clear ``ImportError`` is raised, unless
    ``enabled=False`` (then every call is a no-op). ``purge_step``: on resume, events at and after
    this step written by the interrupted run are hidden (SummaryWriter semantics).
    """

    def __init__(self, log_dir: str, enabled: bool = True,
                 purge_step: Optional[int] = None) -> None:
        self.log_dir = log_dir
        self._writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                f"TensorBoard logging to {log_dir} needs the `tensorboard` package "
                f"(pip install tensorboard), or disable TensorBoard logging: {e}"
            ) from e
        self._writer = SummaryWriter(log_dir, purge_step=purge_step)

    def write(self, record: Mapping[str, Any]) -> None:
        if self._writer is None:
            return
        step = int(record["iteration"])
        for k, v in flatten_record(record).items():
            if k == "iteration" or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            self._writer.add_scalar(k, v, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _save_plot(path: str, series: Dict[str, Tuple[List[float], List[float]]], xlabel: str,
               ylabel: str, title: str) -> None:
    """Line plot of ``{label: (xs, ys)}`` written atomically to ``path`` (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def plot_metrics(jsonl_path: str, out_dir: str) -> List[str]:
    """PNG plots of a metrics file; returns the paths written (existing ones are replaced).

    * ``loss.png``: ``loss`` and every ``loss_*`` of the training records vs iteration;
    * ``lr.png``: ``lr`` vs iteration;
    * ``<key>_<task>_<metric>.png`` (e.g. ``eval_video_classification_top1.png``): every
      evaluation metric vs ``epoch`` (vs iteration for records without an epoch).

    Non-finite values are left out of the plots. Plots with no data are not written.
    """
    records = read_jsonl(jsonl_path)
    os.makedirs(out_dir, exist_ok=True)
    losses: Dict[str, Tuple[List[float], List[float]]] = {}
    lr: Tuple[List[float], List[float]] = ([], [])
    evals: Dict[str, Tuple[List[float], List[float]]] = {}
    for rec in records:
        it = rec.get("iteration")
        nested = {k: v for k, v in rec.items() if isinstance(v, dict)}
        if nested:
            x = rec.get("epoch", it)
            for k, v in flatten_record(nested).items():
                if _finite(v) and _finite(x):
                    evals.setdefault(k, ([], []))[0].append(x)
                    evals[k][1].append(v)
        if not _finite(it):
            continue
        for k, v in rec.items():
            if (k == "loss" or k.startswith("loss_")) and _finite(v):
                losses.setdefault(k, ([], []))[0].append(it)
                losses[k][1].append(v)
        if _finite(rec.get("lr")):
            lr[0].append(it)
            lr[1].append(rec["lr"])
    paths: List[str] = []
    if losses:
        paths.append(os.path.join(out_dir, "loss.png"))
        _save_plot(paths[-1], losses, "iteration", "loss", "training loss")
    if lr[0]:
        paths.append(os.path.join(out_dir, "lr.png"))
        _save_plot(paths[-1], {"lr": lr}, "iteration", "learning rate", "learning rate")
    for key, xy in evals.items():
        paths.append(os.path.join(out_dir, _safe_name(key.replace("/", "_")) + ".png"))
        _save_plot(paths[-1], {key: xy}, "epoch", key.rsplit("/", 1)[-1], key)
    return paths
