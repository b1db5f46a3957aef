"""``OUTPUT_DIR/report.html``: the one page to read after a run.

A self-contained HTML file (images embedded as base64 PNG, no JavaScript) built from the files
a run leaves in its folder:

* the summary and final metrics of ``final_report.json`` (for a folder without one, e.g. of
  ``--eval-only``, the results of the newest ``eval/<tag>/results.json``);
* the plots of ``plots/`` (loss, learning rate, evaluation metrics per epoch);
* the charts of the last evaluation (``eval/<tag>/*.png``: confusion matrix, per-class AP);
* the skipped files (training and evaluation) and the evaluation's input warnings;
* the run's ``config.yaml``.

:class:`~mvit_tasks.engine.hooks.Plots` writes it after every epoch and at the end of
training; ``python -m mvit_tasks.engine.report OUTPUT_DIR`` (re)writes it for any folder.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mvit_tasks.utils.fileio import atomic_write_text

from .events import is_counter, is_per_class, plot_metrics

REPORT_FILE = "report.html"
_PLOT_ORDER = ("loss.png", "lr.png")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.counter td { color: #777; }
.plots { display: flex; flex-wrap: wrap; gap: 0.5em; }
.plots figure { margin: 0; } .plots img { width: 640px; max-width: 100%; }
.charts img { max-width: 100%; }
figcaption { font-size: 0.8em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.status { padding: 0.4em 0.8em; background: #eef5ff; display: inline-block; }
.muted { color: #777; }
"""


def _read_json(path: str) -> Optional[Any]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def last_eval_dir(output_dir: str) -> Optional[str]:
    """The ``eval/<tag>`` folder whose ``results.json`` was written last (None if none)."""
    root = os.path.join(output_dir, "eval")
    if not os.path.isdir(root):
        return None
    found = [(os.path.getmtime(os.path.join(root, d, "results.json")), d)
             for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "results.json"))]
    return os.path.join(root, max(found)[1]) if found else None


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "n/a"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _table(header: Optional[Sequence[str]], rows: Sequence[Tuple[Sequence[Any], str]]) -> str:
    """An HTML table; each row is ``(cells, css class)``; numbers are right-aligned."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for cells, cls in rows:
        tds = "".join(
            f'<td class="num">{html.escape(_fmt(c))}</td>' if isinstance(c, (int, float))
            and not isinstance(c, bool) else f"<td>{html.escape(_fmt(c))}</td>" for c in cells)
        out.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    return "\n".join(out + ["</table>"])


def _img(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _figures(paths: Sequence[str], root: str) -> str:
    return "\n".join(
        f"<figure>{_img(p, os.path.relpath(p, root))}<figcaption>"
        f"{html.escape(os.path.relpath(p, root))}</figcaption></figure>" for p in paths)


def _results_section(results: Mapping[str, Any]) -> str:
    """One table per task: the metrics, then the counters (muted); per-class values folded."""
    if not results:
        return '<p class="muted">no evaluation results</p>'
    parts = []
    for task, metrics in results.items():
        if not isinstance(metrics, Mapping):
            continue
        main = [(k, v) for k, v in metrics.items() if not is_per_class(k)]
        main.sort(key=lambda kv: is_counter(kv[0]))  # metrics first, counters after
        parts.append(f"<h3>{html.escape(str(task))}</h3>")
        parts.append(_table(["metric", "value"],
                            [((k, v), "counter" if is_counter(k) else "") for k, v in main]))
        per_class = [(k, v) for k, v in metrics.items() if is_per_class(k)]
        if per_class:
            parts.append(f"<details><summary>{len(per_class)} per-class values</summary>"
                         + _table(["metric", "value"], [((k, v), "") for k, v in per_class])
                         + "</details>")
    return "\n".join(parts)


def _skipped_section(title: str, rows: Sequence[Any]) -> str:
    if not rows:
        return f"<h3>{html.escape(title)}</h3><p>none</p>"
    table_rows = []
    for r in rows:
        if isinstance(r, Mapping):
            table_rows.append(((r.get("path"), r.get("reason"), r.get("count", 1)), ""))
        elif isinstance(r, (list, tuple)) and len(r) >= 2:
            table_rows.append(((r[0], r[1], 1), ""))
    return (f"<h3>{html.escape(title)} ({len(table_rows)})</h3>"
            + _table(["file", "reason", "times"], table_rows))


def _summary(report: Optional[Mapping[str, Any]], eval_results: Optional[Mapping[str, Any]]
             ) -> Tuple[str, str]:
    """(status line, summary table)."""
    if report is None:
        status = ("evaluation only (no final_report.json)" if eval_results is not None
                  else "in progress or interrupted: no final_report.json yet")
        return status, ""
    status = "finished" if report.get("finished") else \
        "stopped before the end of the schedule (TRAIN.MAX_ITERS or interrupted)"
    rows = [("task", report.get("task")), ("iterations", report.get("iterations")),
            ("epochs", report.get("epochs")), ("best (primary metric)", report.get("best")),
            ("training time", _duration(report.get("train_seconds"))),
            ("training samples seen", report.get("train_samples_seen")),
            ("training samples skipped", report.get("skipped_train_count"))]
    return status, _table(None, [(r, "") for r in rows])


def build_report(output_dir: str) -> str:
    """The HTML text of the report of the run in ``output_dir`` (see the module docstring)."""
    report = _read_json(os.path.join(output_dir, "final_report.json"))
    report = report if isinstance(report, dict) else None
    eval_dir = last_eval_dir(output_dir)
    eval_json = _read_json(os.path.join(eval_dir, "results.json")) if eval_dir else None
    eval_json = eval_json if isinstance(eval_json, dict) else None
    results = (report or {}).get("results") or (eval_json or {}).get("results") or {}
    status, summary = _summary(report, eval_json)
    task = (report or {}).get("task") or ", ".join(results) or "run"
    root = os.path.abspath(output_dir)
    body = [f"<h1>Run report: {html.escape(str(task))}</h1>",
            f"<p><code>{html.escape(root)}</code></p>",
            f'<p class="status">{html.escape(status)}</p>', summary]
    body.append("<h2>Final metrics</h2>")
    if report is None and eval_dir:
        body.append(f'<p class="muted">from {html.escape(os.path.relpath(eval_dir, root))}'
                    "/results.json</p>")
    body.append(_results_section(results))

    plots_dir = os.path.join(output_dir, "plots")
    names = sorted(os.listdir(plots_dir)) if os.path.isdir(plots_dir) else []
    names = [n for n in _PLOT_ORDER if n in names] + \
        [n for n in names if n.endswith(".png") and n not in _PLOT_ORDER]
    body.append("<h2>Training curves</h2>")
    body.append(f'<div class="plots">{_figures([os.path.join(plots_dir, n) for n in names], root)}'
                "</div>" if names else '<p class="muted">no plots</p>')

    if eval_dir:
        charts = sorted(os.path.join(eval_dir, n) for n in os.listdir(eval_dir)
                        if n.endswith(".png"))
        body.append(f"<h2>Last evaluation: {html.escape(os.path.basename(eval_dir))}</h2>")
        body.append(f'<div class="charts">{_figures(charts, root)}</div>' if charts
                    else '<p class="muted">no charts</p>')
        warnings = (eval_json or {}).get("input_warnings") or []
        if warnings:
            body.append(f"<h3>Evaluation input warnings ({len(warnings)})</h3><pre>"
                        + html.escape("\n".join(str(w) for w in warnings)) + "</pre>")

    body.append("<h2>Skipped files</h2>")
    if report is not None:
        body.append(_skipped_section("training", report.get("skipped_train") or []))
        body.append(_skipped_section("evaluation", report.get("skipped_eval") or []))
    else:
        body.append(_skipped_section("evaluation", (eval_json or {}).get("skipped") or []))

    config = _read_text(os.path.join(output_dir, "config.yaml"))
    body.append("<h2>Config</h2>")
    body.append("<details><summary>config.yaml</summary><pre>" + html.escape(config)
                + "</pre></details>" if config is not None
                else '<p class="muted">no config.yaml</p>')
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(str(task))}: run report</title><style>{_CSS}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(output_dir: str, path: Optional[str] = None) -> str:
    """Write :func:`build_report` to ``path`` (default ``OUTPUT_DIR/report.html``)
    atomically; returns the path."""
    path = path or os.path.join(output_dir, REPORT_FILE)
    atomic_write_text(path, build_report(output_dir))
    return path


def try_write_report(output_dir: str) -> Optional[str]:
    """:func:`write_report`, or a WARNING naming the file and the error (a report never ends a
    training or an evaluation run); returns the path written or ``None``."""
    try:
        return write_report(output_dir)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        logging.getLogger(__name__).warning(
            "could not write %s: %s: %s", os.path.join(output_dir, REPORT_FILE),
            type(e).__name__, e)
        return None


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """``python -m mvit_tasks.engine.report OUTPUT_DIR``: redraw the plots (if the folder has
    a ``metrics.jsonl``) and write ``report.html``."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("output_dir")
    p.add_argument("--no-plots", action="store_true", help="keep plots/ as it is")
    args = p.parse_args(argv)
    metrics = os.path.join(args.output_dir, "metrics.jsonl")
    if not args.no_plots and os.path.isfile(metrics):
        plot_metrics(metrics, os.path.join(args.output_dir, "plots"))
    path = write_report(args.output_dir)
    print(path)
    return {"report": path}


if __name__ == "__main__":
    main()
