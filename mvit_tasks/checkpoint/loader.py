"""Load any supported checkpoint into a model: read safely, detect the source, convert, fit, check.

Strict by default: missing or unexpected keys are listed by name and stop the load unless their
prefixes are allowed (``MODEL.WEIGHTS_ALLOW_MISSING`` / ``..._ALLOW_UNEXPECTED``).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .adapt import adapt_state_dict
from .converters.base import detect_source, get_converter, strip_prefix
from .io import extract_state_dict, load_checkpoint_file


class CheckpointMismatchError(RuntimeError):
    """Keys that the model needs are missing from the checkpoint, or the reverse."""


@dataclass
class LoadReport:
    source: str
    loaded: int
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"loaded {self.loaded} tensors from a '{self.source}' checkpoint"
        if self.missing:
            s += f"; {len(self.missing)} allowed-missing (new): {_short(self.missing)}"
        if self.unexpected:
            s += f"; {len(self.unexpected)} allowed-unused: {_short(self.unexpected)}"
        if self.notes:
            s += "; " + "; ".join(self.notes[:5]) + (" ..." if len(self.notes) > 5 else "")
        return s


def _short(keys: Sequence[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n})" if len(keys) > n else "")


def _allowed(key: str, patterns: Sequence[str]) -> bool:
    """A key is allowed if it starts with a plain prefix or matches a glob (``*.rel_pos_t``)."""
    return any(
        fnmatch.fnmatchcase(key, p) if any(c in p for c in "*?[") else key.startswith(p)
        for p in patterns
    )


def _alias_final_norm(sd: dict, model_keys: Mapping[str, Any]) -> dict:
    """Map ``backbone.scale5_norm`` to the model's last-stage norm when it has fewer stages."""
    if "backbone.scale5_norm.weight" in sd and "backbone.scale5_norm.weight" not in model_keys:
        norms = sorted(k for k in model_keys if k.startswith("backbone.scale") and k.endswith("_norm.weight"))
        if norms:
            last = norms[-1][: -len(".weight")]
            for suffix in ("weight", "bias"):
                sd[f"{last}.{suffix}"] = sd.pop(f"backbone.scale5_norm.{suffix}")
    return sd


def convert_state_dict(obj: Any, source: str = "auto") -> tuple:
    """Checkpoint object -> ``(native state dict, source name)``."""
    sd = extract_state_dict(obj)
    sd = strip_prefix(sd, "module.")
    src = detect_source(sd) if source in ("auto", "", None) else source
    return get_converter(src).to_native(sd), src


def load_weights(
    model: nn.Module,
    checkpoint: Union[str, Mapping[str, Any]],
    source: str = "auto",
    allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (),
    allow_unsafe: bool = False,
    rename: Optional[Callable[[str], Optional[str]]] = None,
) -> LoadReport:
    """Load ``checkpoint`` (a path or an already-read object) into ``model``.

    Args:
        source: converter name or ``"auto"`` (detected from the keys).
        allow_missing / allow_unexpected: key prefixes or globs that may be absent from / unused
            by the checkpoint (e.g. ``["head."]`` to train a new head, ``["*.rel_pos_t"]`` to
            inflate an image checkpoint into a video model).
        allow_unsafe: read files that need arbitrary pickled objects (explicit opt-in).
        rename: maps a native key to the model's key (``None`` drops it), for models that nest
            the backbone elsewhere.
    """
    name = checkpoint if isinstance(checkpoint, str) else "<state dict>"
    obj = load_checkpoint_file(checkpoint, allow_unsafe) if isinstance(checkpoint, str) else checkpoint
    sd, src = convert_state_dict(obj, source)
    if rename is not None:
        sd = {nk: v for k, v in sd.items() if (nk := rename(k)) is not None}
    model_sd = model.state_dict()
    sd = _alias_final_norm(sd, model_sd)
    backbone = getattr(model, "backbone", model)
    grid = tuple(getattr(backbone, "patch_grid", (1, 1, 1)))
    has_cls = bool(getattr(backbone, "cls_embed", False))
    sd, notes = adapt_state_dict(sd, model_sd, grid, has_cls)
    missing = [k for k in model_sd if k not in sd]
    unexpected = [k for k in sd if k not in model_sd]
    bad_missing = [k for k in missing if not _allowed(k, allow_missing)]
    bad_unexpected = [k for k in unexpected if not _allowed(k, allow_unexpected)]
    if bad_missing or bad_unexpected:
        parts = [f"checkpoint '{name}' (source: {src}) does not match the model:"]
        if bad_missing:
            parts.append(f"  {len(bad_missing)} missing keys: {_short(bad_missing, 12)}")
        if bad_unexpected:
            parts.append(f"  {len(bad_unexpected)} unexpected keys: {_short(bad_unexpected, 12)}")
        parts.append(
            "  If this is intended (e.g. a new head), allow the prefixes with "
            "MODEL.WEIGHTS_ALLOW_MISSING ['head.'] / MODEL.WEIGHTS_ALLOW_UNEXPECTED [...]."
        )
        if notes:
            parts.append("  Adaptations applied: " + "; ".join(notes))
        raise CheckpointMismatchError("\n".join(parts))
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in sd.items() if k in model_sd}, strict=False)
    return LoadReport(src, len(sd) - len(unexpected), missing, unexpected, notes)
