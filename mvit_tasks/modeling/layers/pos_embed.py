"""Resizing absolute position tables to another token grid.

Two rules, chosen by the grid:

* 2-D grids (one time step in the table and in the target, i.e. image models): bicubic over
  the ``H x W`` grid, ``align_corners=False`` -- detectron2's ``get_abs_pos``
  (``detectron2/modeling/backbone/utils.py``), which its MViT / ViT backbones apply when the
  input size differs from the pre-training size;
* 3-D grids (video): trilinear over ``T x H x W``, ``align_corners=False`` -- PySlowFast's
  ``MViT._get_pos_embed``.

The cls-token row is not part of the grid: callers keep it aside (a model with a cls token adds
it unchanged; detectron2's models, which have no cls token, drop it).

The backbone resizes with :func:`resize_abs_pos` at run time and the checkpoint adapter
(``mvit_tasks/checkpoint/adapt.py``) at load time, so both follow the same rule.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["resize_abs_pos"]


def resize_abs_pos(table: torch.Tensor, src: Sequence[int], dst: Sequence[int],
                   video: Optional[bool] = None) -> torch.Tensor:
    """Resize a ``1 x (t*h*w) x C`` table laid out on grid ``src = (t, h, w)`` to ``dst``.

    Tokens are in ``(t, h, w)`` row-major order (the backbone's flattening). Returns
    ``1 x (t'*h'*w') x C`` in the table's dtype (interpolated in float32 at least); the table
    itself when ``src == dst``. 2-D grids (``src[0] == dst[0] == 1``) are resized bicubically
    over ``h x w``, others trilinearly (see the module note); ``video=True`` forces the
    trilinear rule (the spatial table of a video model), ``False`` the bicubic one.
    """
    src, dst = tuple(int(s) for s in src), tuple(int(s) for s in dst)
    if len(src) != 3 or len(dst) != 3:
        raise ValueError(f"grids are (t, h, w); got {src} -> {dst}")
    n, c = table.shape[-2:]
    if n != src[0] * src[1] * src[2]:
        raise ValueError(f"a table of {n} rows does not lie on the grid {src}")
    if src == dst:
        return table
    work = torch.promote_types(table.dtype, torch.float32)
    if video is None:
        video = not (src[0] == 1 and dst[0] == 1)
    if not video:
        if src[0] != 1 or dst[0] != 1:
            raise ValueError(f"the 2-D rule needs one time step; got {src} -> {dst}")
        g = table.reshape(1, src[1], src[2], c).permute(0, 3, 1, 2).to(work)  # 1 C H W
        g = F.interpolate(g, size=dst[1:], mode="bicubic", align_corners=False)
    else:
        g = table.reshape(1, *src, c).permute(0, 4, 1, 2, 3).to(work)  # 1 C T H W
        g = F.interpolate(g, size=dst, mode="trilinear", align_corners=False)
    return g.reshape(1, c, -1).transpose(1, 2).to(table.dtype)
