"""The MViT families, each built from its stage ``depths`` (timm's convention).

A variant names its family and the number of blocks in each of its four stages, as timm's
``MultiScaleVitCfg(depths=(1, 2, 11, 2))`` does; the family fills in what its official configs
share. Stage ``k > 0`` starts with a q-pooling stride of 2 (spatial) and doubles the width and
the heads, so ``depths=(1, 2, 11, 2)`` is SlowFast's ``DEPTH: 16`` with ``DIM_MUL`` /
``HEAD_MUL`` / ``POOL_Q_STRIDE`` at blocks ``[1, 3, 14]``, and detectron2's
``last_block_indexes=(0, 2, 13, 15)``.

Families (the configs whose shared settings they hold):

* :func:`mvitv1_video` -- MViTv1 video, PySlowFast ``configs/Kinetics/MVIT_B_*_CONV.yaml``.
* :func:`mvitv2_video` -- MViTv2 video, PySlowFast ``configs/Kinetics/MVITv2_*.yaml``.
* :func:`mvitv2_image` -- MViTv2 image, facebookresearch/mvit ``configs/MVITv2_*.yaml``.
* :func:`mvitv2_detection` -- detectron2 ``projects/MViTv2`` backbones (hybrid window
  attention, multi-scale outputs).

Keyword ``overrides`` are :class:`~.arch.MViTArch` fields (``embed_dim``, ``drop_path_rate``,
``spatial_size``, ...); the fields that ``depths`` sets cannot be overridden.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, Sequence

from .arch import MViTArch

# MViTArch fields that the stage depths determine.
_FROM_DEPTHS = ("depth", "dim_mul", "head_mul", "pool_q_stride")


def stage_starts(depths: Sequence[int]) -> List[int]:
    """Index of the first block of every stage after the first: ``(1, 2, 11, 2) -> [1, 3, 14]``."""
    return list(itertools.accumulate(depths))[:-1]


def stage_lists(depths: Sequence[int], q_stride: Sequence[int], q_pool_every_block: bool
                ) -> Dict[str, Any]:
    """The block-indexed SlowFast lists of ``depths`` (widths and heads x2 at stage starts).

    ``q_stride`` pools q at every stage start; ``q_pool_every_block`` adds stride-1 q pooling to
    the other blocks (MViTv2) instead of leaving them unpooled (MViTv1).
    """
    depths = [int(d) for d in depths]
    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be positive block counts per stage, got {depths}")
    depth, starts = sum(depths), stage_starts(depths)
    one = [1] * len(q_stride)
    pool_q = []
    for i in range(depth):
        if i in starts:
            pool_q.append([i, *q_stride])
        elif q_pool_every_block:
            pool_q.append([i, *one])
    return dict(depth=depth, dim_mul=[[i, 2.0] for i in starts],
                head_mul=[[i, 2.0] for i in starts], pool_q_stride=pool_q)


def _build(family: Dict[str, Any], depths: Sequence[int], q_stride: Sequence[int],
           q_pool_every_block: bool, overrides: Dict[str, Any]) -> MViTArch:
    clash = sorted(set(overrides) & set(_FROM_DEPTHS))
    if clash:
        raise TypeError(f"{clash} follow from depths; give depths=(blocks per stage) instead")
    return MViTArch(**{**family, **stage_lists(depths, q_stride, q_pool_every_block), **overrides})


def mvitv1_video(*, depths: Sequence[int], num_frames: int, **overrides: Any) -> MViTArch:
    """MViTv1 video (SlowFast ``MVIT_B_*_CONV``): separate absolute position tables, q pooled at
    stage starts only, width change in the previous block's MLP, no residual pooling."""
    family = dict(
        video=True, num_frames=num_frames, embed_dim=96, num_heads=1,
        pool_kv_stride_adaptive=(1, 8, 8), pool_kvq_kernel=(3, 3, 3), cls_embed=True,
        use_abs_pos=True, sep_pos_embed=True, rel_pos_spatial=False, rel_pos_temporal=False,
        residual_pooling=False, dim_mul_in_att=False, drop_path_rate=0.2,
    )
    return _build(family, depths, (1, 2, 2), False, overrides)


def mvitv2_video(*, depths: Sequence[int], num_frames: int, **overrides: Any) -> MViTArch:
    """MViTv2 video (SlowFast ``MVITv2_*``): decomposed rel-pos (h, w, t), residual pooling,
    q pooled in every block, width change inside attention."""
    family = dict(
        video=True, num_frames=num_frames, embed_dim=96, num_heads=1,
        pool_kv_stride_adaptive=(1, 8, 8), pool_kvq_kernel=(3, 3, 3), cls_embed=True,
        use_abs_pos=False, rel_pos_spatial=True, rel_pos_temporal=True, residual_pooling=True,
        dim_mul_in_att=True, drop_path_rate=0.2,
    )
    return _build(family, depths, (1, 2, 2), True, overrides)


def mvitv2_image(*, depths: Sequence[int], **overrides: Any) -> MViTArch:
    """MViTv2 image (facebookresearch/mvit ``MVITv2_*``): 2-D, 7x7/4 patches, mean-pooled
    features unless ``cls_embed=True``, residual pooling into the cls row too."""
    family = dict(
        video=False, num_frames=1, patch_kernel=(7, 7), patch_stride=(4, 4), patch_padding=(3, 3),
        embed_dim=96, num_heads=1, pool_kv_stride_adaptive=(4, 4), pool_kvq_kernel=(3, 3),
        cls_embed=False, use_abs_pos=False, rel_pos_spatial=True, rel_pos_temporal=False,
        residual_pooling=True, residual_pooling_cls=True, dim_mul_in_att=True, drop_path_rate=0.1,
    )
    return _build(family, depths, (2, 2), True, overrides)


def mvitv2_detection(*, depths: Sequence[int], **overrides: Any) -> MViTArch:
    """detectron2's MViTv2 backbone: :func:`mvitv2_image` with hybrid window attention.

    Windows of 56 tokens in the first stage (halved per stage); the last block of every later
    stage attends globally (detectron2's ``last_block_indexes[1:]``), and the kv stride is
    doubled in the global blocks of the second and third stage. Zero-initialised rel-pos
    tables, no cls token, drop path 0.2 unless overridden.
    """
    ends = [end - 1 for end in itertools.accumulate(int(d) for d in depths)]
    settings = dict(cls_embed=False, rel_pos_zero_init=True, window_size=56,
                    global_blocks=tuple(ends[1:]), drop_path_rate=0.2)
    arch = mvitv2_image(depths=depths, **{**settings, **overrides})
    kv = {s.index: s.stride_kv for s in arch.block_specs()}
    doubled = [[b, kv[b][1] * 2, kv[b][2] * 2] for b in ends[1:3]]
    return arch.replace(pool_kv_stride=doubled)
