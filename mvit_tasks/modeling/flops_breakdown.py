"""Per-stage FLOPs and parameters of a model that contains an MViT backbone.

Splits a :class:`~mvit_tasks.utils.flops.FlopReport` (the generic counter: fvcore plus our
handlers, see :mod:`mvit_tasks.utils.flops` for the conventions) into stem / ``scale2`` ..
``scale5`` / head rows whose FLOPs and parameters add up to the totals, with each stage's
channels, heads, strides and token grid from the backbone's ``output_shape()``.
:func:`analyze_model` is the one call ``tools/analyze_model.py`` makes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..utils.flops import DEFAULT_CONVENTION, FlopReport, count_flops, count_parameters


# ----------------------------------------------------------------------- stage breakdown
@dataclass
class StageStats:
    """FLOPs / parameters of one part of a model, and its token geometry for MViT stages.

    ``name`` is ``"stem"`` (patch embedding, cls token, position tables), ``"scale2"`` ..
    ``"scale5"`` (the blocks of a stage plus its output norm), ``"head"`` (everything outside
    the backbone), ``"other"`` (backbone ops outside these modules), or a top-level child's name
    for models that are not MViT.
    """

    name: str
    flops: int
    params: int
    blocks: Optional[List[int]] = None  # [first, last] block index
    channels: Optional[int] = None
    num_heads: Optional[int] = None
    stride: Optional[int] = None
    temporal_stride: Optional[int] = None
    grid: Optional[List[int]] = None  # (t, h, w) token grid at the analysed input size
    tokens: Optional[int] = None  # t*h*w (+1 with a cls token)


def _find_mvit(model: nn.Module) -> Tuple[Optional[str], Optional[nn.Module]]:
    from .backbone.mvit import MViT

    for name, m in model.named_modules():
        if isinstance(m, MViT):
            return name, m
    return None, None


def _full_output_shape(backbone: nn.Module) -> Dict[str, Any]:
    """``output_shape()`` of the backbone with every stage as an output (built on ``meta``)."""
    from .backbone.mvit import MViT

    with torch.device("meta"):
        full = MViT(backbone.arch.replace(out_features=None))
    return full.output_shape()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def stage_breakdown(
    model: nn.Module, report: FlopReport, input_shape: Optional[Sequence[int]] = None
) -> List[StageStats]:
    """Split ``report`` into rows whose FLOPs and parameters add up to the model's totals.

    For a model containing an MViT backbone the rows are stem / scale2..scale5 / head; the
    channels and strides of each stage come from the backbone's ``output_shape()`` and the
    token grid is ``ceil(T / temporal_stride) x ceil(H / stride) x ceil(W / stride)`` of
    ``input_shape`` (``B x C x T x H x W`` or ``B x C x H x W``; defaults to the traced input).
    Other models get one row per top-level child.
    """
    prefix, bb = _find_mvit(model)
    params = report.params_by_module
    flops = report.by_module
    rows: List[StageStats] = []
    if bb is None:
        for name, _ in model.named_children():
            rows.append(StageStats(name, flops.get(name, 0), params.get(name, 0)))
        _add_rest(rows, report.total - sum(r.flops for r in rows),
                  params.get("", 0) - sum(r.params for r in rows))
        return rows

    def key(sub: str) -> str:
        return f"{prefix}.{sub}" if prefix else sub

    shape = list(input_shape) if input_shape is not None else (report.input_shapes or [[]])[0]
    video_in = len(shape) == 5
    t_in = shape[2] if video_in else 1
    h_in, w_in = (shape[-2], shape[-1]) if len(shape) >= 4 else (None, None)
    specs = bb.specs
    stem_params = params.get(key("patch_embed"), 0) + sum(
        p.numel() for n, p in bb.named_parameters(recurse=False)
    )
    rows.append(StageStats("stem", flops.get(key("patch_embed"), 0), stem_params))
    shapes = _full_output_shape(bb)
    for s, name in enumerate(bb.arch.stage_names()):
        idx = [sp.index for sp in specs if sp.stage == s]
        f = sum(flops.get(key(f"blocks.{i}"), 0) for i in idx)
        p = sum(params.get(key(f"blocks.{i}"), 0) for i in idx)
        f += flops.get(key(f"{name}_norm"), 0)
        p += params.get(key(f"{name}_norm"), 0)
        row = StageStats(name, f, p, blocks=[idx[0], idx[-1]], num_heads=specs[idx[-1]].num_heads)
        fs = shapes.get(name)
        if fs is not None:
            row.channels, row.stride = fs.channels, fs.stride
            row.temporal_stride = fs.temporal_stride
            if h_in is not None:
                t = _ceil_div(t_in, fs.temporal_stride) if video_in else 1
                row.grid = [t, _ceil_div(h_in, fs.stride), _ceil_div(w_in, fs.stride)]
                row.tokens = math.prod(row.grid) + (1 if bb.cls_embed else 0)
        rows.append(row)
    bb_flops = flops.get(prefix or "", 0)
    bb_params = params.get(prefix or "", 0)
    _add_rest(rows, bb_flops - sum(r.flops for r in rows), bb_params - sum(r.params for r in rows),
              name="other")
    if prefix:
        rows.append(StageStats("head", report.total - bb_flops, params.get("", 0) - bb_params))
    return rows


def _add_rest(rows: List[StageStats], flops: int, params: int, name: str = "other") -> None:
    if flops or params:
        rows.append(StageStats(name, flops, params))


# ------------------------------------------------------------------------- one-stop call
def analyze_model(
    model: nn.Module,
    inputs: Union[torch.Tensor, Tuple[Any, ...]],
    convention: str = DEFAULT_CONVENTION,
    strict: bool = False,
) -> Dict[str, Any]:
    """Parameters, FLOPs and the per-stage breakdown of ``model`` on ``inputs`` (JSON-ready).

    Keys: ``params``, ``trainable_params``, ``params_m``, ``flops``, ``gflops``,
    ``convention``, ``convention_text``, ``input_shape``, ``by_operator`` (FLOPs),
    ``stages`` (list of :class:`StageStats` dicts), ``not_counted``, ``unknown_ops``.
    """
    report = count_flops(model, inputs, convention=convention, strict=strict)
    params = count_parameters(model)
    stages = stage_breakdown(model, report)
    return {
        "params": params,
        "trainable_params": count_parameters(model, trainable_only=True),
        "params_m": params / 1e6,
        "flops": report.total,
        "gflops": report.gflops,
        "convention": report.convention,
        "convention_text": report.convention_text,
        "input_shape": report.input_shapes[0] if report.input_shapes else None,
        "by_operator": report.by_operator,
        "stages": [asdict(s) for s in stages],
        "not_counted": report.not_counted,
        "unknown_ops": report.unknown_ops,
    }


def format_analysis(result: Dict[str, Any]) -> str:
    """Human-readable table of an :func:`analyze_model` result."""
    lines = [
        f"input shape : {result['input_shape']}",
        f"parameters  : {result['params']:,} ({result['params_m']:.2f} M)"
        + (f", trainable {result['trainable_params']:,}"
           if result["trainable_params"] != result["params"] else ""),
        f"GFLOPs      : {result['gflops']:.3f}  [convention '{result['convention']}': "
        f"{result['convention_text']}]",
        "by operator : " + ", ".join(f"{k} {v / 1e9:.3f} G" for k, v in
                                      sorted(result["by_operator"].items(), key=lambda kv: -kv[1])),
        "",
        f"{'part':<8} {'blocks':>7} {'channels':>8} {'heads':>5} {'stride':>7} "
        f"{'grid (t,h,w)':>14} {'tokens':>7} {'GFLOPs':>9} {'params':>12}",
    ]
    for r in result["stages"]:
        blocks = f"{r['blocks'][0]}-{r['blocks'][1]}" if r.get("blocks") else ""
        stride = (f"{r['temporal_stride']}x{r['stride']}" if r.get("stride") else "")
        grid = "x".join(str(g) for g in r["grid"]) if r.get("grid") else ""
        lines.append(
            f"{r['name']:<8} {blocks:>7} {r.get('channels') or '':>8} "
            f"{r.get('num_heads') or '':>5} {stride:>7} {grid:>14} {r.get('tokens') or '':>7} "
            f"{r['flops'] / 1e9:>9.3f} {r['params']:>12,}"
        )
    lines.append("")
    nc = result["not_counted"]
    lines.append("not counted (by convention): "
                 + (", ".join(f"{k} x{v}" for k, v in nc.items()) if nc else "none"))
    unk = result["unknown_ops"]
    lines.append("UNKNOWN ops (no handler, counted as 0, may matter): "
                 + (", ".join(f"{k} x{v}" for k, v in unk.items()) if unk else "none"))
    return "\n".join(lines)
