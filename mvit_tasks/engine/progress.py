"""Training progress with ETA, readable in plain (non-TTY) logs such as CI output.

Line format (detectron2's ``CommonMetricPrinter`` content, one line per report)::

    [epoch 3] it 120/1000 12% | loss 1.23 | lr 1.2e-4 | 0.53 s/it | ETA 0:07:45

The ETA is ``(total - iteration) x`` the mean seconds per iteration over a moving window of
recent reports, ignoring the first ``skip_iters`` iterations after (re)start (data-loader start
up, cuDNN autotuning, compilation). On a TTY stream a tqdm bar shows the same fields instead.
"""
from __future__ import annotations

import collections
import datetime
import sys
import time
from typing import Any, Callable, Deque, Optional, TextIO, Tuple


def format_value(v: Any) -> str:
    """Compact number: ``1.23``, ``0.5``, ``1.2e-4``, ``3e+06``; other values via ``str``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if hasattr(v, "item"):
            return format_value(v.item())
        return str(v)
    if isinstance(v, int):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        mant, exp = f"{v:.2e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{int(exp)}" if int(exp) < 0 else f"{mant}e+{int(exp)}"
    return f"{v:.4g}"


def format_eta(seconds: Optional[float]) -> str:
    """``H:MM:SS`` (``1 day, H:MM:SS`` past a day); ``?`` when unknown."""
    if seconds is None:
        return "?"
    return str(datetime.timedelta(seconds=int(round(max(0.0, seconds)))))


class ProgressBar:
    """Reports ``iteration / total_iters`` with metrics, speed and ETA.

    Args:
        total_iters: iterations of the whole run (``max_epoch * iters_per_epoch``).
        start_iter: iterations already done (0, or the resumed position).
        desc: prefix of each line (e.g. the run name); may be empty.
        stream: where to write (default ``sys.stderr``); a TTY gets a tqdm bar.
        log_period: plain mode writes a line every ``log_period`` iterations ...
        min_interval_s: ... but not more often than this many seconds (the final iteration
            is always reported).
        window: number of recent reports averaged for s/it and ETA.
        skip_iters: iterations after (re)start excluded from the timing.
        use_tqdm: force (True) / forbid (False) the tqdm bar; default: ``stream.isatty()``.
        clock: time source (``time.perf_counter``); tests pass a fake one.
    """

    def __init__(self, total_iters: int, start_iter: int = 0, desc: str = "",
                 stream: Optional[TextIO] = None, log_period: int = 20,
                 min_interval_s: float = 0.0, window: int = 20, skip_iters: int = 2,
                 use_tqdm: Optional[bool] = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if total_iters <= 0 or not 0 <= start_iter <= total_iters:
            raise ValueError(f"need 0 <= start_iter ({start_iter}) <= total_iters ({total_iters})")
        self.total = int(total_iters)
        self.start_iter = int(start_iter)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.log_period = max(1, int(log_period))
        self.min_interval_s = float(min_interval_s)
        self.skip_iters = int(skip_iters)
        self.clock = clock
        self._times: Deque[Tuple[int, float]] = collections.deque(maxlen=max(1, window))
        self._prev: Optional[Tuple[int, float]] = None
        self._last_line: Optional[Tuple[int, float]] = None
        if use_tqdm is None:
            isatty = getattr(self.stream, "isatty", None)
            use_tqdm = bool(isatty()) if callable(isatty) else False
        self._tqdm = None
        if use_tqdm:
            from tqdm import tqdm

            self._tqdm = tqdm(total=self.total, initial=self.start_iter, desc=desc or None,
                              file=self.stream, dynamic_ncols=True, leave=True)

    # ------------------------------------------------------------------------------ timing
    def _record(self, iteration: int, now: float) -> None:
        if self._prev is not None and iteration > self._prev[0] and \
                self._prev[0] >= self.start_iter + self.skip_iters:
            self._times.append((iteration - self._prev[0], now - self._prev[1]))
        if self._prev is None or iteration > self._prev[0]:
            self._prev = (iteration, now)

    @property
    def seconds_per_iter(self) -> Optional[float]:
        """Mean seconds per iteration over the window; None before the first measurement."""
        n = sum(d for d, _ in self._times)
        return sum(t for _, t in self._times) / n if n else None

    def eta_seconds(self, iteration: int) -> Optional[float]:
        spi = self.seconds_per_iter
        return None if spi is None else spi * (self.total - iteration)

    # ----------------------------------------------------------------------------- report
    def format_line(self, iteration: int, epoch: Optional[Any] = None, **metrics: Any) -> str:
        """The plain-text report for ``iteration`` (without trailing newline)."""
        parts = []
        head = f"[epoch {epoch}] " if epoch is not None else ""
        if self.desc:
            head = f"{self.desc} {head}"
        pct = int(100 * iteration / self.total)
        parts.append(f"{head}it {iteration}/{self.total} {pct}%")
        parts += [f"{k} {format_value(v)}" for k, v in metrics.items()]
        spi = self.seconds_per_iter
        parts.append(f"{spi:.3g} s/it" if spi is not None else "? s/it")
        parts.append(f"ETA {format_eta(self.eta_seconds(iteration))}")
        return " | ".join(parts)

    def update(self, iteration: int, epoch: Optional[Any] = None, **metrics: Any) -> bool:
        """Report that ``iteration`` iterations are done; returns True if a line was written.

        Call it every iteration (it is cheap); lines are rate-limited by ``log_period`` and
        ``min_interval_s``. ``metrics`` (e.g. ``loss=1.23, lr=1.2e-4``) are shown in order.
        """
        now = self.clock()
        self._record(iteration, now)
        if self._tqdm is not None:
            self._tqdm.n = iteration
            post = [f"{k} {format_value(v)}" for k, v in metrics.items()]
            if epoch is not None:
                post.insert(0, f"epoch {epoch}")
            self._tqdm.set_postfix_str(" | ".join(post), refresh=False)
            self._tqdm.refresh()
            return True
        final = iteration >= self.total
        if self._last_line is not None:
            last_it, last_t = self._last_line
            due = iteration - last_it >= self.log_period and now - last_t >= self.min_interval_s
            if not (due or (final and iteration > last_it)):
                return False
        elif not (final or iteration - self.start_iter >= self.log_period
                  or iteration % self.log_period == 0):
            return False
        self.stream.write(self.format_line(iteration, epoch, **metrics) + "\n")
        self.stream.flush()
        self._last_line = (iteration, now)
        return True

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
