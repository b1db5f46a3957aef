"""MultiScaleBlock: pooling attention + MLP with pooled / projected skip connections.

Follows PySlowFast ``MultiScaleBlock``: with ``dim_mul_in_att`` (MViTv2) the width changes in
attention and the skip is ``proj(norm1(x))``; otherwise (MViTv1) the MLP changes the width and
the skip is ``proj(norm2(x))``. A q-strided block max-pools its skip with kernel ``s + 1``.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from .attention import MultiScaleAttention
from .drop_path import DropPath
from .pooling import max_or_avg_pool, pool_tokens
from .spec import AttentionOptions, BlockSpec

Int3 = Tuple[int, int, int]


class Mlp(nn.Module):
    """Linear -> GELU -> Linear; ``B x N x in`` -> ``B x N x out``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MultiScaleBlock(nn.Module):
    """One MViT block. ``B x N x dim_in`` on grid ``thw`` -> ``B x N' x dim_out`` on the q grid."""

    def __init__(
        self,
        spec: BlockSpec,
        options: AttentionOptions = AttentionOptions(),
        *,
        mlp_ratio: float = 4.0,
        dim_mul_in_att: bool = True,
    ) -> None:
        """``options`` are the attention flags; its ``has_cls`` and ``norm_eps`` apply to the
        whole block (skip pooling keeps the cls token; eps of ``norm1`` / ``norm2``)."""
        super().__init__()
        norm_eps = options.norm_eps
        self.dim_in, self.dim_out = spec.dim_in, spec.dim_out
        self.dim_mul_in_att = dim_mul_in_att
        self.has_cls = options.has_cls
        self.norm1 = nn.LayerNorm(spec.dim_in, eps=norm_eps)
        self.attn = MultiScaleAttention(spec, options)
        self.drop_path = DropPath(spec.drop_path)
        self.norm2 = nn.LayerNorm(spec.att_dim, eps=norm_eps)
        self.mlp = Mlp(spec.att_dim, int(spec.att_dim * mlp_ratio), spec.dim_out)
        if spec.dim_in != spec.dim_out:
            self.proj = nn.Linear(spec.dim_in, spec.dim_out)
        else:
            self.proj = None
        self.skip_stride: Int3 = spec.stride_q
        self.skip_kernel: Int3 = tuple(s + 1 if s > 1 else s for s in spec.stride_q)  # type: ignore
        self.skip_padding: Int3 = tuple(k // 2 for k in self.skip_kernel)  # type: ignore
        self.pool_skip = math.prod(spec.stride_q) > 1

    def _skip(self, x: torch.Tensor, thw: Int3) -> torch.Tensor:
        if not self.pool_skip:
            return x
        k, s, p = self.skip_kernel, self.skip_stride, self.skip_padding
        return pool_tokens(x, thw, lambda y: max_or_avg_pool(y, "max", k, s, p), self.has_cls)[0]

    def forward(self, x: torch.Tensor, thw: Int3) -> Tuple[torch.Tensor, Int3]:
        x_norm = self.norm1(x)
        x_attn, thw_new = self.attn(x_norm, thw)
        if self.proj is not None and self.dim_mul_in_att:
            x = self.proj(x_norm)
        x = self._skip(x, thw) + self.drop_path(x_attn)
        x_norm = self.norm2(x)
        x_mlp = self.mlp(x_norm)
        if self.proj is not None and not self.dim_mul_in_att:
            x = self.proj(x_norm)
        return x + self.drop_path(x_mlp), thw_new
