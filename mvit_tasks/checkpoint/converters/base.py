"""Checkpoint converter contract and source auto-detection.

A converter turns one source's state dict (SlowFast, mvit, torchvision, timm, pytorchvideo,
detectron2) into ours and back. Our layout (see ``mvit_tasks/modeling/backbone/mvit.py``):
``backbone.patch_embed.proj.weight`` (always 5-D), ``backbone.cls_token``,
``backbone.pos_embed[_spatial|_temporal|_class]``, ``backbone.blocks.N.{norm1,attn.qkv,attn.proj,
attn.pool_{q,k,v}.weight (5-D),attn.norm_{q,k,v},attn.rel_pos_{h,w,t},norm2,mlp.fc1,mlp.fc2,proj}``,
``backbone.scale{2..5}_norm``, ``head.projection``.

Converters are pure: ``state_dict -> state_dict``; geometry changes (rel-pos / pos-embed
resizing, image -> video inflation, head re-init) happen later against the target model in
:mod:`mvit_tasks.checkpoint.adapt`.
"""
from __future__ import annotations

from typing import Dict, Mapping

import torch

from ...registry import CONVERTER_REGISTRY

StateDict = Dict[str, torch.Tensor]


class CheckpointConverter:
    """Base class; subclasses set ``name`` and implement ``detect`` and ``to_native``.

    ``from_native`` (ours -> the source's layout) is optional; where present it makes the
    round trip testable and lets ``tools/convert_checkpoint.py --to`` export.
    """

    name: str = ""
    priority: int = 0  # higher is tried first by auto-detection

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        raise NotImplementedError

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        raise NotImplementedError

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        raise NotImplementedError(f"export to the '{self.name}' layout is not implemented")


def register_converter(cls: type) -> type:
    """Class decorator: register an instance of ``cls`` under ``cls.name``."""
    CONVERTER_REGISTRY.register(cls.name, cls())
    return cls


def get_converter(name: str) -> CheckpointConverter:
    from . import load_all  # noqa: F401  (registers the built-in converters)

    return CONVERTER_REGISTRY.get(name)


def detect_source(sd: Mapping[str, torch.Tensor]) -> str:
    """Name of the converter whose ``detect`` accepts ``sd`` (highest priority first)."""
    from . import load_all  # noqa: F401

    convs = sorted((c for _, c in CONVERTER_REGISTRY), key=lambda c: -c.priority)
    for conv in convs:
        if conv.detect(sd):
            return conv.name
    sample = ", ".join(list(sd)[:8])
    raise ValueError(
        "could not tell which codebase this checkpoint comes from; pass the source explicitly "
        f"(one of: {', '.join(CONVERTER_REGISTRY.names())}). First keys: {sample}"
    )



def to_5d(t: torch.Tensor) -> torch.Tensor:
    """A 2-D conv weight ``O x I x kh x kw`` as 3-D ``O x I x 1 x kh x kw`` (5-D stays)."""
    return t.unsqueeze(2) if t.ndim == 4 else t


def to_4d(t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_5d` for temporal kernel 1."""
    if t.ndim == 5:
        if t.shape[2] != 1:
            raise ValueError(f"cannot express a temporal kernel of {t.shape[2]} as a 2-D conv")
        return t[:, :, 0]
    return t



def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


@register_converter
class NativeConverter(CheckpointConverter):
    """Our own layout (``backbone.*`` / ``head.*``), as written by mvit-tasks."""

    name = "native"
    priority = 100

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return any(k.startswith("backbone.blocks.") for k in sd) and not any(
            k.startswith("backbone.bottom_up.") for k in sd
        )

    def to_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        return dict(sd)

    def from_native(self, sd: Mapping[str, torch.Tensor]) -> StateDict:
        return dict(sd)
