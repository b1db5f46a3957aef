"""Optimizer construction: parameter groups (weight decay, layer-wise lr decay) and the optimizer.

Semantics follow PySlowFast ``slowfast/models/optimizer.py`` (``construct_optimizer`` /
``get_param_groups``; config keys ``SOLVER.OPTIMIZING_METHOD``, ``SOLVER.WEIGHT_DECAY``,
``SOLVER.ZERO_WD_1D_PARAM``, ``SOLVER.LAYER_DECAY``, ``BN.WEIGHT_DECAY``) with two deliberate
differences:

* names returned by ``no_weight_decay()`` are matched against the parameter names *of the
  module that defines the method* (its prefix, e.g. ``backbone.``, is stripped first), as an
  exact name, a glob pattern (``blocks.*.attn.rel_pos_*``) or a bare leaf name (``rel_pos_h``).
  SlowFast compares the bare names with full names, so its ``rel_pos_*`` tables silently kept
  their weight decay; here every module in the tree may define the method (e.g. the MViT
  backbone nested as ``model.backbone``), and timm's ``no_weight_decay_keywords()``
  (substrings) is honoured too.
* each group carries ``lr_scale`` (layer decay x ``lr_mult``; timm's convention, SlowFast calls
  it ``layer_decay``) and ``param_names`` (torch's own key for named parameter groups).
  :class:`mvit_tasks.engine.lr_scheduler.LRScheduler` sets ``lr = schedule * lr_scale``.
"""
from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

ParamGroup = Dict[str, Any]

_GLOB_CHARS = re.compile(r"[*?\[]")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user module inside DDP / DataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule
        else:
            return model


def _matches(rel_name: str, entry: str) -> bool:
    """``entry`` from ``no_weight_decay()``: exact name, glob pattern or bare leaf name."""
    if rel_name == entry:
        return True
    if _GLOB_CHARS.search(entry):
        return fnmatch.fnmatchcase(rel_name, entry)
    return "." not in entry and rel_name.rsplit(".", 1)[-1] == entry


def no_weight_decay_names(model: nn.Module) -> List[str]:
    """Full names of the parameters that modules in ``model`` exclude from weight decay.

    Every sub-module defining ``no_weight_decay()`` (exact names / globs / bare leaf names of
    its own parameters) or ``no_weight_decay_keywords()`` (substrings) contributes.
    """
    model = unwrap_model(model)
    names = [n for n, _ in model.named_parameters()]
    out = set()
    for prefix, module in model.named_modules():
        fn_names = getattr(module, "no_weight_decay", None)
        fn_keys = getattr(module, "no_weight_decay_keywords", None)
        if not (callable(fn_names) or callable(fn_keys)):
            continue
        pre = prefix + "." if prefix else ""
        own = [n[len(pre):] for n in names if n.startswith(pre)]
        if callable(fn_names):
            for entry in fn_names():
                out.update(pre + n for n in own if _matches(n, str(entry)))
        if callable(fn_keys):
            for key in fn_keys():
                out.update(pre + n for n in own if str(key) in n)
    return [n for n in names if n in out]


def mvit_layer_id(name: str, num_layers: int) -> int:
    """SlowFast's layer index for layer-wise lr decay of a ViT/MViT parameter.

    0 for ``cls_token`` / ``mask_token`` / ``pos_embed*`` / ``patch_embed.*``; ``i + 1`` for
    ``blocks.i.*``; ``num_layers + 1`` for everything else (final norms, neck, head). Any
    prefix (``backbone.``) is ignored: the first ``blocks.<int>`` component decides.
    """
    parts = name.split(".")
    for i, p in enumerate(parts[:-1]):
        if p == "blocks" and parts[i + 1].isdigit():
            return int(parts[i + 1]) + 1
    if any(p in ("cls_token", "mask_token") or p.startswith("pos_embed") for p in parts):
        return 0
    if "patch_embed" in parts:
        return 0
    return num_layers + 1


def _count_blocks(model: nn.Module) -> int:
    for _, m in model.named_modules():
        blocks = getattr(m, "blocks", None)
        if isinstance(blocks, nn.ModuleList):
            return len(blocks)
    raise ValueError(
        "layer_decay needs num_layers: no sub-module with a `blocks` ModuleList was found"
    )


def param_groups(
    model: nn.Module,
    weight_decay: float,
    zero_wd_1d: bool = True,
    skip_names: Iterable[str] = (),
    lr_mult: Optional[Callable[[str], float]] = None,
    layer_decay: Optional[float] = None,
    num_layers: Optional[int] = None,
    layer_id_fn: Callable[[str, int], int] = mvit_layer_id,
    bn_weight_decay: Optional[float] = None,
    model_no_weight_decay: bool = True,
) -> List[ParamGroup]:
    """Split the trainable parameters of ``model`` into optimizer parameter groups.

    Args:
        model: the model (DDP / DataParallel / compiled wrappers are unwrapped; names are those
            of the unwrapped model, e.g. ``backbone.blocks.0.attn.qkv.weight``).
        weight_decay: decay of ordinary parameters.
        zero_wd_1d: no decay for 1-D parameters and ``*.bias`` (norm weights, biases);
            SlowFast's ``SOLVER.ZERO_WD_1D_PARAM``.
        skip_names: more parameters without decay: full names or glob patterns; each must match
            at least one parameter.
        lr_mult: ``name -> factor`` multiplied into the group's ``lr_scale``.
        layer_decay: SlowFast's ``SOLVER.LAYER_DECAY``: ``lr_scale = layer_decay **
            (num_layers + 1 - layer_id_fn(name, num_layers))``; ``None`` or 1.0 disables it.
        num_layers: depth for layer decay; default: length of the first ``blocks`` ModuleList.
        layer_id_fn: ``(name, num_layers) -> layer id`` in ``[0, num_layers + 1]``.
        bn_weight_decay: if given, decay of BatchNorm parameters (SlowFast's
            ``BN.WEIGHT_DECAY``); otherwise they follow the rules above.
        model_no_weight_decay: honour the modules' ``no_weight_decay()`` lists (SlowFast's
            ``MVIT.ZERO_DECAY_POS_CLS``; default True, but the official MViTv2 Kinetics configs
            set it False, i.e. tokens and position tables *are* decayed there).

    Returns:
        Groups ``{"params", "param_names", "weight_decay", "lr_scale"}``, one per distinct
        (weight decay, lr scale), in order of first appearance; frozen parameters are left out.
    """
    model = unwrap_model(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_wd = set(no_weight_decay_names(model)) if model_no_weight_decay else set()
    all_names = [n for n, _ in model.named_parameters()]
    for pattern in skip_names:
        hits = [n for n in all_names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(f"skip_names entry {pattern!r} matches no parameter of the model")
        no_wd.update(hits)
    bn_params = set()
    if bn_weight_decay is not None:
        for prefix, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                pre = prefix + "." if prefix else ""
                bn_params.update(pre + n for n, _ in m.named_parameters(recurse=False))
    use_ld = layer_decay is not None and layer_decay != 1.0
    depth = (num_layers if num_layers is not None else _count_blocks(model)) if use_ld else 0

    groups: Dict[Tuple[float, float], ParamGroup] = {}
    for name, p in named:
        if name in bn_params:
            wd = float(bn_weight_decay)  # type: ignore[arg-type]
        elif name in no_wd or (zero_wd_1d and (p.ndim <= 1 or name.endswith(".bias"))):
            wd = 0.0
        else:
            wd = float(weight_decay)
        scale = 1.0
        if use_ld:
            layer = layer_id_fn(name, depth)
            if not 0 <= layer <= depth + 1:
                raise ValueError(f"layer id {layer} of {name!r} is outside [0, {depth + 1}]")
            scale = float(layer_decay) ** (depth + 1 - layer)  # type: ignore[arg-type]
        if lr_mult is not None:
            scale *= float(lr_mult(name))
        g = groups.setdefault(
            (wd, scale), {"params": [], "param_names": [], "weight_decay": wd, "lr_scale": scale}
        )
        g["params"].append(p)
        g["param_names"].append(name)
    return list(groups.values())


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    dampening: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    zero_wd_1d: bool = True,
    skip_names: Iterable[str] = (),
    lr_mult: Optional[Callable[[str], float]] = None,
    layer_decay: Optional[float] = None,
    num_layers: Optional[int] = None,
    bn_weight_decay: Optional[float] = None,
    model_no_weight_decay: bool = True,
) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZING_METHOD`` ``"sgd"`` | ``"adam"`` | ``"adamw"`` over :func:`param_groups`.

    Each group starts at ``lr * lr_scale`` (the scheduler overwrites it every iteration).
    ``momentum`` / ``nesterov`` / ``dampening`` apply to SGD, ``betas`` / ``eps`` to Adam(W).
    """
    groups = param_groups(
        model, weight_decay, zero_wd_1d=zero_wd_1d, skip_names=skip_names, lr_mult=lr_mult,
        layer_decay=layer_decay, num_layers=num_layers, bn_weight_decay=bn_weight_decay,
        model_no_weight_decay=model_no_weight_decay,
    )
    if not groups:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    key = name.lower()
    if key == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
            weight_decay=weight_decay,
        )
    if key in ("adam", "adamw"):
        cls = torch.optim.AdamW if key == "adamw" else torch.optim.Adam
        return cls(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd', 'adam' or 'adamw'")
