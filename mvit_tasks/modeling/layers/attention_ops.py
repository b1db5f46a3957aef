"""The attention core of MViT: softmax(q k^T * scale + rel-pos bias) v, in the form that is
fastest for the tensors' device and dtype.

The decomposed rel-pos bias (:mod:`.rel_pos`) is a sum of three small per-axis terms, so it
can be *folded* into the dot product instead of being materialised as a ``Nq x Nk`` mask:

    logit(i, j) = [q_i, t_i, h_i, w_i] . [k_j * scale, code_j]

where ``t_i, h_i, w_i`` are query i's terms (``kt + kh + kw`` numbers) and ``code_j`` is the
one-hot code of key j's grid position (:func:`~.rel_pos.rel_pos_key_codes`). A cls token gets
zero terms and a zero code (its row and column carry no bias, as in SlowFast), so no pad or
fill of a bias tensor is needed, and the bias trains through ordinary autograd of ``q`` and the
tables (a mask that requires grad would push CPU SDPA onto its slow math backend).

Backends (``attend(..., backend=)``):

* ``"explicit"``: ``matmul`` + ``softmax`` + ``matmul`` on the folded q / k. Fastest on CPU,
  in bf16 by far (oneDNN / AMX matmuls; the CPU flash kernel runs far below the matmul peak);
* ``"sdpa"``: ``F.scaled_dot_product_attention`` on the folded q / k without a mask, so the
  flash / memory-efficient kernels run on CUDA, in training too (the folded width is padded
  to a multiple of 8 for them);
* ``"sdpa_bias"``: SDPA with the bias written into one buffer (cls row / column zeroed, no pad
  or fill of the grid part); with grad, the padded mask of the reference build.

``"auto"`` picks ``"sdpa"`` on CUDA and ``"explicit"`` elsewhere; the choice is measured by
``tools/benchmark.py`` (see ``docs/performance.md``).

Under ``torch.jit.trace`` (the FLOP counter, :mod:`mvit_tasks.utils.flops`) every backend
takes the reference form: SDPA with the ``Nq x Nk`` bias from the rel-pos einsums, so the count
is the architecture's (``q @ k^T`` + ``attn @ v`` + the einsums; the published GFLOPs), not the
folded product's extra ``kt + kh + kw`` columns, whatever backend runs.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .rel_pos import decomposed_rel_pos_bias, rel_pos_key_codes, rel_pos_terms
from .spec import ATTENTION_BACKENDS as BACKENDS

Int3 = Tuple[int, int, int]


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The backend ``"auto"`` stands for on ``x``'s device; others are returned as given."""
    if backend not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return "sdpa" if x.device.type == "cuda" else "explicit"


def _explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T) v`` over ``B x nH x N x C`` (q already scaled or folded)."""
    attn = torch.matmul(q, k.transpose(-2, -1))
    return torch.matmul(attn.softmax(dim=-1), v)


def fold_rel_pos(
    q: torch.Tensor,
    k: torch.Tensor,
    terms: List[torch.Tensor],
    k_thw: Int3,
    scale: float,
    has_cls: bool,
    temporal: bool,
    spatial: bool,
    multiple: int = 1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys whose dot product is the scaled logit plus the rel-pos bias.

    Args:
        q / k: ``B x nH x Nq x C`` / ``B x nH x Nk x C`` (any strides; N includes the cls token
            when ``has_cls``).
        terms: :func:`~.rel_pos.rel_pos_terms` of the grid queries, ``[t], [h, w]``.
        multiple: pad the folded width ``C + E`` with zeros to a multiple of this.

    Returns:
        ``B x nH x Nq x C'`` and ``B x nH x Nk x C'`` (contiguous).
    """
    b, nh, nq, _ = q.shape
    s = 1 if has_cls else 0
    rel = torch.cat([t.reshape(b, nh, nq - s, t.shape[-1]) for t in terms], dim=-1)
    codes = rel_pos_key_codes(k_thw, temporal, spatial, k.dtype, k.device)
    extra = codes.shape[-1]
    pad = (-(q.shape[-1] + extra)) % multiple
    rel = F.pad(rel, (0, pad, s, 0))  # cls row: no bias; small (E columns)
    codes = F.pad(codes, (0, pad, s, 0)).expand(b, nh, -1, -1)
    qa = torch.cat((q, rel.to(q.dtype)), dim=-1)
    ka = torch.cat((k * scale, codes.to(k.dtype)), dim=-1)
    return qa, ka


def rel_pos_bias_buffer(
    terms: List[torch.Tensor], q_thw: Int3, k_thw: Int3, has_cls: bool, dtype: torch.dtype,
) -> torch.Tensor:
    """The ``B x nH x Nq x Nk`` additive bias written in one pass into one buffer, the cls row
    and column zeroed (no pad / fill of the grid part). Not differentiable."""
    b, nh = terms[0].shape[:2]
    qt, qh, qw = q_thw
    kt, kh, kw = k_thw
    s = 1 if has_cls else 0
    nq, nk = qt * qh * qw + s, kt * kh * kw + s
    bias = terms[0].new_empty((b, nh, nq, nk), dtype=dtype)
    if s:
        bias[:, :, 0].zero_()
        bias[:, :, 1:, 0].zero_()
    grid = bias[:, :, s:, s:].view(b, nh, qt, qh, qw, kt, kh, kw)
    if len(terms) == 3:  # t, h, w
        th = terms[0][..., :, None] + terms[1][..., None, :]  # ... x kt x kh (small)
        torch.add(th[..., None], terms[2][..., None, None, :], out=grid)
    elif len(terms) == 2:  # h, w
        torch.add(terms[0][..., None, :, None], terms[1][..., None, None, :], out=grid)
    else:  # t
        grid.copy_(terms[0][..., :, None, None].expand_as(grid))
    return bias


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    q_thw: Int3,
    k_thw: Int3,
    rel_pos_h: Optional[torch.Tensor] = None,
    rel_pos_w: Optional[torch.Tensor] = None,
    rel_pos_t: Optional[torch.Tensor] = None,
    has_cls: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Multi-head attention with MViTv2's decomposed rel-pos bias (SlowFast semantics).

    Args:
        q / k / v: ``B x nH x Nq x C``, ``B x nH x Nk x C`` (any strides; N counts the cls
            token when ``has_cls``); ``q`` unscaled.
        q_thw / k_thw: token grids of q and k (without the cls token).
        rel_pos_*: ``L x C`` tables or None (no bias when all are None).

    Returns:
        ``B x nH x Nq x C``.
    """
    tracing = torch.jit.is_tracing()  # the FLOP counter: the reference form (module docstring)
    backend = "sdpa_bias" if tracing else resolve_backend(backend, q)
    spatial = rel_pos_h is not None and rel_pos_w is not None
    temporal = rel_pos_t is not None
    if not (spatial or temporal):
        if backend == "explicit":
            return _explicit(q, k * scale, v)
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    s = 1 if has_cls else 0
    tables = (rel_pos_h, rel_pos_w, rel_pos_t)
    if tracing or (backend == "sdpa_bias" and torch.is_grad_enabled() and (
            q.requires_grad or any(t is not None and t.requires_grad for t in tables))):
        bias = decomposed_rel_pos_bias(q[:, :, s:], q_thw, k_thw, *tables)
        bias = F.pad(bias, (1, 0, 1, 0)) if s else bias
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    terms = rel_pos_terms(q[:, :, s:], q_thw, k_thw, *tables)
    if backend == "sdpa_bias":
        bias = rel_pos_bias_buffer(terms, q_thw, k_thw, has_cls, q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    multiple = 8 if backend == "sdpa" else 1
    qa, ka = fold_rel_pos(q, k, terms, k_thw, scale, has_cls, temporal, spatial, multiple)
    if backend == "explicit":
        return _explicit(qa, ka, v)
    return F.scaled_dot_product_attention(qa, ka, v, scale=1.0)
