"""Parameter and FLOP counting for any model and input (fvcore ``FlopCountAnalysis`` + handlers).

The per-stage split of an MViT model's counts (stem / scale2..scale5 / head) is
:mod:`mvit_tasks.modeling.flops_breakdown`; this module knows no model.

**Convention.** "GFLOPs" are 1e9 *multiply-adds*: ONE multiply-add counts as ONE FLOP, the
convention of fvcore, PySlowFast and the MViT / MViTv2 papers (other tools, e.g.
``torch.utils.flop_counter``, count 2 FLOPs per multiply-add). Two variants differ only in what
besides the multiply-adds is counted:

* ``"fvcore"`` (default): fvcore's defaults, i.e. multiply-adds of linear / matmul / bmm /
  einsum / convolutions (depthwise pooling convs included) / attention, **plus** fvcore's
  estimates for normalisation layers (LayerNorm / GroupNorm / BatchNorm: 5 FLOPs per element
  with an affine transform, 4 without) and bilinear upsampling / adaptive average pooling.
  This is what ``fvcore.nn.FlopCountAnalysis`` (and SlowFast's ``get_model_stats``) print for a
  model whose attention is an explicit ``q @ k^T`` / ``attn @ v``.
* ``"torchvision"``: multiply-adds of linear / matmul / bmm / einsum / convolutions / attention
  only (no normalisation layers). This reproduces torchvision's published numbers exactly
  (``mvit_v2_s`` 64.224, ``mvit_v1_b`` 70.599 GFLOPS at 1 x 3 x 16 x 224 x 224).

In both, ``scaled_dot_product_attention`` counts ``B*H*Lq*Lk*(E+Ev)`` (``q @ k^T`` plus
``attn @ v``), exactly what fvcore counts for the explicit matmul form; the softmax, the scale and
an additive mask / relative-position bias are not counted (fvcore ignores them in the explicit
form as well). Element-wise ops, activations, softmax, max / avg pooling, reductions and data
movement are never counted; every op that was seen but not counted is reported
(:attr:`FlopReport.not_counted`), and ops that are not known to be cheap are reported separately
(:attr:`FlopReport.unknown_ops`, a warning, or an error with ``strict=True``) so that a heavy op
without a handler is never dropped silently.

Differences between the two variants on the MViT family (measured, 1-view input):

=========================  ===========  ===============  ==================================
model / input              ``fvcore``   ``torchvision``  published
=========================  ===========  ===============  ==================================
MViTv2-S 16x4, 16x224^2    64.457       64.224           64.5 (issue) / 64.224 (torchvision)
MViT-B 16x4, 16x224^2      70.804       70.599           70.6 (issue) / 70.599 (torchvision)
MViTv2-T, 224^2            4.704        4.677            4.7 (paper, timm)
=========================  ===========  ===============  ==================================

The only difference between the two columns is LayerNorm (0.233 / 0.204 / 0.027 G); both count
the rel-pos einsums and the pooling convs, neither counts softmax. MViTv2-S 16x4 by operator:
linear 47.895, attention (q@k^T + attn@v) 14.430, conv (patch embedding + depthwise q/k/v
pooling) 1.605, rel-pos einsums 0.294, LayerNorm 0.233 G. No single convention gives both 64.5
and 70.6 to within 0.05 G: 64.5 is fvcore's count with LayerNorm, 70.6 is the count without it.

einsum is counted exactly (product of the sizes of all indices of each pairwise contraction);
fvcore's own handler rounds the generic case to 4 significant digits through
``numpy.einsum_path``'s printout, which is why fvcore's count of torchvision's ``mvit_v2_s`` is a
few thousand FLOPs away from ours.
"""
from __future__ import annotations

import math
import re
import string
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

FLOP_CONVENTION = (
    "1 multiply-add = 1 FLOP (fvcore / SlowFast / MViT papers); GFLOPs = 1e9 multiply-adds"
)

CONVENTIONS: Dict[str, str] = {
    "fvcore": (
        FLOP_CONVENTION + "; counted: linear, matmul/bmm, einsum, conv (incl. depthwise pooling "
        "convs), attention q@k^T + attn@v, and fvcore's norm estimates (LayerNorm/GroupNorm/"
        "BatchNorm: 5 per element with affine); not counted: softmax, rel-pos bias add, "
        "element-wise ops, activations, max/avg pooling"
    ),
    "torchvision": (
        FLOP_CONVENTION + "; counted: linear, matmul/bmm, einsum, conv (incl. depthwise pooling "
        "convs), attention q@k^T + attn@v; not counted: normalisation layers, softmax, rel-pos "
        "bias add, element-wise ops, activations, max/avg pooling (torchvision's model-card "
        "numbers)"
    ),
}
DEFAULT_CONVENTION = "fvcore"

# fvcore default handlers that are not multiply-adds; the "torchvision" convention drops them.
_NON_MAC_DEFAULT_OPS = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)

# Ops known to be cheap (element-wise, activations, pooling, reductions, indexing, data
# movement): seen but not counted by either convention. Anything else without a handler is
# reported as *unknown*.
_CHEAP_OP_PATTERN = re.compile(
    r"^aten::_?("
    r"add|sub|rsub|mul|div|neg|pow|sqrt|rsqrt|exp|exp2|expm1|log|log2|log10|log1p|abs|sign|"
    r"reciprocal|clamp|clamp_min|clamp_max|clip|where|masked_fill|masked_scatter|fill|zero|"
    r"lerp|floor|ceil|round|trunc|frac|remainder|fmod|floor_divide|true_divide|eq|ne|lt|le|"
    r"gt|ge|bitwise_\w+|logical_\w+|__\w+__|erf|erfc|erfinv|sin|cos|tan|atan|atan2|isnan|"
    r"isinf|nan_to_num|minimum|maximum|"
    r"gelu|relu|relu6|silu|sigmoid|tanh|hardswish|hardsigmoid|hardtanh|leaky_relu|elu|selu|"
    r"celu|softplus|mish|glu|prelu|threshold|softmax|log_softmax|safe_softmax|dropout|"
    r"feature_dropout|alpha_dropout|native_dropout|"
    r"(max|avg|adaptive_avg|adaptive_max|lp)_pool[123]d(_with_indices)?|"
    r"mean|sum|nansum|prod|max|min|amax|amin|aminmax|argmax|argmin|std|var|std_mean|var_mean|"
    r"norm|linalg_vector_norm|frobenius_norm|cumsum|cumprod|logsumexp|all|any|topk|sort|"
    r"argsort|kthvalue|median|"
    r"pad|constant_pad_nd|reflection_pad[123]d|replication_pad[123]d|cat|concat|concatenate|"
    r"stack|hstack|vstack|repeat|repeat_interleave|tile|tensor_split|split|split_with_sizes|"
    r"chunk|unbind|narrow|roll|flip|gather|scatter|scatter_add|index|index_select|index_put|"
    r"index_add|index_copy|index_fill|take|take_along_dim|embedding|expand|expand_as|"
    r"upsample_\w+|grid_sampler\w*|affine_grid_generator|pixel_shuffle|pixel_unshuffle|"
    r"arange|linspace|zeros|zeros_like|ones|ones_like|full|full_like|empty|empty_like|"
    r"rand|randn|rand_like|randn_like|bernoulli|new_\w+|to|type_as|contiguous|clone|copy|"
    r"detach|masked_select|nonzero|triu|tril|meshgrid|one_hot|view|view_as|reshape|"
    r"reshape_as|flatten|unflatten|permute|transpose|t|squeeze|unsqueeze|select|slice|"
    r"movedim|moveaxis|unfold|as_strided|alias|lift_fresh|size|numel|Int|Float|"
    r"ScalarImplicit|item|dim|len|format|list|batch_norm|group_norm|layer_norm|"
    r"instance_norm|native_layer_norm|rms_norm|local_response_norm|sym_size"
    r")_?$"
)

Handle = Callable[[List[Any], List[Any]], Union[int, float]]


# --------------------------------------------------------------------------- parameters
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Exact number of parameter elements (shared parameters are counted once)."""
    seen = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


# ----------------------------------------------------------------------------- handlers
def _shape(value: Any) -> Optional[List[int]]:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


def einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """Multiply-adds of ``torch.einsum(equation, *operands)`` with operands of ``shapes``.

    Two operands: the product of the sizes of all distinct indices (exact; an outer product
    counts one multiply per output element). More operands: the sum of that cost over the
    pairwise contractions of ``numpy.einsum_path(optimize="optimal")``. One operand (a
    transpose / trace / sum): 0.
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum '{equation}' got {len(shapes)} operands")
    spare = [c for c in string.ascii_letters if c not in eq]
    n_ell = max((len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(spare[:n_ell])
    expanded = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            k = len(s) - (len(t) - 3)
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != len(s):
            raise ValueError(f"einsum '{equation}': term '{t}' does not match shape {list(s)}")
        expanded.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = Counter("".join(expanded))
        out = ell + "".join(sorted(c for c, n in letters.items() if n == 1 and c not in ell))
    sizes: Dict[str, int] = {}
    for t, s in zip(expanded, shapes):
        for c, n in zip(t, s):
            sizes[c] = max(sizes.get(c, 1), int(n))
    if len(expanded) == 1:
        return 0
    if len(expanded) == 2:
        return math.prod(sizes[c] for c in set(expanded[0]) | set(expanded[1]))
    views = [np.broadcast_to(np.zeros((), dtype=np.float32), tuple(s)) for s in shapes]
    path = np.einsum_path(",".join(expanded) + "->" + out, *views, optimize="optimal")[0]
    ops = list(expanded)
    total = 0
    for step in path[1:]:
        picked = [ops[i] for i in step]
        for i in sorted(step, reverse=True):
            ops.pop(i)
        involved = set("".join(picked))
        keep = set("".join(ops)) | set(out)
        if len(picked) > 1:
            total += (len(picked) - 1) * math.prod(sizes[c] for c in involved)
        ops.append("".join(c for c in sorted(involved) if c in keep))
    return total


def _einsum_handle(inputs: List[Any], outputs: List[Any]) -> int:
    equation = inputs[0].toIValue()
    shapes = [_shape(v) for v in inputs[1].node().inputs()]
    return einsum_macs(equation, shapes)


def _sdpa_handle(inputs: List[Any], outputs: List[Any]) -> int:
    """``scaled_dot_product_attention(q, k, v, ...)``: ``B*H*Lq*Lk*(E+Ev)`` multiply-adds.

    ``q @ k^T`` is ``B*H*Lq*Lk*E`` and ``attn @ v`` is ``B*H*Lq*Lk*Ev`` (fvcore's matmul count);
    softmax, scale and the additive mask / bias are not counted. A causal mask still counts the
    full matrix; grouped-query attention counts per query head.
    """
    q, k, v = (_shape(inputs[i]) for i in range(3))
    return math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def _baddbmm_handle(inputs: List[Any], outputs: List[Any]) -> int:
    a, b = _shape(inputs[1]), _shape(inputs[2])
    return a[0] * a[1] * a[2] * b[2]


def _mv_handle(inputs: List[Any], outputs: List[Any]) -> int:
    return math.prod(_shape(inputs[0]))


def _addmv_handle(inputs: List[Any], outputs: List[Any]) -> int:
    return math.prod(_shape(inputs[1]))


def _dot_handle(inputs: List[Any], outputs: List[Any]) -> int:
    return math.prod(_shape(inputs[0]))


def _outer_handle(inputs: List[Any], outputs: List[Any]) -> int:
    return math.prod(_shape(outputs[0]))


def _conv_handle(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::conv{1,2,3}d`` / ``aten::convolution``: ``N * prod(weight) * prod(out spatial)``."""
    from fvcore.nn.jit_handles import conv_flop_count

    x, w, out = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
    return conv_flop_count(x, w, out, transposed=False)


def _zero_handle(counter: Counter, name: str) -> Handle:
    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        counter[name] += 1
        return 0

    return handle


def extra_handles() -> Dict[str, Handle]:
    """Handlers added to fvcore's defaults (both conventions)."""
    sdpa = {
        name: _sdpa_handle
        for name in (
            "aten::scaled_dot_product_attention",
            "aten::_scaled_dot_product_attention_math",
            "aten::_scaled_dot_product_flash_attention",
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_efficient_attention",
            "aten::_scaled_dot_product_cudnn_attention",
        )
    }
    conv = {n: _conv_handle for n in ("aten::conv1d", "aten::conv2d", "aten::conv3d")}
    return {
        **sdpa,
        **conv,
        "aten::einsum": _einsum_handle,
        "aten::baddbmm": _baddbmm_handle,
        "aten::mv": _mv_handle,
        "aten::addmv": _addmv_handle,
        "aten::dot": _dot_handle,
        "aten::vdot": _dot_handle,
        "aten::outer": _outer_handle,
        "aten::ger": _outer_handle,
    }


# ------------------------------------------------------------------------------- report
@dataclass
class FlopReport:
    """Result of :func:`count_flops`.

    Attributes:
        total: FLOPs (multiply-adds, see the module docstring) of one forward pass.
        convention: ``"fvcore"`` or ``"torchvision"``.
        by_operator: FLOPs per counted operator kind (fvcore names: ``linear``, ``conv``, ...).
        by_module: FLOPs per module name (``""`` is the whole model).
        params_by_module: parameter elements per module name.
        not_counted: ``aten::`` ops seen but counted as 0 because the convention treats them as
            cheap (element-wise, activations, pooling, ...), with how often each ran.
        unknown_ops: ops without a handler that are not known to be cheap; they are counted as
            0 and may matter.
        input_shapes: shapes of the tensors the model was traced with.
    """

    total: int
    convention: str
    by_operator: Dict[str, int]
    by_module: Dict[str, int]
    params_by_module: Dict[str, int]
    not_counted: Dict[str, int]
    unknown_ops: Dict[str, int]
    input_shapes: List[List[int]] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.total / 1e9

    @property
    def convention_text(self) -> str:
        return CONVENTIONS[self.convention]

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["gflops"] = self.gflops
        d["convention_text"] = self.convention_text
        return d


def _as_tuple(inputs: Any) -> Tuple[Any, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


class _TupleOutput(nn.Module):
    """Wraps a model whose output is a dict (tracing wants tensors / tuples)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any) -> Any:
        out = self.model(*args)
        if isinstance(out, dict):
            return tuple(out.values())
        return out


def count_flops(
    model: nn.Module,
    inputs: Union[torch.Tensor, Tuple[Any, ...]],
    convention: str = DEFAULT_CONVENTION,
    strict: bool = False,
) -> FlopReport:
    """Count the FLOPs of ``model(*inputs)`` by tracing it (fvcore ``FlopCountAnalysis``).

    Tracing runs one real forward pass (in eval mode, without autograd); the model's training
    mode is restored afterwards.

    Args:
        model: any ``nn.Module``; a dict output is fine.
        inputs: one tensor or a tuple of positional inputs, e.g. ``1 x 3 x 16 x 224 x 224``.
        convention: ``"fvcore"`` (default) or ``"torchvision"``; see the module docstring.
        strict: raise ``RuntimeError`` if an op that is not known to be cheap has no handler
            (otherwise such ops are listed in ``unknown_ops`` and a warning is issued).

    Returns:
        a :class:`FlopReport` (``report.gflops`` is in G multiply-adds).
    """
    from fvcore.nn import FlopCountAnalysis

    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    args = _as_tuple(inputs)
    wrapped = _TupleOutput(model)
    not_counted: Counter = Counter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fa = FlopCountAnalysis(wrapped, args)
            fa.set_op_handle(**extra_handles())
            if convention == "torchvision":
                fa.set_op_handle(**{n: _zero_handle(not_counted, n) for n in _NON_MAC_DEFAULT_OPS})
            fa.unsupported_ops_warnings(False)
            fa.uncalled_modules_warnings(False)
            fa.tracer_warnings("none")
            total = fa.total()
            by_operator = {k: int(v) for k, v in fa.by_operator().items() if v}
            by_module = {_strip(k): int(v) for k, v in fa.by_module().items()}
            unsupported = fa.unsupported_ops()
    finally:
        model.train(was_training)
    unknown: Dict[str, int] = {}
    for op, n in unsupported.items():
        if _CHEAP_OP_PATTERN.match(op):
            not_counted[op] += n
        else:
            unknown[op] = n
    if unknown:
        msg = (
            f"FLOP count: ops without a handler were counted as 0 and may matter: "
            f"{dict(sorted(unknown.items()))}"
        )
        if strict:
            raise RuntimeError(msg)
        warnings.warn(msg, stacklevel=2)
    params = {n: count_parameters(m) for n, m in model.named_modules()}
    return FlopReport(
        total=int(total),
        convention=convention,
        by_operator=by_operator,
        by_module=by_module,
        params_by_module=params,
        not_counted=dict(sorted(not_counted.items())),
        unknown_ops=dict(sorted(unknown.items())),
        input_shapes=[list(a.shape) for a in args if isinstance(a, torch.Tensor)],
    )


def _strip(name: str) -> str:
    """Module name of the wrapped model (drop ``_TupleOutput``'s ``model.`` prefix)."""
    if name == "model":
        return ""
    return name[len("model."):] if name.startswith("model.") else name
