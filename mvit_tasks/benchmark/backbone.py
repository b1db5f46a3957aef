"""Mode ``backbone`` (default): OUR MViT models against the peer implementations.

Same input, IDENTICAL weights (the peer's random init is copied into ours with
``mvit_tasks.checkpoint.loader.load_weights(..., source=<peer>)``); reports ours / theirs:

=====================  ===============================  ======================
pair key               ours                             theirs
=====================  ===============================  ======================
``torchvision_v2_s``   ``mvitv2_s_16x4`` (video)        torchvision ``mvit_v2_s``
``torchvision_v1_b``   ``mvit_b_16x4`` (video)          torchvision ``mvit_v1_b``
``timm_v2_t``          ``mvitv2_t`` (image)             timm ``mvitv2_tiny``
``pytorchvideo_b``     ``mvit_b_16x4`` (video)          pytorchvideo ``mvit_base_16x4``
=====================  ===============================  ======================

For every pair and dtype (``fp32``; ``bf16`` = ``torch.autocast`` with bfloat16) it measures
the inference forward (eval, ``no_grad``) and the training step (train mode, forward + cross
entropy + backward + SGD step without momentum): ``--warmup`` untimed then ``--iters`` timed
forwards, ``--train-warmup`` (default 1) untimed then ``--train-iters`` (default 3) timed steps
(median, p10, p90 of the timed runs), and the peak memory of each phase:

* GPU: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the phase;
* CPU: the peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``; or
  ``ru_maxrss`` where that is not possible) minus the resident set size after the model was
  built and ``malloc_trim``-ed. Each (model, dtype) runs in its own subprocess
  (``--isolation subprocess``, the default) so the numbers do not mix.

Both sides use the same input (fixed seed), geometry (position tables built for the benchmark's
input size), stochastic depth and head dropout.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

import torch

from .common import MemProbe, autocast, get, load1, ratio, run_isolated, stats, sync
from .pairs import DEFAULT_PAIRS, PAIRS, build_ours, build_theirs, input_shape


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _logits_dim(out: Optional[torch.Tensor]) -> int:
    return int(out.shape[-1]) if out is not None and out.ndim >= 2 else 2


def _build(spec: Dict[str, Any], res: Dict[str, Any], sd_path: str) -> torch.nn.Module:
    """Build one side; the first side of a pair saves its weights, the other one loads them."""
    pair, shape, tiny = PAIRS[spec["pair"]], tuple(spec["shape"]), spec.get("tiny", False)
    if spec["impl"] == "theirs":
        model = build_theirs(pair, shape, tiny)
        if os.path.exists(sd_path):
            model.load_state_dict(torch.load(sd_path, map_location="cpu", mmap=True))
        else:  # the first run of the pair defines the weights both sides use
            torch.save(model.state_dict(), sd_path)
        res["weights"] = f"{pair.lib} random init (seed 0)"
        return model
    model = build_ours(pair, shape, tiny)
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
    return model


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Build one model, load the shared weights, time forward and train step, measure memory.

    ``spec``: pair, impl ("ours" | "theirs"), dtype, shape, device, threads, iters, warmup,
    train (bool), train_iters, train_warmup, tiny, workdir (shared files: the peer's state dict
    and fp32 output).
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

    res["loadavg_1min_start"] = load1()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = _build(spec, res, sd_path)
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
    times: List[float] = []
    out0 = None
    with torch.no_grad():
        for i in range(spec["warmup"] + spec["iters"]):
            sync(device)
            t = time.perf_counter()
            with autocast(device, dtype):
                out = _logits(model(x))
            sync(device)
            if i >= spec["warmup"]:
                times.append(time.perf_counter() - t)
            if out0 is None:
                out0 = out.float().cpu()
            del out
    res["forward"] = stats(times)
    res["forward"]["peak_mem_mb"] = probe.peak() / 2**20
    res["mem_method"] = probe.method
    if dtype == "fp32" and out0 is not None:
        if impl == "theirs":
            torch.save(out0, out_path)
        elif os.path.exists(out_path) and "identical" in res.get("weights", ""):
            ref = torch.load(out_path)
            same = ref.shape == out0.shape
            res["max_abs_diff_vs_theirs"] = float((out0 - ref).abs().max()) if same else None

    # --------------------------------------------------------------------- train step
    if spec.get("train", True):
        model.train()
        target = torch.randint(0, _logits_dim(out0), (shape[0],), generator=gen).to(device)
        probe.start(base)
        times = []
        warm = spec.get("train_warmup", 1)
        for i in range(warm + spec.get("train_iters", 3)):
            sync(device)
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                logits = _logits(model(x))
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
            loss.backward()
            opt.step()
            sync(device)
            if i >= warm:
                times.append(time.perf_counter() - t)
            del logits, loss
        res["train_step"] = stats(times)
        res["train_step"]["peak_mem_mb"] = probe.peak() / 2**20
    res["loadavg_1min_end"] = load1()
    return res


def _ratios(o: Dict[str, Any], t: Dict[str, Any]) -> Dict[str, Optional[float]]:
    return {
        "forward_time": ratio(get(o, "forward", "median_s"), get(t, "forward", "median_s")),
        "train_step_time": ratio(get(o, "train_step", "median_s"),
                                 get(t, "train_step", "median_s")),
        "forward_peak_mem": ratio(get(o, "forward", "peak_mem_mb"),
                                  get(t, "forward", "peak_mem_mb")),
        "train_peak_mem": ratio(get(o, "train_step", "peak_mem_mb"),
                                get(t, "train_step", "peak_mem_mb")),
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Ours vs peers: forward / train-step time and peak memory, fp32 and bf16 autocast."""
    print(HEADER, flush=True)
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
                    fallback = {"model": pair.label(impl), "impl": impl, "dtype": dtype}
                    row[impl] = run_isolated(measure, spec, args.isolation,
                                             f"{key}_{impl}_{dtype}", fallback)
                    if args.verbose:
                        print(json.dumps(row[impl])[:400], flush=True)
                row["ratios_ours_over_theirs"] = _ratios(row["ours"], row["theirs"])
                row["identical_weights"] = "identical" in str(row["ours"].get("weights", ""))
                results.append(row)
                print(format_row(row), flush=True)
    return {"results": results}


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mode backbone")
    g.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=DEFAULT_PAIRS,
                   help="comparisons to run (default: %(default)s)")
    g.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    g.add_argument("--no-train", action="store_true", help="time the inference forward only")
    g.add_argument("--tiny", action="store_true",
                   help="4-block, width-16 versions of both sides (torchvision / timm pairs; "
                        "for tests)")
    g.add_argument("--isolation", choices=["subprocess", "none"], default="subprocess",
                   help="one fresh process per (model, dtype) (clean memory numbers), or none")


# ============================================================================= table
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


def format_row(row: Dict[str, Any]) -> str:
    """The table lines of one (pair, dtype): theirs, ours, and the ratios."""
    lines = []
    for impl in ("theirs", "ours"):
        r = row[impl]
        if "error" in r:
            lines.append(f"{row['pair']:<17} {row['dtype']:<5} {r['model']:<30} "
                         f"ERROR {r['error'][-300:]}")
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


def table(results: List[Dict[str, Any]]) -> List[str]:
    """The mode's part of the final table (after the generic machine / config lines)."""
    return [HEADER] + [format_row(r) for r in results]
