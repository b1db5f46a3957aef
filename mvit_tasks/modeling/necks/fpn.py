"""Feature Pyramid Network neck: named multi-scale maps -> ``p2..p6`` (256 channels).

Paper: Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017. Semantics follow
detectron2's ``modeling/backbone/fpn.py`` as used by its MViTv2 configs (1x1 lateral + 3x3 output
convs, nearest 2x top-down, sum fusion, ``p6`` = stride-2 subsampling of ``p5``, outputs named
``p{log2(stride)}``). The layers are torchvision's :class:`~torchvision.ops.FeaturePyramidNetwork`
and :class:`~torchvision.ops.feature_pyramid_network.LastLevelMaxPool` (assembled, not
re-implemented); :meth:`FPN.detectron2_names` maps their parameter names to detectron2's
``fpn_lateral{k}`` / ``fpn_output{k}``.

Padding constraint (``size_divisibility``): input H and W must be multiples of the largest input
stride (32 for MViTv2). The backbone itself runs at any size: its patch embedding and pooling
convolutions round up (a 100-px side gives 25/13/7/4 tokens at strides 4/8/16/32), and its hybrid
window attention zero-pads each token grid to whole windows internally exactly as detectron2 does
(the q and kv windows are the stage window divided by their strides, so both grids always split
into the same number of windows). But only at multiples of the largest stride is every map exactly
``H / stride`` big, which the 2x top-down path, the anchor grid and RoIAlign's ``1 / stride``
scales assume. detectron2 uses the same value (``FPN.size_divisibility = strides[-1]``).
``p6`` (stride 64) needs no extra constraint: it subsamples ``p5`` (``ceil(H / 64)`` rows).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..backbone.base import Backbone, FeatureSpec

NORMS = ("", "LN", "BN", "SyncBN", "GN")


def get_norm_layer(norm: str) -> Optional[Callable[[int], nn.Module]]:
    """``channels -> module`` for a detectron2 norm name on ``B x C x H x W`` maps.

    ``""``: none (convs keep their bias); ``"LN"``: LayerNorm over channels (eps 1e-6, detectron2's
    ``LayerNorm`` used by ViTDet-style recipes); ``"BN"`` / ``"SyncBN"``: batch norm; ``"GN"``:
    GroupNorm with 32 groups.
    """
    if norm == "":
        return None
    if norm == "LN":
        return partial(LayerNorm2d, eps=1e-6)
    if norm == "BN":
        return nn.BatchNorm2d
    if norm == "SyncBN":
        return nn.SyncBatchNorm
    if norm == "GN":
        return partial(nn.GroupNorm, 32)
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def _level(stride: int, what: str) -> int:
    k = int(round(math.log2(stride))) if stride > 0 else -1
    if k < 0 or 2**k != stride:
        raise ValueError(f"FPN: {what} has stride {stride}, which is not a power of two")
    return k


class FPN(FeaturePyramidNetwork):
    """FPN over the named 2-D maps of a backbone, sized from its ``output_shape()``.

    Args:
        input_shapes: the backbone's ``output_shape()``.
        in_features: the maps to use, finest first; their strides must be increasing powers of
            two (each map becomes ``p{log2(stride)}``).
        out_channels: channels of every pyramid level.
        top_block: ``"maxpool"`` adds ``p{k+1}`` = ``p{k}[..., ::2, ::2]`` (detectron2's
            ``LastLevelMaxPool``); ``""`` / ``None`` adds nothing.
        norm: norm after the lateral and output convs (see :func:`get_norm_layer`).

    ``forward(features)``: ``features[name]`` is ``B x C_name x H/s x W/s``; returns an
    ``OrderedDict`` ``{"p2": B x out x H/4 x W/4, ..., "p6": B x out x H/64 x W/64}``.
    """

    def __init__(
        self,
        input_shapes: Dict[str, FeatureSpec],
        in_features: Sequence[str] = ("scale2", "scale3", "scale4", "scale5"),
        out_channels: int = 256,
        top_block: Optional[str] = "maxpool",
        norm: str = "",
    ) -> None:
        in_features = list(in_features)
        if not in_features:
            raise ValueError("FPN: in_features is empty")
        unknown = [f for f in in_features if f not in input_shapes]
        if unknown:
            raise ValueError(
                f"FPN: in_features {unknown} are not among the backbone outputs "
                f"{sorted(input_shapes)}"
            )
        specs = [input_shapes[f] for f in in_features]
        video = [f for f, s in zip(in_features, specs) if s.temporal_stride != 1]
        if video:
            raise ValueError(
                f"FPN: features {video} have a temporal stride; this FPN handles 2-D image "
                "backbones only (video feature pyramids are out of scope)"
            )
        levels = [_level(s.stride, f) for f, s in zip(in_features, specs)]
        if any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(
                f"FPN: in_features must go from fine to coarse, got strides "
                f"{[s.stride for s in specs]} for {in_features}"
            )
        if top_block not in ("maxpool", "", None):
            raise ValueError(f"FPN: top_block must be 'maxpool' or '' (none), got {top_block!r}")
        super().__init__(
            [s.channels for s in specs],
            out_channels,
            extra_blocks=LastLevelMaxPool() if top_block == "maxpool" else None,
            norm_layer=get_norm_layer(norm),
        )
        self.in_features = in_features
        self.out_channels = out_channels
        self.norm = norm
        self._in_levels = levels
        out_levels = levels + ([levels[-1] + 1] if top_block == "maxpool" else [])
        self._out_shapes = OrderedDict(
            (f"p{k}", FeatureSpec(out_channels, 2**k, 1)) for k in out_levels
        )

    def output_shape(self) -> Dict[str, FeatureSpec]:
        """``{"p2": FeatureSpec(out_channels, 4), ..., "p6": FeatureSpec(out_channels, 64)}``."""
        return dict(self._out_shapes)

    @property
    def lateral_levels(self) -> List[str]:
        """Levels built from backbone maps (``p2..p5``), i.e. without the top block's ``p6``."""
        return [f"p{k}" for k in self._in_levels]

    @property
    def size_divisibility(self) -> int:
        """Input H/W must be a multiple of this: the largest input stride (see module doc)."""
        return 2 ** self._in_levels[-1]

    def forward(  # type: ignore[override]
        self, features: Dict[str, torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        x = OrderedDict()
        for name in self.in_features:
            if name not in features:
                raise KeyError(f"FPN: the backbone output has no '{name}' (got {sorted(features)})")
            t = features[name]
            if t.ndim != 4:
                raise ValueError(
                    f"FPN: feature '{name}' has shape {tuple(t.shape)}; expected B x C x H x W "
                    "(2-D image maps; video feature pyramids are out of scope)"
                )
            x[name] = t
        out = super().forward(x)
        return OrderedDict(zip(self._out_shapes, out.values()))

    def detectron2_names(self) -> Dict[str, str]:
        """Our parameter/buffer names -> detectron2's (relative to the FPN module).

        ``inner_blocks.{i}.0.weight`` -> ``fpn_lateral{k}.weight``, ``layer_blocks.{i}.1.bias``
        -> ``fpn_output{k}.norm.bias`` etc., with ``k = log2(stride)`` of input ``i``.
        """
        names: Dict[str, str] = {}
        for ours, theirs in (("inner_blocks", "fpn_lateral"), ("layer_blocks", "fpn_output")):
            for i, k in enumerate(self._in_levels):
                block = getattr(self, ours)[i]
                for key in block.state_dict():
                    sub, _, param = key.partition(".")
                    d2 = f"{theirs}{k}.{param}" if sub == "0" else f"{theirs}{k}.norm.{param}"
                    names[f"{ours}.{i}.{key}"] = d2
        return names


class FPNBackbone(nn.Module):
    """Backbone + FPN as one module: what torchvision's detectors expect as ``backbone``.

    Attributes:
        bottom_up: the backbone (state-dict prefix ``bottom_up.``, as in detectron2).
        fpn: the :class:`FPN`.
        out_channels: channels of every pyramid level (torchvision's contract).

    ``forward(x)``: ``x`` is ``B x 3 x H x W`` with H, W multiples of :attr:`size_divisibility`;
    returns the FPN's ``OrderedDict`` ``p2..p6``.
    """

    def __init__(self, bottom_up: Backbone, fpn: FPN) -> None:
        super().__init__()
        self.bottom_up = bottom_up
        self.fpn = fpn
        self.out_channels = fpn.out_channels

    @classmethod
    def build(cls, bottom_up: Backbone, **fpn_kwargs) -> "FPNBackbone":
        """``FPNBackbone(bottom_up, FPN(bottom_up.output_shape(), **fpn_kwargs))``."""
        return cls(bottom_up, FPN(bottom_up.output_shape(), **fpn_kwargs))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if x.ndim != 4:
            raise ValueError(f"FPNBackbone expects B x 3 x H x W images, got {tuple(x.shape)}")
        return self.fpn(self.bottom_up(x))

    def output_shape(self) -> Dict[str, FeatureSpec]:
        return self.fpn.output_shape()

    @property
    def size_divisibility(self) -> int:
        """Least common multiple of the FPN's and the backbone's constraints."""
        inner = int(getattr(self.bottom_up, "size_divisibility", 0) or 1)
        return math.lcm(self.fpn.size_divisibility, inner)

    # read by mvit_tasks.checkpoint.loader.load_weights to fit position tables
    @property
    def patch_grid(self) -> tuple:
        return tuple(getattr(self.bottom_up, "patch_grid", (1, 1, 1)))

    @property
    def cls_embed(self) -> bool:
        return bool(getattr(self.bottom_up, "cls_embed", False))

    def detectron2_names(self) -> Dict[str, str]:
        """FPN parameter names (``fpn.*``) -> detectron2's (``fpn_lateral2.weight`` ...)."""
        return {f"fpn.{k}": v for k, v in self.fpn.detectron2_names().items()}


__all__: List[str] = ["FPN", "FPNBackbone", "get_norm_layer", "NORMS"]
