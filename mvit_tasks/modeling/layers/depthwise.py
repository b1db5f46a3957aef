"""Depthwise convolution (the pooling operator of MViT) with a fast CPU backward.

oneDNN's backward of a depthwise 2-D / 3-D convolution is far slower than its forward on CPU,
in bf16 by one to two orders of magnitude (a 96-channel 8 x 56 x 56 stride-1 3^3 conv: forward
0.8 ms, data gradient 19 ms, weight gradient 117 ms on a 2-vCPU Xeon). The same gradients as
other computations, chosen per stride by measurement (``docs/performance.md``):

* data gradient: a forward stride-1 depthwise conv, with the flipped kernel (padding
  ``k - 1 - p``), of the output gradient (zero-inserted between outputs for stride > 1);
* weight gradient, stride 1: a depthwise conv of the padded input whose kernel is the output
  gradient (one output per tap); strided, in bf16 / fp16: one reduction ``sum(g * x_slice)``
  per tap on the token-major layout; strided fp32: oneDNN's own weight gradient.

Used on CPU when a gradient is needed; elsewhere (CUDA, inference) the plain ``F.conv*d``.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Sequence, Tuple

import torch
import torch.nn.functional as F

_CONV = {2: F.conv2d, 3: F.conv3d}


def depthwise_conv_nd(
    x: torch.Tensor, weight: torch.Tensor, stride: Sequence[int], padding: Sequence[int]
) -> torch.Tensor:
    """Depthwise conv of ``M x C x *S`` (2 or 3 spatial dims) with a ``C x 1 x *k`` weight, no
    bias, zero padding ``padding``. The result equals ``F.conv{2,3}d(..., groups=C)``; on CPU
    with grad enabled its backward is the faster form above (a padding over ``k - 1``, which
    that form does not cover, keeps aten's backward)."""
    nd = x.dim() - 2
    stride, padding = tuple(int(s) for s in stride), tuple(int(p) for p in padding)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    fits = all(0 <= p <= k - 1 for p, k in zip(padding, weight.shape[2:]))
    if x.device.type != "cpu" or not needs_grad or not fits:  # not fits: aten's own backward
        return _CONV[nd](x, weight, None, stride, padding, 1, weight.shape[0])
    if torch.is_autocast_enabled("cpu"):  # the dtype autocast would run the conv in
        dt = torch.get_autocast_dtype("cpu")
        x, weight = x.to(dt), weight.to(dt)
    elif x.dtype != weight.dtype:
        raise TypeError(f"depthwise conv: input {x.dtype} and weight {weight.dtype} differ")
    with torch.autocast("cpu", enabled=False):
        return _DepthwiseConv.apply(x, weight, stride, padding)


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: Tuple[int, ...],
                padding: Tuple[int, ...]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return _CONV[x.dim() - 2](x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding = ctx.stride, ctx.padding
        gx = _grad_input(g, x, weight, stride, padding) if ctx.needs_input_grad[0] else None
        gw = _grad_weight(g, x, weight, stride, padding) if ctx.needs_input_grad[1] else None
        return gx, gw, None, None


def _taps(kernel: Sequence[int]):
    return itertools.product(*(range(k) for k in kernel))


def _strided(offset: Sequence[int], stride: Sequence[int], out_size: Sequence[int]):
    """Per spatial dim, the positions (in padded coordinates) tap ``offset`` meets."""
    return tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, out_size))


def _grad_input(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                stride: Tuple[int, ...], padding: Tuple[int, ...]) -> torch.Tensor:
    """A stride-1 depthwise conv of the (zero-inserted, for stride > 1) output gradient with
    the flipped kernel, padding ``k - 1 - p``."""
    nd, c = x.dim() - 2, weight.shape[0]
    kernel = weight.shape[2:]
    if any(s != 1 for s in stride):
        size = [n + 2 * p - k + 1 for n, p, k in zip(x.shape[2:], padding, kernel)]
        gd = g.new_zeros((g.shape[0], c, *size))
        if nd == 3 and g.is_contiguous(memory_format=torch.channels_last_3d):
            gd = gd.contiguous(memory_format=torch.channels_last_3d)
        gd[(slice(None), slice(None)) + _strided((0,) * nd, stride, g.shape[2:])] = g
        g = gd
    flipped = weight.flip(list(range(2, 2 + nd)))
    pad = tuple(k - 1 - p for k, p in zip(kernel, padding))
    return _CONV[nd](g, flipped, None, 1, pad, 1, c)


def _weight_grad_method(dtype: torch.dtype, stride: Sequence[int]) -> str:
    """``"conv"`` (stride 1), ``"taps"`` (strided, bf16 / fp16) or ``"aten"`` (strided fp32 /
    fp64, where oneDNN's own weight gradient measured fastest)."""
    if all(s == 1 for s in stride):
        return "conv"
    return "taps" if dtype in (torch.bfloat16, torch.float16) else "aten"


def _grad_weight(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                 stride: Tuple[int, ...], padding: Tuple[int, ...]) -> torch.Tensor:
    nd, c = x.dim() - 2, weight.shape[0]
    kernel = weight.shape[2:]
    method = _weight_grad_method(x.dtype, stride)
    if method == "aten":
        return torch.ops.aten.convolution_backward(
            g, x, weight, None, list(stride), list(padding), [1] * nd, False, [0] * nd, c,
            [False, True, False])[1]
    acc = torch.promote_types(weight.dtype, torch.float32)  # bf16 / fp16 sums in float32
    if method == "conv":  # the output gradient is the kernel; one output per tap
        pads = [p for p in reversed(padding) for _ in (0, 1)]
        xp = F.pad(x, pads) if any(padding) else x
        m = x.shape[0]
        out = _CONV[nd](xp.reshape(1, m * c, *xp.shape[2:]), g.reshape(m * c, 1, *g.shape[2:]),
                        None, 1, 0, 1, m * c)
        return out.reshape(m, c, *kernel).sum(0, dtype=acc).unsqueeze(1).to(weight.dtype)
    # "taps": token-major (channels innermost) padded input; per tap sum(g * x_slice) over
    # positions, a reduction over the outer dim of a (positions x C) matrix
    last = (0,) + tuple(range(2, 2 + nd)) + (1,)
    xp = x.new_zeros((x.shape[0], *(n + 2 * p for n, p in zip(x.shape[2:], padding)), c))
    xp[(slice(None),) + tuple(slice(p, p + n) for p, n in zip(padding, x.shape[2:]))] = \
        x.permute(*last)
    gt = g.permute(*last).reshape(-1, c)
    gw = torch.empty((math.prod(kernel), c), dtype=acc, device=x.device)
    for i, off in enumerate(_taps(kernel)):
        xs = xp[(slice(None),) + _strided(off, stride, g.shape[2:])].reshape(-1, c)
        gw[i] = (gt * xs).sum(0, dtype=acc)
    return gw.t().reshape(c, 1, *kernel).to(weight.dtype)
