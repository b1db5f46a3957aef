"""Pooling of token sequences on their (t, h, w) grid (MViT's pooling operator P)."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .depthwise import depthwise_conv_nd

Int3 = Tuple[int, int, int]


def pool_tokens(
    x: torch.Tensor,
    thw: Sequence[int],
    op: Callable[[torch.Tensor], torch.Tensor],
    has_cls: bool,
) -> Tuple[torch.Tensor, Int3]:
    """Apply ``op`` to the grid tokens of ``x`` and keep a leading cls token untouched.

    Args:
        x: ``*lead x ([1 +] T*H*W) x C`` tokens.
        thw: grid (T, H, W) of the tokens.
        op: maps ``M x C x T x H x W`` to ``M x C x T' x H' x W'``; it receives a
            channels-last view (no copy) and its output may be in any memory format.
        has_cls: whether token 0 is a cls token that bypasses ``op``.

    Returns:
        pooled tokens ``*lead x ([1 +] T'*H'*W') x C`` and the new grid.
    """
    lead, c = x.shape[:-2], x.shape[-1]
    cls_tok = None
    if has_cls:
        cls_tok, x = x[..., :1, :], x[..., 1:, :]
    t, h, w = thw
    y = op(x.reshape(-1, t, h, w, c).permute(0, 4, 1, 2, 3))
    new_thw = (int(y.shape[2]), int(y.shape[3]), int(y.shape[4]))
    y = y.permute(0, 2, 3, 4, 1).reshape(*lead, -1, c)
    if cls_tok is not None:
        y = torch.cat((cls_tok, y), dim=-2)
    return y, new_thw


def depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, stride: Int3, padding: Int3
) -> torch.Tensor:
    """Depthwise conv of ``M x C x T x H x W`` with a ``C x 1 x kt x kh x kw`` weight (no bias).

    Uses a 2-D convolution when both the input and the kernel have a temporal extent of 1; the
    CPU backward is :func:`~.depthwise.depthwise_conv_nd`'s.
    """
    if x.shape[2] == 1 and weight.shape[2] == 1 and stride[0] == 1:
        return depthwise_conv_nd(x[:, :, 0], weight[:, :, 0], stride[1:], padding[1:]).unsqueeze(2)
    return depthwise_conv_nd(x, weight, stride, padding)


def max_or_avg_pool(
    x: torch.Tensor, mode: str, kernel: Int3, stride: Int3, padding: Int3
) -> torch.Tensor:
    """Max/avg pooling of ``M x C x T x H x W`` (2-D path for single frames)."""
    if x.shape[2] == 1 and kernel[0] == 1 and stride[0] == 1:
        fn2 = F.max_pool2d if mode == "max" else F.avg_pool2d
        return fn2(x[:, :, 0], kernel[1:], stride[1:], padding[1:]).unsqueeze(2)
    fn3 = F.max_pool3d if mode == "max" else F.avg_pool3d
    return fn3(x, kernel, stride, padding)


def same_padding(kernel: Optional[Sequence[int]]) -> Int3:
    return tuple(int(k // 2) for k in kernel) if kernel else (0, 0, 0)  # type: ignore[return-value]
