#!/usr/bin/env python
"""Speed and memory benchmarks; one function per ``--mode`` (see ``MODES``).

Mode ``backbone`` (default) times OUR MViT models against the peer implementations on the same
input, with IDENTICAL weights (the peer's random init is copied into ours with
``mvit_tasks.checkpoint.loader.load_weights(..., source=<peer>)``), and reports ours / theirs:

=====================  ===============================  ======================
pair key               ours                             theirs
=====================  ===============================  ======================
``torchvision_v2_s``   ``mvitv2_s_16x4`` (video)        torchvision ``mvit_v2_s``
``torchvision_v1_b``   ``mvit_b_16x4`` (video)          torchvision ``mvit_v1_b``
``timm_v2_t``          ``mvitv2_t`` (image)             timm ``mvitv2_tiny``
``pytorchvideo_b``     ``mvit_b_16x4`` (video)          pytorchvideo ``mvit_base_16x4``
=====================  ===============================  ======================

For every pair and dtype (``fp32``; ``bf16`` = ``torch.autocast`` with bfloat16) it measures
the inference forward (eval, ``no_grad``) and one training step (train mode, forward + cross
entropy + backward + SGD step without momentum): ``--warmup`` untimed then ``--iters`` timed
forwards, ``--train-warmup`` untimed then ``--train-iters`` timed steps (median, p10, p90 of the
timed runs; the defaults are small so that the CPU run at 1 x 16 x 224^2 stays short), and the
peak memory of each phase:

* GPU: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the phase;
* CPU: the peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``; or
  ``ru_maxrss`` where that is not possible) minus the resident set size after the model was
  built and ``malloc_trim``-ed. Each (model, dtype) runs in its own subprocess
  (``--isolation subprocess``, the default) so the numbers do not mix.

Both sides use the same input (fixed seed), geometry (position tables built for the benchmark's
input size), stochastic depth and head dropout. Output: a table on stdout and, with ``--out``, a
JSON file with the machine, the config, per-model timings and the ratios. Do not read much into
CPU numbers measured on a busy machine; the run records the load average for that reason.

Examples::

    python tools/benchmark.py --out bench.json                     # 1 x 3 x 16 x 224 x 224, CPU
    python tools/benchmark.py --device cuda --batch 8 --iters 20 --warmup 5 --out gpu.json
    python tools/benchmark.py --pairs timm_v2_t --size 64 --frames 4 --iters 1 --warmup 0

Adding a mode: write ``def run_<mode>(args) -> dict`` returning ``{"results": [...], ...}``
and its argument hook, and register both in ``MODES``.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


# =============================================================================== pairs
@dataclass(frozen=True)
class Pair:
    """One comparison: our registered variant vs a peer model, on video or images."""

    key: str
    ours: str  # registered variant
    lib: str  # "torchvision" | "timm" | "pytorchvideo"
    theirs: str  # the peer's model name
    source: str  # converter name for load_weights
    video: bool

    def label(self, impl: str) -> str:
        return f"ours:{self.ours}" if impl == "ours" else f"{self.lib}:{self.theirs}"


PAIRS: Dict[str, Pair] = {
    p.key: p
    for p in (
        Pair("torchvision_v2_s", "mvitv2_s_16x4", "torchvision", "mvit_v2_s", "torchvision", True),
        Pair("torchvision_v1_b", "mvit_b_16x4", "torchvision", "mvit_v1_b", "torchvision", True),
        Pair("timm_v2_t", "mvitv2_t", "timm", "mvitv2_tiny", "timm", False),
        Pair("pytorchvideo_b", "mvit_b_16x4", "pytorchvideo", "mvit_base_16x4", "pytorchvideo", True),
    )
}
DEFAULT_PAIRS = ["torchvision_v2_s", "torchvision_v1_b", "timm_v2_t"]


def input_shape(pair: Pair, args: argparse.Namespace) -> Tuple[int, ...]:
    if pair.video:
        return (args.batch, 3, args.frames, args.size, args.size)
    return (args.batch, 3, args.image_size or args.size, args.image_size or args.size)


def _ours_variant(pair: Pair):
    from mvit_tasks.modeling.backbone.variants import get_variant

    return get_variant(pair.ours)


def ours_arch(pair: Pair, shape: Sequence[int], tiny: bool = False):
    """Our architecture for ``shape`` (position tables sized for it); ``tiny``: 4 blocks, width 16."""
    from mvit_tasks.modeling.backbone import variants as V

    arch = _ours_variant(pair).arch
    if tiny:
        kw = dict(embed_dim=16, drop_path_rate=arch.drop_path_rate)
        if not pair.video:
            arch = V.v2_image(4, (1, 2, 3), **kw)
        elif arch.rel_pos_spatial:
            arch = V.v2_video(4, (1, 2, 3), shape[2], **kw)
        else:
            arch = V.v1_video(4, (1, 2, 3), shape[2], **kw)
    if pair.video:
        return arch.replace(num_frames=shape[2], spatial_size=(shape[-2], shape[-1]))
    return arch.replace(spatial_size=(shape[-2], shape[-1]))


def _torchvision_from_arch(arch, num_classes: int, dropout: float) -> torch.nn.Module:
    """torchvision ``MViT`` with the blocks of ``arch`` (used for ``--tiny``)."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    blocks = [
        MSBlockConfig(num_heads=s.num_heads, input_channels=s.dim_in, output_channels=s.dim_out,
                      kernel_q=list(s.kernel_q or []), kernel_kv=list(s.kernel_kv or []),
                      stride_q=list(s.stride_q), stride_kv=list(s.stride_kv))
        for s in arch.block_specs()
    ]
    return MViT(spatial_size=tuple(arch.spatial_size), temporal_size=arch.num_frames,
                block_setting=blocks, residual_pool=arch.residual_pooling,
                residual_with_cls_embed=arch.residual_pooling_cls, rel_pos_embed=arch.rel_pos_spatial,
                proj_after_attn=arch.dim_mul_in_att, dropout=dropout,
                stochastic_depth_prob=arch.drop_path_rate, num_classes=num_classes)


def build_theirs(pair: Pair, shape: Sequence[int], tiny: bool = False) -> torch.nn.Module:
    """The peer model sized for ``shape``, with the same stochastic depth / dropout as ours."""
    v = _ours_variant(pair)
    dpr = v.arch.drop_path_rate
    if tiny and pair.lib == "torchvision":
        return _torchvision_from_arch(ours_arch(pair, shape, tiny), v.num_classes, v.head_dropout)
    if tiny and pair.lib == "timm":
        import timm.models.mvitv2 as tm

        cfg = tm.MultiScaleVitCfg(depths=(1, 1, 1, 1), embed_dim=16, num_heads=1)
        return tm.MultiScaleVit(cfg, img_size=(shape[-2], shape[-1]), num_classes=v.num_classes,
                                drop_path_rate=dpr, drop_rate=v.head_dropout)
    if tiny:
        raise SystemExit(f"--tiny is not available for the {pair.lib} pair")
    if pair.lib == "torchvision":
        import torchvision.models.video.mvit as tvm

        build = tvm._mvit

        def sized(*a: Any, **kw: Any) -> torch.nn.Module:  # mvit_v2_s hard-codes 16 x 224^2
            kw.update(spatial_size=(shape[-2], shape[-1]), temporal_size=shape[2])
            return build(*a, **kw)

        tvm._mvit = sized
        try:
            return getattr(tvm, pair.theirs)(num_classes=v.num_classes, stochastic_depth_prob=dpr)
        finally:
            tvm._mvit = build
    if pair.lib == "timm":
        import timm

        return timm.create_model(pair.theirs, pretrained=False, img_size=(shape[-2], shape[-1]),
                                 num_classes=v.num_classes, drop_path_rate=dpr,
                                 drop_rate=v.head_dropout)
    if pair.lib == "pytorchvideo":
        from pytorchvideo.models import hub

        return getattr(hub, pair.theirs)(pretrained=False, spatial_size=shape[-1],
                                         temporal_size=shape[2], head_num_classes=v.num_classes,
                                         droppath_rate_block=dpr, head_dropout_rate=v.head_dropout)
    raise ValueError(f"unknown library {pair.lib!r}")


def build_ours(pair: Pair, shape: Sequence[int], tiny: bool = False) -> torch.nn.Module:
    from mvit_tasks.modeling.meta_arch.classifier import Classifier

    v = _ours_variant(pair)
    return Classifier.from_arch(ours_arch(pair, shape, tiny), v.num_classes, dropout=v.head_dropout)


# ======================================================================= measurement
def _rss_bytes() -> Tuple[int, int]:
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


def _malloc_trim() -> None:
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
        _malloc_trim()
        rss, _ = _rss_bytes()
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
        _malloc_trim()
        return _rss_bytes()[0]

    def peak(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return max(0, torch.cuda.max_memory_allocated(self.device) - self.base)
        _, hwm = _rss_bytes()
        if "ru_maxrss" in self.method or not hwm:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, hwm - self.base)


def _stats(times: List[float]) -> Dict[str, Any]:
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


def _autocast(device: torch.device, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build one model, load the shared weights, time forward and train step, measure memory.

    ``spec``: pair, impl ("ours" | "theirs"), dtype, shape, device, threads, iters, warmup,
    train (bool), workdir (shared files: the peer's state dict and fp32 output).
    """
    pair = PAIRS[spec["pair"]]
    impl, dtype, shape = spec["impl"], spec["dtype"], tuple(spec["shape"])
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    sd_path = os.path.join(spec["workdir"], f"{pair.key}_theirs_sd.pt")
    out_path = os.path.join(spec["workdir"], f"{pair.key}_theirs_out.pt")
    res: Dict[str, Any] = {"model": pair.label(impl), "impl": impl, "dtype": dtype,
                           "input_shape": list(shape)}

    res["loadavg_1min_start"] = _load1()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if impl == "theirs":
        model = build_theirs(pair, shape, spec.get("tiny", False))
        if os.path.exists(sd_path):
            model.load_state_dict(torch.load(sd_path, map_location="cpu", mmap=True))
        else:  # the first run of the pair defines the weights both sides use
            torch.save(model.state_dict(), sd_path)
        res["weights"] = f"{pair.lib} random init (seed 0)"
    else:
        model = build_ours(pair, shape, spec.get("tiny", False))
        if os.path.exists(sd_path):
            try:
                from mvit_tasks.checkpoint.loader import load_weights

                sd = torch.load(sd_path, map_location="cpu", mmap=True)
                report = load_weights(model, sd, source=pair.source)
                del sd
                res["weights"] = f"identical: {report.summary()}"
            except Exception as e:  # converter missing or broken: still time the model
                res["weights"] = f"RANDOM (could not load the {pair.lib} weights: {e!r})"[:500]
        else:
            res["weights"] = "RANDOM (the peer's state dict was not found)"
    res["params"] = sum(p.numel() for p in model.parameters())
    model.to(device)
    res["build_s"] = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    opt.zero_grad(set_to_none=True)
    opt.step()  # no grads yet: a no-op that does the optimizer's lazy imports (~150 MB RSS)
    probe = MemProbe(device)
    base = probe.current_base()

    # ---------------------------------------------------------------- inference forward
    model.eval()
    probe.start(base)
    times = []
    out0 = None
    with torch.no_grad():
        for i in range(spec["warmup"] + spec["iters"]):
            _sync(device)
            t = time.perf_counter()
            with _autocast(device, dtype):
                out = _logits(model(x))
            _sync(device)
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t)
            if out0 is None:
                out0 = out.float().cpu()
            del out
    res["forward"] = _stats(times)
    res["forward"]["peak_mem_mb"] = probe.peak() / 2**20
    res["mem_method"] = probe.method
    if dtype == "fp32" and out0 is not None:
        if impl == "theirs":
            torch.save(out0, out_path)
        elif os.path.exists(out_path) and "identical" in res.get("weights", ""):
            ref = torch.load(out_path)
            res["max_abs_diff_vs_theirs"] = float((out0 - ref).abs().max()) if ref.shape == out0.shape else None

    # --------------------------------------------------------------------- train step
    if spec.get("train", True):
        model.train()
        target = torch.randint(0, _logits_dim(out0), (shape[0],), generator=gen).to(device)
        probe.start(base)
        times = []
        warm = spec.get("train_warmup", spec["warmup"])
        for i in range(warm + spec.get("train_iters", spec["iters"])):
            _sync(device)
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with _autocast(device, dtype):
                logits = _logits(model(x))
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
            loss.backward()
            opt.step()
            _sync(device)
            if i >= warm:
                times.append(time.perf_counter() - t)
            del logits, loss
        res["train_step"] = _stats(times)
        res["train_step"]["peak_mem_mb"] = probe.peak() / 2**20
    res["loadavg_1min_end"] = _load1()
    return res


def _load1() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _logits_dim(out: Optional[torch.Tensor]) -> int:
    return int(out.shape[-1]) if out is not None and out.ndim >= 2 else 2


def run_child(spec: Dict[str, Any], isolation: str) -> Dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter (``subprocess``) or in this one (``none``)."""
    if isolation == "none":
        return measure(spec)
    spec_path = os.path.join(spec["workdir"], f"spec_{spec['pair']}_{spec['impl']}_{spec['dtype']}.json")
    res_path = spec_path.replace("spec_", "result_")
    with open(spec_path, "w") as f:
        json.dump(dict(spec, result_path=res_path), f)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec_path],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(res_path):
        tail = (proc.stderr or proc.stdout)[-2000:]
        return {"model": PAIRS[spec["pair"]].label(spec["impl"]), "impl": spec["impl"],
                "dtype": spec["dtype"], "error": f"child failed (rc={proc.returncode}): {tail}"}
    with open(res_path) as f:
        return json.load(f)


# ============================================================================== modes
def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or not b:
        return None
    return a / b


def _get(d: Dict[str, Any], *keys: str) -> Optional[float]:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d  # type: ignore[return-value]


def run_backbone(args: argparse.Namespace) -> Dict[str, Any]:
    """Ours vs peers: forward / train-step time and peak memory, fp32 and bf16 autocast."""
    results = []
    with tempfile.TemporaryDirectory(prefix="mvit_bench_") as workdir:
        for key in args.pairs:
            pair = PAIRS[key]
            shape = input_shape(pair, args)
            for dtype in args.dtypes:
                row: Dict[str, Any] = {"pair": key, "dtype": dtype, "input_shape": list(shape)}
                for impl in ("theirs", "ours"):  # theirs first: it defines the shared weights
                    spec = {"pair": key, "impl": impl, "dtype": dtype, "shape": list(shape),
                            "device": args.device, "threads": args.threads, "iters": args.iters,
                            "warmup": args.warmup, "train": not args.no_train, "workdir": workdir,
                            "train_iters": args.train_iters, "tiny": args.tiny,
                            "train_warmup": args.train_warmup}
                    row[impl] = run_child(spec, args.isolation)
                    if args.verbose:
                        print(json.dumps(row[impl])[:400], flush=True)
                o, t = row["ours"], row["theirs"]
                row["ratios_ours_over_theirs"] = {
                    "forward_time": _ratio(_get(o, "forward", "median_s"), _get(t, "forward", "median_s")),
                    "train_step_time": _ratio(_get(o, "train_step", "median_s"),
                                              _get(t, "train_step", "median_s")),
                    "forward_peak_mem": _ratio(_get(o, "forward", "peak_mem_mb"),
                                               _get(t, "forward", "peak_mem_mb")),
                    "train_peak_mem": _ratio(_get(o, "train_step", "peak_mem_mb"),
                                             _get(t, "train_step", "peak_mem_mb")),
                }
                row["identical_weights"] = "identical" in str(o.get("weights", ""))
                results.append(row)
                print(_format_row(row), flush=True)
    return {"results": results}


def _add_backbone_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mode backbone")
    g.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=DEFAULT_PAIRS,
                   help="comparisons to run (default: %(default)s)")
    g.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    g.add_argument("--no-train", action="store_true", help="time the inference forward only")
    g.add_argument("--tiny", action="store_true",
                   help="4-block, width-16 versions of both sides (torchvision / timm pairs; tests)")
    g.add_argument("--isolation", choices=["subprocess", "none"], default="subprocess",
                   help="one fresh process per (model, dtype) (clean memory numbers), or none")


# mode -> (argument hook, runner). Future modes (e.g. the data pipeline) register here.
MODES: Dict[str, Tuple[Callable[[argparse.ArgumentParser], None],
                       Callable[[argparse.Namespace], Dict[str, Any]]]] = {
    "backbone": (_add_backbone_args, run_backbone),
}


# ============================================================================= output
def machine_info(device: str) -> Dict[str, Any]:
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


def _fmt_t(d: Optional[Dict[str, Any]]) -> str:
    if not d or d.get("median_s") is None:
        return "-"
    return f"{d['median_s']:.3f} ({d['p10_s']:.3f}-{d['p90_s']:.3f})"


def _fmt_m(d: Optional[Dict[str, Any]]) -> str:
    if not d or d.get("peak_mem_mb") is None:
        return "-"
    return f"{d['peak_mem_mb']:.0f}"


def _fmt_r(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}"


HEADER = (f"{'pair':<17} {'dtype':<5} {'model':<30} {'fwd s med (p10-p90)':>22} "
          f"{'train s med (p10-p90)':>22} {'fwd MB':>7} {'train MB':>8}")


def _format_row(row: Dict[str, Any]) -> str:
    lines = []
    for impl in ("theirs", "ours"):
        r = row[impl]
        if "error" in r:
            lines.append(f"{row['pair']:<17} {row['dtype']:<5} {r['model']:<30} ERROR {r['error'][-300:]}")
            continue
        lines.append(
            f"{row['pair']:<17} {row['dtype']:<5} {r['model']:<30} {_fmt_t(r.get('forward')):>22} "
            f"{_fmt_t(r.get('train_step')):>22} {_fmt_m(r.get('forward')):>7} "
            f"{_fmt_m(r.get('train_step')):>8}"
        )
    q = row["ratios_ours_over_theirs"]
    diff = row["ours"].get("max_abs_diff_vs_theirs")
    lines.append(
        f"{'':<17} {'':<5} {'ratio ours/theirs':<30} {_fmt_r(q['forward_time']):>22} "
        f"{_fmt_r(q['train_step_time']):>22} {_fmt_r(q['forward_peak_mem']):>7} "
        f"{_fmt_r(q['train_peak_mem']):>8}"
        + ("" if row["identical_weights"] else "   [weights NOT identical]")
        + (f"   [max |ours - theirs| = {diff:.2e}]" if diff is not None else "")
    )
    return "\n".join(lines)


def format_table(report: Dict[str, Any]) -> str:
    m, c = report["machine"], report["config"]
    lines = [
        f"mode {report['mode']} | torch {m['torch']} | device {m['device']} ({m['device_name']}) | "
        f"threads {c['threads'] or m['torch_threads']} | load {m.get('loadavg')}",
        f"batch {c['batch']}, video {c['frames']}x{c['size']}x{c['size']}, images "
        f"{c['image_size'] or c['size']}^2, forward warmup {c['warmup']} + iters {c['iters']}, "
        f"train warmup {c['train_warmup']} + iters {c['train_iters']}",
        HEADER,
    ]
    lines += [_format_row(r) for r in report.get("results", [])]
    return "\n".join(lines)


# ============================================================================== main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=sorted(MODES), default="backbone")
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=16, help="clip length of the video models")
    p.add_argument("--size", type=int, default=224, help="spatial size (video and images)")
    p.add_argument("--image-size", type=int, default=None, help="image models' size (default --size)")
    p.add_argument("--iters", type=int, default=2, help="timed inference forwards")
    p.add_argument("--warmup", type=int, default=1, help="untimed inference forwards first")
    p.add_argument("--train-iters", type=int, default=1,
                   help="timed training steps (default 1 keeps the default CPU run under 10 min)")
    p.add_argument("--train-warmup", type=int, default=0,
                   help="untimed training steps first (the forward phase already warmed up)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    for add_args, _ in MODES.values():
        add_args(p)
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.child:  # internal: one measurement in a fresh process
        with open(args.child) as f:
            spec = json.load(f)
        res = measure(spec)
        with open(spec["result_path"], "w") as f:
            json.dump(res, f)
        return res
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k not in ("child", "out", "verbose")}
    t0 = time.time()
    print(f"mode {args.mode}: " + ", ".join(f"{k}={v}" for k, v in config.items() if k != "mode"),
          flush=True)
    print(HEADER, flush=True)
    _, runner = MODES[args.mode]
    body = runner(args)
    report = {"mode": args.mode, "machine": machine_info(args.device), "config": config, **body,
              "total_time_s": time.time() - t0}
    print()
    print(format_table(report))
    print(f"total {report['total_time_s']:.0f} s")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
