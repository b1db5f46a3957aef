"""Shared benchmark machinery: timing statistics, memory probes, process isolation, output.

Nothing here knows about a particular mode; a mode module (e.g. :mod:`.backbone`) builds its
workload and calls these helpers.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

# the repository root (the folder holding the ``mvit_tasks`` package), for child processes
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ================================================================================ timing
def stats(times: List[float]) -> Dict[str, Any]:
    """Median, 10th and 90th percentile of the timed runs (all ``None`` when there are none)."""
    import numpy as np

    if not times:
        return {"median_s": None, "p10_s": None, "p90_s": None, "times_s": []}
    a = np.asarray(times)
    return {
        "median_s": float(np.median(a)),
        "p10_s": float(np.percentile(a, 10)),
        "p90_s": float(np.percentile(a, 90)),
        "times_s": [float(t) for t in times],
    }


def autocast(device: torch.device, dtype: str):
    """``torch.autocast`` with bfloat16 for ``dtype == "bf16"``, else a no-op context."""
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load1() -> Optional[float]:
    """The 1-minute load average (``None`` where the OS does not report it)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or not b:
        return None
    return a / b


def get(d: Dict[str, Any], *keys: str) -> Optional[float]:
    """``d[k0][k1]...`` or ``None`` where a level is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d  # type: ignore[return-value]


# ================================================================================ memory
def rss_bytes() -> Tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes (0, 0 where /proc is missing)."""
    rss = hwm = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def malloc_trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemProbe:
    """Peak memory of a phase: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.method = ""

    def start(self, base: Optional[int] = None) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) if base is None else base
            self.method = "torch.cuda.max_memory_allocated - allocated before the phase"
            return
        malloc_trim()
        rss, _ = rss_bytes()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.method = "peak RSS (VmHWM, reset per phase) - RSS after the model was built"
        except OSError:
            self.method = "ru_maxrss (not resettable) - RSS after the model was built"
        self.base = rss if base is None else base

    def current_base(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        malloc_trim()
        return rss_bytes()[0]

    def peak(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return max(0, torch.cuda.max_memory_allocated(self.device) - self.base)
        _, hwm = rss_bytes()
        if "ru_maxrss" in self.method or not hwm:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, hwm - self.base)


# ============================================================================= isolation
_CHILD = ("import sys; from mvit_tasks.benchmark.common import run_spec_file; "
          "run_spec_file(sys.argv[1])")


def _resolve(ref: str) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def run_spec_file(spec_path: str) -> Dict[str, Any]:
    """Child side: run ``spec["func"]`` (``"module:function"``) on the spec in ``spec_path`` and
    write its result to ``spec["result_path"]``."""
    with open(spec_path) as f:
        spec = json.load(f)
    res = _resolve(spec.get("func", "mvit_tasks.benchmark.backbone:measure"))(spec)
    with open(spec["result_path"], "w") as f:
        json.dump(res, f)
    return res


def run_isolated(func: Callable[[Dict[str, Any]], Dict[str, Any]], spec: Dict[str, Any],
                 isolation: str, name: str, fallback: Dict[str, Any]) -> Dict[str, Any]:
    """``func(spec)`` in a fresh interpreter (``isolation="subprocess"``) or in this one
    (``"none"``). ``func`` must be a module-level function and ``spec`` JSON-serializable; the
    spec and result files go to ``spec["workdir"]`` as ``spec_<name>.json`` /
    ``result_<name>.json``. On failure: ``fallback`` plus ``"error"`` (the child's output tail).
    """
    if isolation == "none":
        return func(spec)
    spec_path = os.path.join(spec["workdir"], f"spec_{name}.json")
    res_path = os.path.join(spec["workdir"], f"result_{name}.json")
    with open(spec_path, "w") as f:
        json.dump(dict(spec, result_path=res_path, func=f"{func.__module__}:{func.__name__}"), f)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _CHILD, spec_path], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0 or not os.path.exists(res_path):
        tail = (proc.stderr or proc.stdout)[-2000:]
        return dict(fallback, error=f"child failed (rc={proc.returncode}): {tail}")
    with open(res_path) as f:
        return json.load(f)


# ================================================================================ output
def machine_info(device: str) -> Dict[str, Any]:
    """Python / torch / peer-library versions, CPU, load average and the device's name."""
    info: Dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    for mod in ("torchvision", "timm", "pytorchvideo", "fvcore"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = cpu
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        info["loadavg"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    else:
        info["device_name"] = cpu
    return info


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON (NaN -> null), creating the parent folder."""
    from mvit_tasks.utils.fileio import write_json as _write

    _write(path, obj, indent=2)
