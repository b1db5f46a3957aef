"""Multi-head pooling attention (MViT, Fan et al. ICCV 2021; MViTv2, Li et al. CVPR 2022).

Semantics follow PySlowFast ``slowfast/models/attention.py`` (video) and detectron2's
``modeling/backbone/mvit.py`` (hybrid window attention). Parameter names follow SlowFast
(``qkv``, ``proj``, ``pool_{q,k,v}``, ``norm_{q,k,v}``, ``rel_pos_{h,w,t}``) so its checkpoints
load without renaming.

Q, K and V are pooled per head by a depthwise conv shared by all heads (then LayerNorm over the
head dim); a cls token bypasses pooling. All heads are pooled at once on the token-major
``B x N x (nH*hd)`` layout the qkv projection writes (one grouped conv for q, one for k and v
together, channels-last), so no per-head layout change is made. Relative positions are folded
into the q . k product (:mod:`.attention_ops`): no bias tensor, no pad of it for the cls token.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention_ops import attend
from .pooling import depthwise_conv, max_or_avg_pool, pool_tokens, same_padding
from .spec import AttentionOptions, BlockSpec

Int3 = Tuple[int, int, int]


class MultiScaleAttention(nn.Module):
    """Pooling attention for one block.

    Input ``B x N x dim_in`` tokens on grid ``thw`` (N includes the cls token if any); output
    ``B x N' x att_dim`` on the q-pooled grid.
    """

    def __init__(self, spec: BlockSpec, options: AttentionOptions = AttentionOptions()) -> None:
        super().__init__()
        opts = options
        self.num_heads = spec.num_heads
        self.att_dim = spec.att_dim
        self.head_dim = spec.att_dim // spec.num_heads
        self.scale = self.head_dim**-0.5
        self.has_cls = opts.has_cls
        self.pool_mode = opts.pool_mode
        self.residual_pooling = opts.residual_pooling
        self.residual_pooling_cls = opts.residual_pooling_cls
        self.window_size = spec.window_size
        self.stride_q, self.stride_kv = spec.stride_q, spec.stride_kv
        self.kernel_q, self.kernel_kv = spec.kernel_q, spec.kernel_kv
        self.pad_q, self.pad_kv = same_padding(spec.kernel_q), same_padding(spec.kernel_kv)
        #: attention core (:mod:`.attention_ops`): "auto" (by device) | "explicit" | "sdpa" |
        #: "sdpa_bias"; a plain attribute, so a model can be switched after it is built
        self.backend: str = opts.backend

        self.qkv = nn.Linear(spec.dim_in, 3 * spec.att_dim, bias=opts.qkv_bias)
        self.proj = nn.Linear(spec.att_dim, spec.att_dim)

        hd = self.head_dim
        # conv pooling: a depthwise conv per tensor (weight ``pool_X.weight``), then LayerNorm
        # over the head dim (``norm_X``); None where X is not pooled or pooling is max / avg
        self.pool_q: Optional[_DepthwisePool] = _conv_pool(spec.kernel_q, hd, opts)
        self.norm_q: Optional[nn.LayerNorm] = _pool_norm(spec.kernel_q, hd, opts)
        self.pool_k: Optional[_DepthwisePool] = _conv_pool(spec.kernel_kv, hd, opts)
        self.norm_k: Optional[nn.LayerNorm] = _pool_norm(spec.kernel_kv, hd, opts)
        self.pool_v: Optional[_DepthwisePool] = _conv_pool(spec.kernel_kv, hd, opts)
        self.norm_v: Optional[nn.LayerNorm] = _pool_norm(spec.kernel_kv, hd, opts)

        self.rel_pos_h: Optional[nn.Parameter] = None
        self.rel_pos_w: Optional[nn.Parameter] = None
        self.rel_pos_t: Optional[nn.Parameter] = None
        if opts.rel_pos_spatial:
            rows_h, rows_w = spec.rel_pos_spatial_size
            self.rel_pos_h = nn.Parameter(torch.zeros(rows_h, hd))
            self.rel_pos_w = nn.Parameter(torch.zeros(rows_w, hd))
        if opts.rel_pos_temporal:
            self.rel_pos_t = nn.Parameter(torch.zeros(spec.rel_pos_temporal_size, hd))
        if not opts.rel_pos_zero_init:
            for p in (self.rel_pos_h, self.rel_pos_w, self.rel_pos_t):
                if p is not None:
                    nn.init.trunc_normal_(p, std=0.02)

    # -------------------------------------------------------------------------------- pooling
    def _pool(
        self,
        x: torch.Tensor,
        thw: Int3,
        kernel: Optional[Int3],
        stride: Int3,
        pad: Int3,
        weight: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, Int3]:
        """Pool ``B x ([1 +] T*H*W) x C'`` tokens of all heads side by side (any strides).

        One depthwise conv over the ``C'`` channels (``weight`` ``C' x 1 x k...``: the shared
        per-head kernel repeated) or max / avg pooling, on a channels-last view; the output
        ``B x ([1 +] T'*H'*W') x C'`` is contiguous. No per-head layout change.
        """
        if kernel is None:
            return x, thw
        if weight is not None:
            return pool_tokens(x, thw, lambda y: depthwise_conv(y, weight, stride, pad),
                               self.has_cls)
        mode = self.pool_mode
        return pool_tokens(x, thw, lambda y: max_or_avg_pool(y, mode, kernel, stride, pad),
                           self.has_cls)

    def _heads(self, x: torch.Tensor, norm: Optional[nn.LayerNorm]) -> torch.Tensor:
        """``B x N x (nH*hd)`` -> ``B x N x nH x hd`` (a view), LayerNorm over hd if given."""
        x = x.unflatten(-1, (self.num_heads, self.head_dim))
        return norm(x) if norm is not None else x

    def pool_q_tokens(self, q: torch.Tensor, thw: Int3) -> Tuple[torch.Tensor, Int3]:
        """``B x N x (nH*hd)`` queries -> pooled ``B x N_q x nH x hd`` and their grid."""
        w = None
        if self.pool_q is not None:
            w = self.pool_q.weight.repeat(self.num_heads, 1, 1, 1, 1)
        q, q_thw = self._pool(q, thw, self.kernel_q, self.stride_q, self.pad_q, w)
        return self._heads(q, self.norm_q), q_thw

    def pool_kv_tokens(
        self, kv: torch.Tensor, thw: Int3
    ) -> Tuple[torch.Tensor, torch.Tensor, Int3]:
        """``B x N x (2*nH*hd)`` keys and values (side by side) -> pooled ``B x N_kv x nH x hd``
        keys, values and their grid; k and v are pooled by one conv."""
        w = None
        if self.pool_k is not None and self.pool_v is not None:
            nh = self.num_heads
            w = torch.cat((self.pool_k.weight.repeat(nh, 1, 1, 1, 1),
                           self.pool_v.weight.repeat(nh, 1, 1, 1, 1)))
        kv, k_thw = self._pool(kv, thw, self.kernel_kv, self.stride_kv, self.pad_kv, w)
        c = self.att_dim
        return self._heads(kv[..., :c], self.norm_k), self._heads(kv[..., c:], self.norm_v), k_thw

    # ------------------------------------------------------------------------------ attention
    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_thw: Int3, k_thw: Int3,
        has_cls: bool,
    ) -> torch.Tensor:
        """``B x nH x N x C`` q / k / v (any strides) -> ``B x nH x Nq x C``."""
        return attend(q, k, v, scale=self.scale, q_thw=q_thw, k_thw=k_thw,
                      rel_pos_h=self.rel_pos_h, rel_pos_w=self.rel_pos_w,
                      rel_pos_t=self.rel_pos_t, has_cls=has_cls, backend=self.backend)

    def _attend_windows(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_thw: Int3, k_thw: Int3
    ) -> torch.Tensor:
        """detectron2-style window attention: windows tile (h, w); each holds all frames."""
        wq = self.window_size // self.stride_q[1]
        wk = self.window_size // self.stride_kv[1]
        qw, nwin = _window_partition(q, q_thw, wq)
        kw, nwin_k = _window_partition(k, k_thw, wk)
        vw, _ = _window_partition(v, k_thw, wk)
        if nwin != nwin_k:
            raise RuntimeError(
                f"window attention: q grid {q_thw} (window {wq}) and kv grid {k_thw} "
                f"(window {wk}) give different window counts {nwin} vs {nwin_k}"
            )
        out = self._attend(qw, kw, vw, (q_thw[0], wq, wq), (k_thw[0], wk, wk), False)
        return _window_unpartition(out, q.shape[0], q_thw, wq)

    def forward(self, x: torch.Tensor, thw: Int3) -> Tuple[torch.Tensor, Int3]:
        """``B x N x dim_in`` on grid ``thw`` -> ``B x N' x att_dim`` on the q-pooled grid."""
        b = x.shape[0]
        c = self.att_dim
        qkv = self.qkv(x)  # B x N x 3C: q | k | v, each head-major (nH x hd)
        q, q_thw = self.pool_q_tokens(qkv[..., :c], thw)  # B x Nq x nH x hd
        k, v, k_thw = self.pool_kv_tokens(qkv[..., c:], thw)

        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # B x nH x N x hd
        if self.window_size:
            out = self._attend_windows(qh, kh, vh, q_thw, k_thw)
        else:
            out = self._attend(qh, kh, vh, q_thw, k_thw, self.has_cls)
        out = out.transpose(1, 2)  # B x Nq x nH x hd (a view)

        if self.residual_pooling:
            res = q + out  # written in q's (token-major) layout: no separate transpose copy
            if self.has_cls and not self.residual_pooling_cls:
                res[:, :1] = out[:, :1]  # the cls row gets no pooled q (SlowFast)
            out = res
        return self.proj(out.reshape(b, -1, c)), q_thw


class _DepthwisePool(nn.Module):
    """Holds the ``C x 1 x kt x kh x kw`` weight of a per-head depthwise pooling conv.

    The parameter is named ``weight`` so the state-dict key is ``attn.pool_q.weight`` (SlowFast).
    """

    def __init__(self, channels: int, kernel: Int3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 1, *kernel))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv3d's default init

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[0]}, kernel={tuple(self.weight.shape[2:])}"


def _conv_pool(kernel: Optional[Int3], channels: int,
               opts: AttentionOptions) -> Optional[_DepthwisePool]:
    return _DepthwisePool(channels, kernel) if kernel is not None and opts.pool_mode == "conv" else None


def _pool_norm(kernel: Optional[Int3], channels: int,
               opts: AttentionOptions) -> Optional[nn.LayerNorm]:
    if kernel is None or opts.pool_mode != "conv":
        return None
    return nn.LayerNorm(channels, eps=opts.norm_eps)


def _window_partition(x: torch.Tensor, thw: Int3, win: int) -> Tuple[torch.Tensor, int]:
    """``B x nH x (T*H*W) x C`` -> ``(B*nW) x nH x (T*win*win) x C`` (zero-padded to whole windows)."""
    b, nh, _, c = x.shape
    t, h, w = thw
    x = x.reshape(b, nh, t, h, w, c)
    ph, pw = (-h) % win, (-w) % win
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, nh, t, hp // win, win, wp // win, win, c)
    x = x.permute(0, 3, 5, 1, 2, 4, 6, 7)  # B, nWh, nWw, nH, T, win, win, C
    nwin = (hp // win) * (wp // win)
    return x.reshape(b * nwin, nh, t * win * win, c), nwin


def _window_unpartition(x: torch.Tensor, b: int, thw: Int3, win: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`, cropping the padding: -> ``B x nH x (T*H*W) x C``."""
    t, h, w = thw
    hp, wp = h + (-h) % win, w + (-w) % win
    nh, c = x.shape[1], x.shape[-1]
    x = x.reshape(b, hp // win, wp // win, nh, t, win, win, c)
    x = x.permute(0, 3, 4, 1, 5, 2, 6, 7).reshape(b, nh, t, hp, wp, c)
    return x[:, :, :, :h, :w].reshape(b, nh, t * h * w, c)
