"""The MViT / MViTv2 backbone: one implementation for every official variant.

Papers: Fan et al., "Multiscale Vision Transformers", ICCV 2021; Li et al., "MViTv2: Improved
Multiscale Vision Transformers for Classification and Detection", CVPR 2022. Semantics follow
PySlowFast (video), facebookresearch/mvit (images) and detectron2 (hybrid window attention,
multi-scale ``scale2..scale5`` outputs with a LayerNorm each). Parameter names follow SlowFast
(``patch_embed.proj``, ``cls_token``, ``pos_embed*``, ``blocks.N.*``); the per-stage output norms
are named like detectron2's (``scale5_norm``); SlowFast's final ``norm`` is ``scale5_norm``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.utils.checkpoint as cp
from torch import nn

from .arch import MViTArch, stage_name
from .base import Backbone, FeatureSpec
from ..layers.block import MultiScaleBlock
from ..layers.patch_embed import PatchEmbed
from ..layers.pos_embed import resize_abs_pos
from ..layers.spec import AttentionOptions


def attention_options(arch: MViTArch) -> AttentionOptions:
    """The attention flags of ``arch`` (the same for every block)."""
    return AttentionOptions(
        qkv_bias=arch.qkv_bias,
        pool_mode=arch.pool_mode,
        has_cls=arch.cls_embed,
        rel_pos_spatial=arch.rel_pos_spatial,
        rel_pos_temporal=arch.rel_pos_temporal,
        rel_pos_zero_init=arch.rel_pos_zero_init,
        residual_pooling=arch.residual_pooling,
        residual_pooling_cls=arch.residual_pooling_cls,
        norm_eps=arch.norm_eps,
    )


class MViT(Backbone):
    """Multiscale Vision Transformer backbone (head-less).

    Args:
        arch: architecture settings; keyword arguments build an :class:`MViTArch` instead.

    ``forward(x)``: ``x`` is ``B x C x T x H x W`` (video) or ``B x C x H x W`` (image models).
    Returns a dict with one entry per ``arch.out_features`` stage, ``B x C_s x T_s x H_s x W_s``
    (``B x C_s x H_s x W_s`` for images), each after its own LayerNorm; models with a cls token
    also return ``"cls"`` (``B x C``), the normalised cls token after the last stage (present only
    if the last stage is an output).
    """

    def __init__(self, arch: Optional[MViTArch] = None, **kwargs: Any) -> None:
        super().__init__()
        if arch is None:
            arch = MViTArch(**kwargs)
        elif kwargs:
            arch = arch.replace(**kwargs)
        self.arch = arch
        specs = arch.block_specs()
        self.specs = specs
        self.video = arch.video
        self.cls_embed = arch.cls_embed

        self.patch_embed = PatchEmbed(
            arch.in_chans, arch.embed_dim, arch.patch_kernel3, arch.patch_stride3, arch.patch_padding3
        )
        self.patch_grid = arch.patch_grid
        t, h, w = self.patch_grid
        dim = arch.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if arch.cls_embed else None
        self.pos_embed = self.pos_embed_spatial = None
        self.pos_embed_temporal = self.pos_embed_class = None
        if arch.use_abs_pos:
            if arch.sep_pos_embed:
                self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
                self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
                if arch.cls_embed:
                    self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
            else:
                n = t * h * w + (1 if arch.cls_embed else 0)
                self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))

        options = attention_options(arch)
        self.blocks = nn.ModuleList(
            MultiScaleBlock(s, options, mlp_ratio=arch.mlp_ratio,
                            dim_mul_in_att=arch.dim_mul_in_att)
            for s in specs
        )

        # stage geometry -> output specs (names from strides, detectron2 style)
        self._stage_ends: Dict[int, str] = {}
        self._all_shapes: Dict[str, FeatureSpec] = {}
        ends = [s.index for s in specs if s.index == len(specs) - 1 or specs[s.index + 1].stage != s.stage]
        for end, (stride_s, stride_t) in zip(ends, arch.stage_strides()):
            name = stage_name(stride_s)
            self._stage_ends[end] = name
            self._all_shapes[name] = FeatureSpec(specs[end].dim_out, stride_s, stride_t)
        names = list(self._all_shapes)
        out = list(arch.out_features) if arch.out_features is not None else names
        unknown = [n for n in out if n not in self._all_shapes]
        if unknown:
            raise ValueError(f"out_features {unknown} not among this model's stages {names}")
        self._out_features = [n for n in names if n in out]
        for name in self._out_features:
            self.add_module(f"{name}_norm", nn.LayerNorm(self._all_shapes[name].channels, eps=arch.norm_eps))
        self.last_stage = names[-1]
        self.act_checkpoint = arch.act_checkpoint
        self._init_weights()

    # ------------------------------------------------------------------------------- set-up
    def _init_weights(self) -> None:
        """SlowFast init: trunc-normal(0.02) linears / tokens / pos tables, unit LayerNorms."""
        for p in (self.cls_token, self.pos_embed, self.pos_embed_spatial, self.pos_embed_temporal,
                  self.pos_embed_class):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def output_shape(self) -> Dict[str, FeatureSpec]:
        return {n: self._all_shapes[n] for n in self._out_features}

    @property
    def out_features(self) -> List[str]:
        return list(self._out_features)

    @property
    def size_divisibility(self) -> int:
        return self._all_shapes[self.last_stage].stride

    def no_weight_decay(self) -> List[str]:
        """Parameter names usually excluded from weight decay (tokens and position tables)."""
        return [n for n, _ in self.named_parameters()
                if n in ("cls_token", "pos_embed", "pos_embed_spatial", "pos_embed_temporal",
                         "pos_embed_class") or "rel_pos" in n]

    # ------------------------------------------------------------------------------ forward
    def _abs_pos(self, thw: Tuple[int, int, int]) -> torch.Tensor:
        """``1 x N x C`` absolute position table for grid ``thw``, resized if needed by
        :func:`~mvit_tasks.modeling.layers.pos_embed.resize_abs_pos` (2-D: bicubic as
        detectron2's ``get_abs_pos``; video: trilinear as SlowFast); the cls row is kept as is."""
        t0, h0, w0 = self.patch_grid
        if self.pos_embed is not None:
            table = self.pos_embed
            cls_pos = table[:, :1] if self.cls_embed else None
            grid = table[:, 1:] if self.cls_embed else table
        else:
            grid = self.pos_embed_spatial.repeat(1, t0, 1) + torch.repeat_interleave(
                self.pos_embed_temporal, h0 * w0, dim=1
            )
            cls_pos = self.pos_embed_class
        grid = resize_abs_pos(grid, (t0, h0, w0), thw)
        return grid if cls_pos is None else torch.cat((cls_pos, grid), dim=1)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        image = x.ndim == 4
        if image:
            x = x.unsqueeze(2)
        elif x.ndim != 5:
            raise ValueError(f"MViT expects B x C x T x H x W or B x C x H x W input, got {tuple(x.shape)}")
        x, thw = self.patch_embed(x)
        b = x.shape[0]
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        if self.arch.use_abs_pos:
            x = x + self._abs_pos(thw)

        outputs: Dict[str, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            if self.act_checkpoint and self.training and torch.is_grad_enabled():
                x, thw = cp.checkpoint(blk, x, thw, use_reentrant=False)
            else:
                x, thw = blk(x, thw)
            name = self._stage_ends.get(i)
            if name is not None and name in self._out_features:
                y = getattr(self, f"{name}_norm")(x)
                if self.cls_embed:
                    if name == self.last_stage:
                        outputs["cls"] = y[:, 0]
                    y = y[:, 1:]
                y = y.transpose(1, 2).reshape(b, -1, *thw)
                outputs[name] = y.squeeze(2) if image else y
        return outputs
