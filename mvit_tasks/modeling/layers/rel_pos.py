"""Decomposed relative position embeddings of MViTv2 (Li et al., CVPR 2022, Sec. 4.1).

Semantics follow PySlowFast's ``cal_rel_pos_spatial`` / ``cal_rel_pos_temporal`` (and
detectron2's ``add_decomposed_rel_pos``): the logit between query i and key j gets
``q_i . R_h[d_h(i, j)] + q_i . R_w[d_w(i, j)] + q_i . R_t[d_t(i, j)]``, where distances are
rescaled when the q and k grids differ and tables are linearly resized when their length does
not match ``2 * max(q, k) - 1``. :func:`rel_pos_terms` gives the three terms;
:func:`rel_pos_key_codes` lets attention fold them into the q . k product (no bias tensor);
:func:`decomposed_rel_pos_bias` materialises them as one additive bias.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resize a ``L x C`` table to ``length x C`` (identity if already that long)."""
    if rel_pos.shape[0] == length:
        return rel_pos
    resized = F.interpolate(rel_pos.t().unsqueeze(0).float(), size=length, mode="linear")
    return resized.squeeze(0).t().to(rel_pos.dtype)


def rel_pos_index(q_size: int, k_size: int, device: torch.device) -> torch.Tensor:
    """``q_size x k_size`` long tensor of table rows, with the grids rescaled to a common size."""
    q_ratio = max(k_size / q_size, 1.0)
    k_ratio = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=device)[:, None] * q_ratio
    k_coords = torch.arange(k_size, device=device)[None, :] * k_ratio
    return (q_coords - k_coords + (k_size - 1) * k_ratio).long()


def _lookup(rel_pos: torch.Tensor, q_size: int, k_size: int) -> torch.Tensor:
    table = resize_rel_pos(rel_pos, 2 * max(q_size, k_size) - 1)
    return table[rel_pos_index(q_size, k_size, rel_pos.device)]


def rel_pos_terms(
    q: torch.Tensor,
    q_thw: Tuple[int, int, int],
    k_thw: Tuple[int, int, int],
    rel_pos_h: Optional[torch.Tensor],
    rel_pos_w: Optional[torch.Tensor],
    rel_pos_t: Optional[torch.Tensor],
) -> List[torch.Tensor]:
    """The per-axis terms ``q_i . R[d(i, j)]`` of the decomposed relative positions.

    Args:
        q: queries of the grid tokens only (no cls token), ``B x nH x (qt*qh*qw) x C`` (any
            strides), *unscaled* (the reference adds ``q . R`` without the softmax scale).
        q_thw / k_thw: query and key grids.
        rel_pos_h / rel_pos_w: ``L x C`` spatial tables (or None); rel_pos_t: temporal table.

    Returns:
        ``[t, h, w]`` terms for the tables given (temporal first), each
        ``B x nH x qt x qh x qw x k_axis`` with ``k_axis`` = kt, kh or kw; the bias between
        query i and key j = (jt, jh, jw) is ``t[i, jt] + h[i, jh] + w[i, jw]``.
    """
    b, nh, _, c = q.shape
    qt, qh, qw = q_thw
    kt, kh, kw = k_thw
    r_q = q.reshape(b, nh, qt, qh, qw, c)
    terms: List[torch.Tensor] = []
    if rel_pos_t is not None:
        rt = _lookup(rel_pos_t, qt, kt).to(q.dtype)
        terms.append(torch.einsum("bnthwc,tkc->bnthwk", r_q, rt))
    if rel_pos_h is not None and rel_pos_w is not None:
        rh = _lookup(rel_pos_h, qh, kh).to(q.dtype)
        rw = _lookup(rel_pos_w, qw, kw).to(q.dtype)
        terms.append(torch.einsum("bnthwc,hkc->bnthwk", r_q, rh))
        terms.append(torch.einsum("bnthwc,wkc->bnthwk", r_q, rw))
    if not terms:
        raise ValueError("relative positions need at least one table")
    return terms


def rel_pos_key_codes(
    k_thw: Tuple[int, int, int], temporal: bool, spatial: bool, dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """One-hot codes of the key grid positions, ``(kt*kh*kw) x E``: for key ``(jt, jh, jw)``
    a 1 at ``jt`` (``temporal``), at ``kt' + jh`` and at ``kt' + kh + jw`` (``spatial``;
    ``kt' = kt`` if temporal else 0), ``E = [kt] + [kh + kw]``.

    ``[q . scale, t, h, w] . [k, codes]`` is the scaled logit plus the rel-pos bias of
    :func:`rel_pos_terms`, so attention needs no materialised bias.
    """
    kt, kh, kw = k_thw
    parts = []
    if temporal:
        parts.append(torch.eye(kt, dtype=dtype, device=device)[:, None, None, :]
                     .expand(kt, kh, kw, kt))
    if spatial:
        parts.append(torch.eye(kh, dtype=dtype, device=device)[None, :, None, :]
                     .expand(kt, kh, kw, kh))
        parts.append(torch.eye(kw, dtype=dtype, device=device)[None, None, :, :]
                     .expand(kt, kh, kw, kw))
    return torch.cat(parts, dim=-1).reshape(kt * kh * kw, -1)


def decomposed_rel_pos_bias(
    q: torch.Tensor,
    q_thw: Tuple[int, int, int],
    k_thw: Tuple[int, int, int],
    rel_pos_h: Optional[torch.Tensor],
    rel_pos_w: Optional[torch.Tensor],
    rel_pos_t: Optional[torch.Tensor],
) -> torch.Tensor:
    """Additive attention bias from decomposed relative positions (arguments as
    :func:`rel_pos_terms`): ``B x nH x (qt*qh*qw) x (kt*kh*kw)``."""
    b, nh = q.shape[:2]
    qt, qh, qw = q_thw
    kt, kh, kw = k_thw
    terms = rel_pos_terms(q, q_thw, k_thw, rel_pos_h, rel_pos_w, rel_pos_t)
    bias: Optional[torch.Tensor] = None
    if rel_pos_h is not None and rel_pos_w is not None:
        rel_h, rel_w = terms[-2], terms[-1]
        bias = rel_h[..., None, :, None] + rel_w[..., None, None, :]
    if rel_pos_t is not None:
        rel_t = terms[0][..., None, None]
        bias = rel_t if bias is None else bias + rel_t
    assert bias is not None
    bias = bias.expand(b, nh, qt, qh, qw, kt, kh, kw)
    return bias.reshape(b, nh, qt * qh * qw, kt * kh * kw)
