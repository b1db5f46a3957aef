"""Architecture settings of the MViT family and their expansion into per-block specs.

One dataclass, :class:`MViTArch`, describes every official MViT / MViTv2 model. Its fields use
the semantics of PySlowFast's ``MVIT.*`` config keys (Fan et al., ICCV 2021; Li et al., CVPR
2022) so official configs translate one-to-one; detectron2's hybrid window attention
(``window_size`` + ``global_blocks``) is an extra.

``MViTArch.block_specs()`` turns the settings into one :class:`BlockSpec` per transformer block
(dims, heads, pooling kernels/strides, token grid, window, stage). The backbone module, the
FLOP counter and the checkpoint converters all read these specs, so there is a single place
where the SlowFast rules (``round_width``, adaptive kv stride, kernels derived from strides,
dim change in attention vs. in the previous block's MLP) are implemented.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..layers.spec import BlockSpec  # defined with the layers; re-exported here

Int3 = Tuple[int, int, int]


def stage_name(spatial_stride: int) -> str:
    """``scale{k}`` for a stride of ``2**k`` (detectron2's naming); ``stride{s}`` otherwise."""
    k = int(round(math.log2(spatial_stride))) if spatial_stride > 0 else -1
    return f"scale{k}" if k >= 0 and 2**k == spatial_stride else f"stride{spatial_stride}"


def round_width(width: float, multiplier: float, min_width: int = 1, divisor: int = 1) -> int:
    """Scale ``width`` by ``multiplier`` and round to a multiple of ``divisor`` (SlowFast rule)."""
    if not multiplier:
        return int(width)
    width *= multiplier
    min_width = min_width or divisor
    width_out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if width_out < 0.9 * width:
        width_out += divisor
    return int(width_out)


def _to3(v: Sequence[int], video: bool, what: str, fill: int = 1) -> Int3:
    """Normalise a kernel/stride (``fill=1``) or padding (``fill=0``) to (t, h, w); image models
    may give (h, w)."""
    v = tuple(int(x) for x in v)
    if len(v) == 3:
        return v  # type: ignore[return-value]
    if len(v) == 2:
        return (fill,) + v  # type: ignore[return-value]
    if len(v) == 1:
        return (1, v[0], v[0]) if not video else (v[0], v[0], v[0])
    raise ValueError(f"{what} must have 2 (h, w) or 3 (t, h, w) entries, got {v}")


@dataclass
class MViTArch:
    """Architecture of one MViT / MViTv2 backbone (plain keyword arguments, no global config).

    Block-indexed lists use SlowFast's format: ``dim_mul=[[1, 2.0], [3, 2.0]]`` doubles the width
    at block 1 and 3; ``pool_q_stride=[[i, st, sh, sw], ...]`` gives q pooling strides per block
    (image models may write ``[i, sh, sw]``).
    """

    video: bool = True  # False: 2-D image model, input B x C x H x W
    spatial_size: Tuple[int, int] = (224, 224)  # input size the position tables are built for
    num_frames: int = 16  # input frames (1 for image models)
    in_chans: int = 3
    patch_kernel: Sequence[int] = (3, 7, 7)
    patch_stride: Sequence[int] = (2, 4, 4)
    patch_padding: Sequence[int] = (1, 3, 3)
    embed_dim: int = 96
    num_heads: int = 1
    depth: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    dim_mul: Sequence[Sequence[float]] = ((1, 2.0), (3, 2.0), (14, 2.0))
    head_mul: Sequence[Sequence[float]] = ((1, 2.0), (3, 2.0), (14, 2.0))
    pool_q_stride: Sequence[Sequence[int]] = ((1, 1, 2, 2), (3, 1, 2, 2), (14, 1, 2, 2))
    pool_kv_stride: Optional[Sequence[Sequence[int]]] = None
    pool_kv_stride_adaptive: Optional[Sequence[int]] = (1, 8, 8)
    pool_kvq_kernel: Optional[Sequence[int]] = (3, 3, 3)
    pool_mode: str = "conv"  # conv | max | avg
    cls_embed: bool = True
    use_abs_pos: bool = False
    sep_pos_embed: bool = False  # v1: separate spatial / temporal / class tables
    rel_pos_spatial: bool = True
    rel_pos_temporal: bool = True
    rel_pos_zero_init: bool = False
    residual_pooling: bool = True
    residual_pooling_cls: bool = False  # add pooled q to the cls row too (facebookresearch/mvit)
    dim_mul_in_att: bool = True  # v2: width changes inside attention; v1: in previous MLP
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-6
    # detectron2-style hybrid window attention: window (tokens) of the first stage, halved at
    # every q-stride; blocks in ``global_blocks`` attend globally. 0 disables windows.
    window_size: int = 0
    global_blocks: Sequence[int] = ()
    out_features: Optional[Sequence[str]] = None  # None: every stage ("scale2".."scale5")
    act_checkpoint: bool = False

    def __post_init__(self) -> None:
        # An empty sequence means the same as None for the optional fields (YAML-friendly:
        # configs write [] where "absent / derive from strides" is meant, as null = "not set").
        for name in _OPTIONAL_SEQ_FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) == 0:
                setattr(self, name, None)
        if self.pool_mode not in ("conv", "max", "avg"):
            raise ValueError(
                f"pool_mode must be 'conv', 'max' or 'avg', got {self.pool_mode!r} "
                "('conv_unshared' and POOL_FIRST are not supported)"
            )
        if not self.video:
            if self.num_frames != 1:
                raise ValueError("image models (video=False) take num_frames=1")
            if self.rel_pos_temporal:
                raise ValueError("image models have no temporal axis: set rel_pos_temporal=False")
        self.spatial_size = tuple(int(s) for s in self.spatial_size)  # type: ignore[assignment]
        if self.window_size and self.cls_embed:
            raise ValueError("window attention (window_size > 0) needs cls_embed=False")

    # ------------------------------------------------------------------ derived geometry
    @property
    def patch_kernel3(self) -> Int3:
        return _to3(self.patch_kernel, self.video, "patch_kernel")

    @property
    def patch_stride3(self) -> Int3:
        return _to3(self.patch_stride, self.video, "patch_stride")

    @property
    def patch_padding3(self) -> Int3:
        return _to3(self.patch_padding, self.video, "patch_padding", fill=0)

    @property
    def patch_grid(self) -> Int3:
        """Token grid (t, h, w) after the patch embedding at the configured input size."""
        k, s, p = self.patch_kernel3, self.patch_stride3, self.patch_padding3
        sizes = (self.num_frames,) + tuple(self.spatial_size)
        return tuple((n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip(sizes, k, s, p))  # type: ignore

    def block_specs(self) -> List[BlockSpec]:
        """Expand the settings into one spec per block (SlowFast ``MViT.__init__`` rules)."""
        depth = self.depth
        dim_mul = [1.0] * (depth + 1)
        head_mul = [1.0] * (depth + 1)
        for idx, mul in self.dim_mul:
            dim_mul[int(idx)] = float(mul)
        for idx, mul in self.head_mul:
            head_mul[int(idx)] = float(mul)

        stride_q: List[Optional[Int3]] = [None] * depth
        kernel_q: List[Optional[Int3]] = [None] * depth
        for entry in self.pool_q_stride:
            i, s = int(entry[0]), _to3(entry[1:], self.video, "pool_q_stride")
            stride_q[i] = s
            kernel_q[i] = self._kernel_for(s)

        kv_list: List[Sequence[int]] = []
        if self.pool_kv_stride_adaptive is not None:
            cur = list(_to3(self.pool_kv_stride_adaptive, self.video, "pool_kv_stride_adaptive"))
            for i in range(depth):
                if stride_q[i] is not None:
                    cur = [max(c // s, 1) for c, s in zip(cur, stride_q[i])]  # type: ignore
                kv_list.append([i] + cur)
        if self.pool_kv_stride is not None:
            kv_list = list(kv_list) + [list(e) for e in self.pool_kv_stride]  # explicit wins
        stride_kv: List[Optional[Int3]] = [None] * depth
        kernel_kv: List[Optional[Int3]] = [None] * depth
        for entry in kv_list:
            i, s = int(entry[0]), _to3(entry[1:], self.video, "pool_kv_stride")
            stride_kv[i] = s
            kernel_kv[i] = self._kernel_for(s)

        dpr = [self.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        specs: List[BlockSpec] = []
        embed_dim, num_heads = self.embed_dim, self.num_heads
        size = self.patch_grid
        window = self.window_size
        stage = 0
        for i in range(depth):
            num_heads = round_width(num_heads, head_mul[i])
            if self.dim_mul_in_att:
                dim_out = round_width(embed_dim, dim_mul[i], divisor=round_width(num_heads, head_mul[i]))
            else:
                dim_out = round_width(
                    embed_dim, dim_mul[i + 1], divisor=round_width(num_heads, head_mul[i + 1])
                )
            sq = stride_q[i] or (1, 1, 1)
            if i > 0 and math.prod(sq) > 1:
                stage += 1
            kq = self._effective_kernel(kernel_q[i], sq)
            skv = stride_kv[i] or (1, 1, 1)
            kkv = self._effective_kernel(kernel_kv[i], skv)
            win = 0 if (not self.window_size or i in self.global_blocks) else window
            specs.append(
                BlockSpec(
                    index=i,
                    stage=stage,
                    dim_in=embed_dim,
                    dim_out=dim_out,
                    att_dim=dim_out if self.dim_mul_in_att else embed_dim,
                    num_heads=num_heads,
                    kernel_q=kq,
                    stride_q=sq,
                    kernel_kv=kkv,
                    stride_kv=skv,
                    input_size=size,
                    window_size=win,
                    drop_path=dpr[i],
                )
            )
            size = tuple(s // st for s, st in zip(size, sq))  # type: ignore[assignment]
            if self.window_size and sq[1] > 1:
                window = window // sq[1]
            embed_dim = dim_out
        return specs

    def _kernel_for(self, stride: Int3) -> Int3:
        if self.pool_kvq_kernel is not None:
            return _to3(self.pool_kvq_kernel, self.video, "pool_kvq_kernel")
        return tuple(s + 1 if s > 1 else s for s in stride)  # type: ignore[return-value]

    @staticmethod
    def _effective_kernel(kernel: Optional[Int3], stride: Int3) -> Optional[Int3]:
        """SlowFast skips pooling when kernel and stride are both all ones."""
        if kernel is None:
            return None
        if math.prod(kernel) == 1 and math.prod(stride) == 1:
            return None
        return kernel

    def stage_strides(self) -> List[Tuple[int, int]]:
        """(spatial, temporal) stride of every stage's output w.r.t. the input."""
        out: List[Tuple[int, int]] = []
        st_s, st_t = self.patch_stride3[1], self.patch_stride3[0]
        specs = self.block_specs()
        for s in specs:
            st_t *= s.stride_q[0]
            st_s *= s.stride_q[1]
            if s.index == len(specs) - 1 or specs[s.index + 1].stage != s.stage:
                out.append((st_s, st_t))
        return out

    def stage_names(self) -> List[str]:
        """Output names, detectron2 style: ``scale{log2(stride)}`` (``scale2`` = stride 4 ..
        ``scale5`` = stride 32 for every official MViT)."""
        return [stage_name(s) for s, _ in self.stage_strides()]

    def stage_ends(self) -> List[int]:
        """Index of the last block of every stage."""
        specs = self.block_specs()
        ends = [s.index - 1 for s in specs[1:] if s.stage != specs[s.index - 1].stage]
        return ends + [specs[-1].index]

    def stage_depths(self) -> List[int]:
        """Blocks per stage, timm's ``depths`` (``[1, 2, 11, 2]`` for MViTv2-S); the inverse
        of :mod:`.families`."""
        ends = self.stage_ends()
        return [end - start for start, end in zip([-1] + ends[:-1], ends)]

    def shallow(self, blocks_per_stage: int = 2) -> "MViTArch":
        """The same architecture with at most ``blocks_per_stage`` blocks per stage.

        Keeps the first ``n - 1`` blocks and the last block of every stage, so stage starts (q
        stride, width change), MViTv1's MLP width change in a stage's last block and
        detectron2's global blocks (last of a stage) survive (``n = 1`` keeps stage starts only). Widths, heads, strides, windows
        and all flags are unchanged: cheap full-width models for tests and smoke runs.
        """
        n = max(1, int(blocks_per_stage))
        stages: Dict[int, List[int]] = {}
        for s in self.block_specs():
            stages.setdefault(s.stage, []).append(s.index)
        kept: List[int] = []
        for idxs in stages.values():
            if len(idxs) <= n:
                kept += idxs
            else:
                kept += idxs[:1] if n == 1 else idxs[: n - 1] + [idxs[-1]]
        new = {old: i for i, old in enumerate(kept)}

        def remap(entries: Optional[Sequence[Sequence[Any]]]) -> Optional[List[List[Any]]]:
            if entries is None:
                return None
            return [[new[int(e[0])], *e[1:]] for e in entries if int(e[0]) in new]

        return self.replace(
            depth=len(kept),
            dim_mul=remap(self.dim_mul),
            head_mul=remap(self.head_mul),
            pool_q_stride=remap(self.pool_q_stride),
            pool_kv_stride=remap(self.pool_kv_stride),
            global_blocks=tuple(new[g] for g in self.global_blocks if g in new),
        )

    def replace(self, **changes: Any) -> "MViTArch":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Plain (YAML-friendly) dict: tuples become lists."""

        def plain(v: Any) -> Any:
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "MViTArch":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise KeyError(f"Unknown MViT architecture keys: {unknown}; known: {sorted(names)}")
        kw = {k: (tuple(v) if isinstance(v, list) and k in _TUPLE_FIELDS else v) for k, v in d.items()}
        return cls(**kw)


_OPTIONAL_SEQ_FIELDS = ("pool_kv_stride", "pool_kv_stride_adaptive", "pool_kvq_kernel", "out_features")
_TUPLE_FIELDS = {"spatial_size", "patch_kernel", "patch_stride", "patch_padding", "pool_kvq_kernel",
                 "pool_kv_stride_adaptive", "global_blocks"}
