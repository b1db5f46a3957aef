"""The model pairs of the ``backbone`` mode: our registered variant vs a peer implementation.

Both sides are built for the benchmark's input (position tables sized for it) with the same
stochastic depth and head dropout; ``tiny`` gives 4-block, width-16 versions (torchvision and
timm pairs only; used by the tests).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

import torch


@dataclass(frozen=True)
class Pair:
    """One comparison: our registered variant vs a peer model, on video or images."""

    key: str
    ours: str  # registered variant
    lib: str  # "torchvision" | "timm" | "pytorchvideo"
    theirs: str  # the peer's model name
    source: str  # converter name for load_weights
    video: bool

    def label(self, impl: str) -> str:
        return f"ours:{self.ours}" if impl == "ours" else f"{self.lib}:{self.theirs}"


PAIRS: Dict[str, Pair] = {
    p.key: p
    for p in (
        Pair("torchvision_v2_s", "mvitv2_s_16x4", "torchvision", "mvit_v2_s", "torchvision", True),
        Pair("torchvision_v1_b", "mvit_b_16x4", "torchvision", "mvit_v1_b", "torchvision", True),
        Pair("timm_v2_t", "mvitv2_t", "timm", "mvitv2_tiny", "timm", False),
        Pair("pytorchvideo_b", "mvit_b_16x4", "pytorchvideo", "mvit_base_16x4", "pytorchvideo",
             True),
    )
}
DEFAULT_PAIRS = ["torchvision_v2_s", "torchvision_v1_b", "timm_v2_t"]


def input_shape(pair: Pair, args: argparse.Namespace) -> Tuple[int, ...]:
    """B x 3 x T x H x W for video pairs, B x 3 x H x W (``--image-size``) for image pairs."""
    if pair.video:
        return (args.batch, 3, args.frames, args.size, args.size)
    return (args.batch, 3, args.image_size or args.size, args.image_size or args.size)


def _ours_variant(pair: Pair):
    from mvit_tasks.modeling.backbone.variants import get_variant

    return get_variant(pair.ours)


def ours_arch(pair: Pair, shape: Sequence[int], tiny: bool = False):
    """Our architecture, position tables sized for ``shape``; ``tiny``: 4 blocks, width 16."""
    from mvit_tasks.modeling.backbone import families as F

    arch = _ours_variant(pair).arch
    if tiny:
        kw = dict(embed_dim=16, drop_path_rate=arch.drop_path_rate)
        if not pair.video:
            arch = F.mvitv2_image(depths=(1, 1, 1, 1), **kw)
        elif arch.rel_pos_spatial:
            arch = F.mvitv2_video(depths=(1, 1, 1, 1), num_frames=shape[2], **kw)
        else:
            arch = F.mvitv1_video(depths=(1, 1, 1, 1), num_frames=shape[2], **kw)
    if pair.video:
        return arch.replace(num_frames=shape[2], spatial_size=(shape[-2], shape[-1]))
    return arch.replace(spatial_size=(shape[-2], shape[-1]))


def _torchvision_from_arch(arch, num_classes: int, dropout: float) -> torch.nn.Module:
    """torchvision ``MViT`` with the blocks of ``arch`` (used for ``--tiny``)."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    blocks = [
        MSBlockConfig(num_heads=s.num_heads, input_channels=s.dim_in, output_channels=s.dim_out,
                      kernel_q=list(s.kernel_q or []), kernel_kv=list(s.kernel_kv or []),
                      stride_q=list(s.stride_q), stride_kv=list(s.stride_kv))
        for s in arch.block_specs()
    ]
    return MViT(spatial_size=tuple(arch.spatial_size), temporal_size=arch.num_frames,
                block_setting=blocks, residual_pool=arch.residual_pooling,
                residual_with_cls_embed=arch.residual_pooling_cls,
                rel_pos_embed=arch.rel_pos_spatial,
                proj_after_attn=arch.dim_mul_in_att, dropout=dropout,
                stochastic_depth_prob=arch.drop_path_rate, num_classes=num_classes)


def build_theirs(pair: Pair, shape: Sequence[int], tiny: bool = False) -> torch.nn.Module:
    """The peer model sized for ``shape``, with the same stochastic depth / dropout as ours."""
    v = _ours_variant(pair)
    dpr = v.arch.drop_path_rate
    if tiny and pair.lib == "torchvision":
        return _torchvision_from_arch(ours_arch(pair, shape, tiny), v.num_classes, v.head_dropout)
    if tiny and pair.lib == "timm":
        import timm.models.mvitv2 as tm

        cfg = tm.MultiScaleVitCfg(depths=(1, 1, 1, 1), embed_dim=16, num_heads=1)
        return tm.MultiScaleVit(cfg, img_size=(shape[-2], shape[-1]), num_classes=v.num_classes,
                                drop_path_rate=dpr, drop_rate=v.head_dropout)
    if tiny:
        raise SystemExit(f"--tiny is not available for the {pair.lib} pair")
    if pair.lib == "torchvision":
        import torchvision.models.video.mvit as tvm

        build = tvm._mvit

        def sized(*a: Any, **kw: Any) -> torch.nn.Module:  # mvit_v2_s hard-codes 16 x 224^2
            kw.update(spatial_size=(shape[-2], shape[-1]), temporal_size=shape[2])
            return build(*a, **kw)

        tvm._mvit = sized
        try:
            return getattr(tvm, pair.theirs)(num_classes=v.num_classes, stochastic_depth_prob=dpr)
        finally:
            tvm._mvit = build
    if pair.lib == "timm":
        import timm

        return timm.create_model(pair.theirs, pretrained=False, img_size=(shape[-2], shape[-1]),
                                 num_classes=v.num_classes, drop_path_rate=dpr,
                                 drop_rate=v.head_dropout)
    if pair.lib == "pytorchvideo":
        from pytorchvideo.models import hub

        return getattr(hub, pair.theirs)(pretrained=False, spatial_size=shape[-1],
                                         temporal_size=shape[2], head_num_classes=v.num_classes,
                                         droppath_rate_block=dpr, head_dropout_rate=v.head_dropout)
    raise ValueError(f"unknown library {pair.lib!r}")


def build_ours(pair: Pair, shape: Sequence[int], tiny: bool = False) -> torch.nn.Module:
    """Our ``Classifier`` for ``pair.ours``, sized for ``shape``."""
    from mvit_tasks.modeling.meta_arch.classifier import Classifier

    v = _ours_variant(pair)
    return Classifier.from_arch(ours_arch(pair, shape, tiny), v.num_classes, dropout=v.head_dropout)
