"""Metric writers (JSON lines, TensorBoard) and plots of a run's metrics.

Follows detectron2's ``detectron2/utils/events.py`` (``JSONWriter`` appending one JSON object
per line to ``metrics.json``, ``TensorboardXWriter``) with resume-exact files: a record is a
flat mapping with an int ``"iteration"`` (the number of iterations done when it was logged),
numeric scalars, and nested dicts for evaluation results, e.g.

    ``{"iteration": 120, "epoch": 0.12, "loss": 1.23, "loss_cls": 1.23, "lr": 1.2e-4}``
    ``{"iteration": 1000, "epoch": 1, "eval": {"video_classification": {"top1": 55.0}}}``

(``eval`` holds a ``DatasetEvaluator`` result ``{task: {metric: value}}``; any dict-valued key,
e.g. ``eval_ema``, is treated alike.) Tensors and NumPy scalars are written as numbers.

Plots (:func:`plot_metrics`): the loss of every iteration faintly with its window median
(``iterations.jsonl`` holds the per-iteration values, see :func:`read_iterations`), the
learning rate of every iteration (the warm-up shows), each evaluation metric vs epoch (no
counters such as ``num_views``), and :func:`per_class_figure` for the evaluators' per-class
charts. Figures are drawn on an Agg canvas (no pyplot state) and written atomically.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

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


# ------------------------------------------------------------------------------------ plots
ITERATIONS_FILE = "iterations.jsonl"  # per-iteration values (hooks.MetricsWriter), see below
SMOOTHING_WINDOW = 20  # detectron2's SmoothedValue / CommonMetricPrinter window
_BOOKKEEPING = {"iteration", "epoch", "samples", "time", "seconds"}
Series = Tuple[List[float], List[float]]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_counter(name: str) -> bool:
    """Counts and bookkeeping, not metrics: ``num_*``, ``*_count``, ``skipped*``, ``samples``,
    ``iteration``, ``epoch``, ``time*`` (``name`` may be a flattened ``eval/task/metric``)."""
    leaf = name.rsplit("/", 1)[-1].lower()
    return (leaf in _BOOKKEEPING or leaf.startswith(("num_", "skipped", "time"))
            or leaf.endswith(("_count", "_samples", "_seconds", "_time")))


def is_per_class(name: str) -> bool:
    """A per-class metric (detectron2's ``AP-<category>``): charted per evaluation by the
    evaluator, not plotted over epochs."""
    return name.rsplit("/", 1)[-1].startswith("AP-")


def window_median(values: Sequence[float], window: int = SMOOTHING_WINDOW) -> List[float]:
    """At each position, the median of that value and the ``window - 1`` before it (fewer at
    the start): detectron2's ``SmoothedValue(window).median`` after every update."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    out = [float(np.median(v[:i + 1])) for i in range(min(len(v), window - 1))]
    if len(v) >= window:
        out += np.median(np.lib.stride_tricks.sliding_window_view(v, window), axis=1).tolist()
    return out


def read_iterations(path: str) -> Dict[str, Series]:
    """``{key: (iterations, values)}`` of an ``iterations.jsonl``, whose records are
    ``{"iteration": last, "start": first, "lr": [...], "loss": [...], <loss term>: [...]}``
    (one value per iteration from ``start`` to ``iteration``; null where a step had none)."""
    out: Dict[str, Series] = {}
    for rec in read_jsonl(path):
        lists = {k: v for k, v in rec.items() if isinstance(v, list)}
        n = max((len(v) for v in lists.values()), default=0)
        start = rec.get("start", rec.get("iteration", n) - n + 1)
        for key, values in lists.items():
            xs, ys = out.setdefault(key, ([], []))
            for j, v in enumerate(values):
                if _finite(v):
                    xs.append(start + j)
                    ys.append(float(v))
    return out


def new_figure(width: float = 6.4, height: float = 4.0) -> Any:
    """A matplotlib Figure on an Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str) -> str:
    """``fig`` as a PNG written atomically to ``path``; returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path


def _steps_per_epoch(records: Sequence[Mapping[str, Any]]) -> Optional[float]:
    """Iterations per epoch from the training records (``epoch`` = iteration / steps)."""
    ratios = sorted(r["iteration"] / r["epoch"] for r in records if "lr" in r
                    and _finite(r.get("iteration")) and _finite(r.get("epoch")) and r["epoch"] > 0)
    return ratios[len(ratios) // 2] if ratios else None


def _iteration_axes(fig: Any, title: str, ylabel: str, steps: Optional[float]) -> Any:
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if steps:
        top = ax.secondary_xaxis("top", functions=(lambda x: x / steps, lambda e: e * steps))
        top.set_xlabel("epoch", fontsize=8)
        top.tick_params(labelsize=8)
    return ax


_MAX_POINTS = 4000  # longer series are drawn per bin (~1000 bins): band or bin means


def _bins(n: int) -> List[Tuple[int, int]]:
    import numpy as np

    edges = np.linspace(0, n, 1001).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _draw_raw(ax: Any, xs: Sequence[float], ys: Sequence[float], label: str) -> None:
    """Every value as a faint line, or for long runs the min-max band of each bin."""
    if len(xs) <= _MAX_POINTS:
        ax.plot(xs, ys, color="C0", alpha=0.3, linewidth=0.8, label=label)
        return
    import numpy as np

    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    bins = _bins(len(x))
    ax.fill_between([x[a:b].mean() for a, b in bins], [y[a:b].min() for a, b in bins],
                    [y[a:b].max() for a, b in bins], color="C0", alpha=0.25, linewidth=0,
                    label=label + " (min-max)")


def _draw_smooth(ax: Any, xs: Sequence[float], ys: Sequence[float], **kw: Any) -> None:
    """A smoothed series as a line (for long runs: the mean of each bin, so it stays thin)."""
    if len(xs) > _MAX_POINTS:
        import numpy as np

        x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        bins = _bins(len(x))
        xs, ys = [x[a:b].mean() for a, b in bins], [y[a:b].mean() for a, b in bins]
    ax.plot(xs, ys, **kw)


def loss_figure(records: Sequence[Mapping[str, Any]], iterations: Mapping[str, Series],
                window: int = SMOOTHING_WINDOW) -> Any:
    """Training loss vs iteration: each iteration's ``loss`` faintly, its ``window`` median
    bold, and the medians of the loss terms when there are several. Without per-iteration
    values (``iterations`` empty), the logged ``loss`` / ``loss_*`` of ``records``."""
    fig = new_figure()
    ax = _iteration_axes(fig, "training loss", "loss", _steps_per_epoch(records))
    if iterations.get("loss", ([], []))[0]:
        xs, ys = iterations["loss"]
        _draw_raw(ax, xs, ys, "loss, each iteration")
        _draw_smooth(ax, xs, window_median(ys, window), color="C0", linewidth=2.0,
                     label=f"loss, median of {window}")
        terms = sorted(k for k in iterations if k.startswith("loss_") and iterations[k][0])
        if len(terms) > 1:
            for i, k in enumerate(terms, 1):
                _draw_smooth(ax, iterations[k][0], window_median(iterations[k][1], window),
                             color=f"C{i}", linewidth=1.0, label=f"{k}, median")
    else:
        keys = sorted({k for r in records for k in r if k == "loss" or k.startswith("loss_")})
        for k in keys:
            pts = [(r["iteration"], r[k]) for r in records
                   if _finite(r.get(k)) and _finite(r.get("iteration"))]
            ax.plot(*zip(*pts), marker="o" if len(pts) < 30 else None, markersize=3,
                    label=f"{k} (logged)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def lr_figure(records: Sequence[Mapping[str, Any]], iterations: Mapping[str, Series]) -> Any:
    """Learning rate vs iteration (each iteration's when known, so the warm-up ramp shows),
    with its peak marked."""
    from matplotlib.ticker import FuncFormatter

    xs, ys = iterations.get("lr", ([], []))
    if not xs:
        pts = [(r["iteration"], r["lr"]) for r in records
               if _finite(r.get("lr")) and _finite(r.get("iteration"))]
        xs, ys = (list(t) for t in zip(*pts))
    i = max(range(len(ys)), key=ys.__getitem__)
    fig = new_figure()
    ax = _iteration_axes(fig, f"learning rate (peak {ys[i]:.3g} at iteration {xs[i]:g})",
                         "learning rate", _steps_per_epoch(records))
    ax.plot(xs, ys, color="C0", marker="o" if len(xs) < 30 else None, markersize=3,
            label="learning rate")
    ax.plot([xs[i]], [ys[i]], "o", color="C3", markersize=4, label="peak")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))  # no offset text
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    return fig


def eval_figure(key: str, xs: Sequence[float], ys: Sequence[float]) -> Any:
    """One evaluation metric (flattened ``eval/<task>/<metric>`` key) vs epoch, its maximum
    marked."""
    from matplotlib.ticker import MaxNLocator

    parts = key.split("/")
    metric, where = parts[-1], " / ".join(parts[:-1])
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(xs, ys, color="C0", marker="o" if len(xs) < 60 else None, markersize=4,
            clip_on=False)
    i = max(range(len(ys)), key=ys.__getitem__)
    ax.annotate(f"max {ys[i]:.4g} (epoch {xs[i]:g})", (xs[i], ys[i]), fontsize=8,
                xytext=(0, 6), textcoords="offset points", ha="center")
    epochs = sorted(set(xs))
    if len(epochs) <= 12:
        ax.set_xticks(epochs)
        ax.set_xticklabels([f"{e:g}" for e in epochs])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) == 1:
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    ax.margins(x=0.08, y=0.15)
    low, high = ax.get_ylim()
    if min(ys) >= 0 > low:  # no negative axis for a non-negative metric (AP 0, ...)
        ax.set_ylim(0, high if max(ys) > 0 else 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} ({where})")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def metric_figures(records: Sequence[Mapping[str, Any]],
                   iterations: Optional[Mapping[str, Series]] = None) -> Dict[str, Any]:
    """``{file name: Figure}``: ``loss.png``, ``lr.png`` and one ``<key>_<task>_<metric>.png``
    per evaluation metric (counters and per-class metrics left out, see :func:`is_counter`,
    :func:`is_per_class`), x = ``epoch`` (iteration for records without one)."""
    iterations = iterations or {}
    evals: Dict[str, Series] = {}
    for rec in records:
        nested = {k: v for k, v in rec.items() if isinstance(v, dict)}
        x = rec.get("epoch", rec.get("iteration"))
        for k, v in flatten_record(nested).items():
            if _finite(v) and _finite(x) and not is_counter(k) and not is_per_class(k):
                evals.setdefault(k, ([], []))[0].append(x)
                evals[k][1].append(v)
    out: Dict[str, Any] = {}
    has = lambda k: iterations.get(k, ([], []))[0] or any(  # noqa: E731
        _finite(r.get(k)) and _finite(r.get("iteration")) for r in records)
    if has("loss") or any(k.startswith("loss_") for r in records for k in r):
        out["loss.png"] = loss_figure(records, iterations)
    if has("lr"):
        out["lr.png"] = lr_figure(records, iterations)
    for key, (xs, ys) in evals.items():
        out[_safe_name(key.replace("/", "_")) + ".png"] = eval_figure(key, xs, ys)
    return out


def plot_metrics(jsonl_path: str, out_dir: str,
                 iterations_path: Optional[str] = None) -> List[str]:
    """PNG plots of a metrics file (see :func:`metric_figures`); returns the paths written
    (existing ones are replaced). ``iterations_path`` (default: ``iterations.jsonl`` next to
    ``jsonl_path``, if it exists) gives the per-iteration loss and LR. Non-finite values are
    left out; plots with no data are not written."""
    if iterations_path is None:
        iterations_path = os.path.join(os.path.dirname(jsonl_path), ITERATIONS_FILE)
    iterations = read_iterations(iterations_path) if os.path.isfile(iterations_path) else {}
    figures = metric_figures(read_jsonl(jsonl_path), iterations)
    return [save_figure(fig, os.path.join(out_dir, name)) for name, fig in figures.items()]


def per_class_figure(values: Mapping[str, Optional[float]], title: str,
                     xlabel: str = "AP (%)", vmax: Optional[float] = 100.0) -> Any:
    """Horizontal bars of ``{class name: value}``, sorted descending (ties keep the given
    order), each labelled with its value; classes without a value (None / NaN) are named in a
    note below. ``vmax``: the x-axis end (None: from the data)."""
    items = sorted(((n, float(v)) for n, v in values.items() if _finite(v)),
                   key=lambda nv: -nv[1])
    missing = [str(n) for n, v in values.items() if not _finite(v)]
    n = len(items)
    height = max(2.2, 0.22 * n + 1.4)
    fig = new_figure(7.0, height)
    ax = fig.add_subplot(1, 1, 1)
    top = max([v for _, v in items] + [vmax or 0.0, 1e-9])
    ax.barh(range(n), [v for _, v in items], color="C0", height=0.7)
    ax.set_yticks(range(n))
    ax.set_yticklabels([name for name, _ in items], fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)  # the largest on top
    for i, (_, v) in enumerate(items):
        ax.text(v + 0.01 * top, i, f"{v:.1f}", va="center", fontsize=7)
    ax.set_xlim(0, 1.08 * top)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    if not items:
        ax.text(0.5, 0.5, "no class has a value", ha="center", va="center",
                transform=ax.transAxes)
    bottom = 0.0
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8
                                          else "")
        fig.text(0.01, 0.08 / height, f"no value (no ground truth): {shown}", fontsize=7)
        bottom = 0.3 / height
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig
