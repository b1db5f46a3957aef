"""Plain, typed settings of one MViT block: its geometry (:class:`BlockSpec`) and the attention
flags shared by all blocks of a model (:class:`AttentionOptions`).

They live with the layers so that ``layers/`` stands alone: the backbone's architecture
(``backbone/arch.py``) expands its settings into these specs, but nothing here imports the
backbone. No torch import: the specs are cheap to build and to compare.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

Int3 = Tuple[int, int, int]

POOL_MODES = ("conv", "max", "avg")
ATTENTION_BACKENDS = ("auto", "explicit", "sdpa", "sdpa_bias")


@dataclass(frozen=True)
class BlockSpec:
    """Everything one MultiScaleBlock needs; all sizes are in tokens, shapes are (t, h, w)."""

    index: int
    stage: int  # 0-based stage index (output names come from strides: see MViTArch.stage_names)
    dim_in: int
    dim_out: int
    att_dim: int  # width of q/k/v and of the MLP input (dim_out if dim_mul_in_att else dim_in)
    num_heads: int
    kernel_q: Optional[Int3]  # None: q is not pooled
    stride_q: Int3
    kernel_kv: Optional[Int3]  # None: k/v are not pooled
    stride_kv: Int3
    input_size: Int3  # token grid entering the block (t, h, w) at the config's input size
    window_size: int  # 0 = global attention; else spatial window (tokens) before q pooling
    drop_path: float

    @property
    def head_dim(self) -> int:
        return self.att_dim // self.num_heads

    @property
    def output_size(self) -> Int3:
        return tuple(s // st for s, st in zip(self.input_size, self.stride_q))  # type: ignore

    @property
    def rel_pos_spatial_size(self) -> Tuple[int, int]:
        """Rows of ``rel_pos_h`` / ``rel_pos_w``: 2 * max(q_size, kv_size) - 1 (SlowFast rule)."""
        _, h, w = self.input_size
        rows = []
        for size, sq, skv in ((h, self.stride_q[1], self.stride_kv[1]),
                              (w, self.stride_q[2], self.stride_kv[2])):
            rows.append(2 * max(size // sq, size // skv) - 1)
        return rows[0], rows[1]

    @property
    def rel_pos_temporal_size(self) -> int:
        return 2 * self.input_size[0] - 1


@dataclass(frozen=True)
class AttentionOptions:
    """Model-wide flags of :class:`~.attention.MultiScaleAttention` (and of the block around it).

    Field semantics are those of PySlowFast's ``MVIT.*`` keys of the same name.
    """

    qkv_bias: bool = True
    pool_mode: str = "conv"  # conv (depthwise conv + LayerNorm) | max | avg
    has_cls: bool = True  # token 0 is a cls token: it bypasses pooling and the rel-pos bias
    rel_pos_spatial: bool = False  # decomposed rel-pos tables rel_pos_h / rel_pos_w
    rel_pos_temporal: bool = False  # rel_pos_t
    rel_pos_zero_init: bool = False  # else trunc-normal(0.02)
    residual_pooling: bool = False  # add the pooled q to the attention output
    residual_pooling_cls: bool = False  # ... to the cls row too (facebookresearch/mvit)
    norm_eps: float = 1e-6  # of the pooling LayerNorms (and the block's norms)
    backend: str = "auto"  # attention core: auto | explicit | sdpa | sdpa_bias (attention_ops)

    def __post_init__(self) -> None:
        if self.pool_mode not in POOL_MODES:
            raise ValueError(f"pool_mode must be one of {POOL_MODES}, got {self.pool_mode!r}")
        if self.backend not in ATTENTION_BACKENDS:
            raise ValueError(f"backend must be one of {ATTENTION_BACKENDS}, got {self.backend!r}")
