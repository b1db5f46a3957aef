"""Load any supported checkpoint into a model: read safely, detect the source, convert, fit, check.

Strict by default: missing or unexpected keys are listed by name and stop the load unless their
prefixes are allowed (``MODEL.WEIGHTS_ALLOW_MISSING`` / ``..._ALLOW_UNEXPECTED``). Tensors of the
file that an allowed load leaves out (allowed-unexpected keys, a head of another class count)
are never dropped silently: a WARNING names them with their shapes and
:attr:`LoadReport.dropped` lists them. Modules may declare renamed parameters
(``checkpoint_renames = {"old.": "new."}``); older keys are then mapped, with a note.

A path may be a zoo spec, ``zoo:<variant>[.<tag>]`` (``MODEL.WEIGHTS zoo:mvitv2_s_16x4``): the
official weights file is fetched (mirror folder, torch hub cache or download, hash-checked; see
:mod:`mvit_tasks.hub`) and read with that file's converter.
"""
from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Mapping, MutableMapping, Optional, Sequence, Tuple,
                    Union)

import torch
from torch import nn

from .adapt import adapt_state_dict
from .converters.base import detect_source, get_converter, strip_prefix
from .io import extract_state_dict, load_checkpoint_file

logger = logging.getLogger(__name__)


class CheckpointMismatchError(RuntimeError):
    """Keys that the model needs are missing from the checkpoint, or the reverse."""


@dataclass
class LoadReport:
    source: str
    loaded: int
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    #: checkpoint tensors NOT loaded, as ``"key (shape)"``: allowed-unexpected keys and tensors
    #: that adapt_state_dict could not fit (a head of another class count).
    dropped: List[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"loaded {self.loaded} tensors from a '{self.source}' checkpoint"
        if self.missing:
            s += f"; {len(self.missing)} allowed-missing (new): {_short(self.missing)}"
        if self.dropped:
            s += f"; {len(self.dropped)} checkpoint tensors NOT loaded: {_short(self.dropped)}"
        elif self.unexpected:
            s += f"; {len(self.unexpected)} allowed-unused: {_short(self.unexpected)}"
        if self.notes:
            s += "; " + "; ".join(self.notes[:5]) + (" ..." if len(self.notes) > 5 else "")
        return s


    def log(self, path: str, log: Optional[logging.Logger] = None) -> None:
        """One line for the load of ``path``: INFO when every tensor loaded as it was, WARNING
        when tables were resized, tensors re-initialised (allowed-missing) or left out."""
        log = log or logger
        changed = bool(self.notes or self.missing or self.dropped or self.unexpected)
        log.log(logging.WARNING if changed else logging.INFO, "weights %s: %s", path,
                self.summary())


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


def rename_checkpoint_keys(sd: MutableMapping[str, Any], renames: Mapping[str, str],
                           prefix: str = "") -> List[Tuple[str, str]]:
    """Rename ``prefix + old...`` keys of ``sd`` to ``prefix + new...`` in place.

    A key is left alone when its new name is already present. Returns ``(old, new)`` pairs.
    """
    done: List[Tuple[str, str]] = []
    for old, new in renames.items():
        for key in [k for k in sd if k.startswith(prefix + old)]:
            target = prefix + new + key[len(prefix + old):]
            if target not in sd:
                sd[target] = sd.pop(key)
                done.append((key, target))
    return done


def _apply_module_renames(sd: Dict[str, Any], model: nn.Module) -> List[str]:
    """Map the old key names that ``model``'s modules declare in ``checkpoint_renames``."""
    notes: List[str] = []
    for name, module in model.named_modules():
        renames = getattr(module, "checkpoint_renames", None)
        if not renames:
            continue
        prefix = f"{name}." if name else ""
        done = rename_checkpoint_keys(sd, renames, prefix)
        for old, new in renames.items():
            if any(k.startswith(prefix + old) for k, _ in done):
                notes.append(f"{prefix}{old}* -> {prefix}{new}* (former name)")
    return notes


def _shape(v: Any) -> str:
    return str(tuple(v.shape)) if hasattr(v, "shape") else type(v).__name__


def _renamed_pairs(missing: Sequence[str], unexpected: Sequence[str], sd: Mapping[str, Any],
                   model_sd: Mapping[str, Any]) -> List[str]:
    """``"unexpected <-> missing"`` for tensors of equal leaf name and shape: likely one tensor
    under two names, which allowing the keys would silently re-initialise."""
    out: List[str] = []
    for u in unexpected:
        for m in missing:
            if u.rsplit(".", 1)[-1] == m.rsplit(".", 1)[-1] and \
                    tuple(getattr(sd[u], "shape", ())) == tuple(model_sd[m].shape):
                out.append(f"{u} {_shape(sd[u])} <-> {m}")
                break
    return out


def resolve_weights_path(path: str, source: Optional[str] = "auto") -> Tuple[str, str]:
    """``(local file, source)`` for a weights path: a ``zoo:<variant>[.<tag>]`` spec becomes
    the fetched official file and, for ``source`` ``"auto"``, that file's converter; any other
    path is returned as is."""
    from mvit_tasks.hub.zoo import is_zoo_spec, resolve_zoo

    source = source or "auto"
    if not is_zoo_spec(path):
        return path, source
    local, entry = resolve_zoo(path)
    return local, (entry.source if source == "auto" else source)


def convert_state_dict(obj: Any, source: str = "auto") -> tuple:
    """Checkpoint object -> ``(native state dict, source name)``."""
    sd = extract_state_dict(obj)
    for wrapper in ("module.", "_orig_mod.", "module."):  # DDP / torch.compile, either order
        sd = strip_prefix(sd, wrapper)
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
        checkpoint: a file, a ``zoo:<variant>[.<tag>]`` spec or a checkpoint object.
        source: converter name or ``"auto"`` (detected from the keys; a zoo file's own).
        allow_missing / allow_unexpected: key prefixes or globs that may be absent from / unused
            by the checkpoint (e.g. ``["head."]`` to train a new head, ``["*.rel_pos_t"]`` to
            inflate an image checkpoint into a video model).
        allow_unsafe: read files that need arbitrary pickled objects (explicit opt-in).
        rename: maps a native key to the model's key (``None`` drops it), for models that nest
            the backbone elsewhere.
    """
    name = checkpoint if isinstance(checkpoint, str) else "<state dict>"
    if isinstance(checkpoint, str):
        checkpoint, source = resolve_weights_path(checkpoint, source)
    obj = load_checkpoint_file(checkpoint, allow_unsafe) if isinstance(checkpoint, str) else checkpoint
    sd, src = convert_state_dict(obj, source)
    if rename is not None:
        sd = {nk: v for k, v in sd.items() if (nk := rename(k)) is not None}
    model_sd = model.state_dict()
    sd = _alias_final_norm(dict(sd), model_sd)
    rename_notes = _apply_module_renames(sd, model)
    backbone = getattr(model, "backbone", model)
    grid = tuple(getattr(backbone, "patch_grid", (1, 1, 1)))
    has_cls = bool(getattr(backbone, "cls_embed", False))
    fitted, notes = adapt_state_dict(sd, model_sd, grid, has_cls)
    notes = rename_notes + notes
    unfit = [k for k in sd if k not in fitted]  # tensors adapt could not fit (another head)
    missing = [k for k in model_sd if k not in fitted]
    unexpected = [k for k in fitted if k not in model_sd]
    bad_missing = [k for k in missing if not _allowed(k, allow_missing)]
    bad_unexpected = [k for k in unexpected if not _allowed(k, allow_unexpected)]
    if bad_missing or bad_unexpected:
        parts = [f"checkpoint '{name}' (source: {src}) does not match the model:"]
        if bad_missing:
            parts.append(f"  {len(bad_missing)} missing keys: {_short(bad_missing, 12)}")
        if bad_unexpected:
            parts.append(f"  {len(bad_unexpected)} unexpected keys: {_short(bad_unexpected, 12)}")
        pairs = _renamed_pairs(missing, unexpected, fitted, model_sd)
        if pairs:
            parts.append(
                "  Same shape under another name (a naming difference, not a new layer; allowing "
                "these keys would discard the checkpoint's trained tensors): " + _short(pairs, 4))
        parts.append(
            "  If this is intended (e.g. a new head), allow the prefixes with "
            "MODEL.WEIGHTS_ALLOW_MISSING ['head.'] / MODEL.WEIGHTS_ALLOW_UNEXPECTED [...]; "
            "the checkpoint tensors left out are then logged as a WARNING."
        )
        if notes:
            parts.append("  Adaptations applied: " + "; ".join(notes))
        raise CheckpointMismatchError("\n".join(parts))
    dropped = [f"{k} {_shape(sd[k])}" for k in unfit + unexpected]
    if dropped:
        logger.warning("checkpoint '%s': %d of its tensors are NOT loaded (allowed by the "
                       "allow-missing / allow-unexpected settings): %s", name, len(dropped),
                       ", ".join(dropped))
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in fitted.items() if k in model_sd}, strict=False)
    return LoadReport(src, len(fitted) - len(unexpected), missing, unexpected, notes, dropped)
