"""Decomposed relative position embeddings of MViTv2 (Li et al., CVPR 2022, Sec. 4.1).

Semantics follow PySlowFast's ``cal_rel_pos_spatial`` / ``cal_rel_pos_temporal`` (and
detectron2's ``add_decomposed_rel_pos``): the logit between query i and key j gets
``q_i . R_h[d_h(i, j)] + q_i . R_w[d_w(i, j)] + q_i . R_t[d_t(i, j)]``, where distances are
rescaled when the q and k grids differ and tables are linearly resized when their length does
not match ``2 * max(q, k) - 1``. Here the terms are returned as one additive attention bias so
that ``scaled_dot_product_attention`` can run fused kernels.
"""
from __future__ import annotations

from typing import Optional, Tuple

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


def decomposed_rel_pos_bias(
    q: torch.Tensor,
    q_thw: Tuple[int, int, int],
    k_thw: Tuple[int, int, int],
    rel_pos_h: Optional[torch.Tensor],
    rel_pos_w: Optional[torch.Tensor],
    rel_pos_t: Optional[torch.Tensor],
) -> torch.Tensor:
    """Additive attention bias from decomposed relative positions.

    Args:
        q: queries of the grid tokens only (no cls token), ``B x nH x (qt*qh*qw) x C``,
            *unscaled* (the reference adds ``q . R`` without the softmax scale).
        q_thw / k_thw: query and key grids.
        rel_pos_h / rel_pos_w: ``L x C`` spatial tables (or None); rel_pos_t: temporal table.

    Returns:
        ``B x nH x (qt*qh*qw) x (kt*kh*kw)`` bias.
    """
    b, nh, _, c = q.shape
    qt, qh, qw = q_thw
    kt, kh, kw = k_thw
    r_q = q.reshape(b, nh, qt, qh, qw, c)
    bias: Optional[torch.Tensor] = None
    if rel_pos_h is not None and rel_pos_w is not None:
        rh = _lookup(rel_pos_h, qh, kh).to(q.dtype)
        rw = _lookup(rel_pos_w, qw, kw).to(q.dtype)
        rel_h = torch.einsum("bnthwc,hkc->bnthwk", r_q, rh)
        rel_w = torch.einsum("bnthwc,wkc->bnthwk", r_q, rw)
        bias = rel_h[..., None, :, None] + rel_w[..., None, None, :]
    if rel_pos_t is not None:
        rt = _lookup(rel_pos_t, qt, kt).to(q.dtype)
        rel_t = torch.einsum("bnthwc,tkc->bnthwk", r_q, rt)[..., None, None]
        bias = rel_t if bias is None else bias + rel_t
    if bias is None:
        raise ValueError("decomposed_rel_pos_bias needs at least one table")
    bias = bias.expand(b, nh, qt, qh, qw, kt, kh, kw)
    return bias.reshape(b, nh, qt * qh * qw, kt * kh * kw)
