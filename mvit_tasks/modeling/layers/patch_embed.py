"""Patch embedding: a strided Conv3d turning ``B x C x T x H x W`` pixels into tokens."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """``proj`` is always a Conv3d; image models use a temporal kernel of 1.

    Keeping one (5-D) weight layout for images and videos makes image -> video inflation a pure
    weight operation. For images (T == 1, kernel_t == 1) the forward runs a 2-D convolution on
    the squeezed weight, which is faster on CPU.

    Returns tokens ``B x (T' * H' * W') x C`` and the grid ``(T', H', W')``.
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
    ) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, tuple(kernel), tuple(stride), tuple(padding))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        w, b = self.proj.weight, self.proj.bias
        if x.shape[2] == 1 and w.shape[2] == 1:
            y = F.conv2d(x[:, :, 0], w[:, :, 0], b, self.proj.stride[1:], self.proj.padding[1:])
            y = y.unsqueeze(2)
        else:
            y = self.proj(x)
        t, h, w_ = y.shape[2:]
        return y.flatten(2).transpose(1, 2), (t, h, w_)
