"""Core config keys: model, weights, data geometry, runtime. Task keys live in each task.

``MODEL.MVIT.*`` has one key per field of :class:`~mvit_tasks.modeling.backbone.arch.MViTArch`
(upper-cased), generated from the dataclass so the two never drift. ``None`` means "take the
value from ``MODEL.VARIANT`` (or the ``MViTArch`` default)"; :func:`arch_from_cfg` applies this.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, Optional

from mvit_tasks.config.config import CfgNode, deprecate_key, require_list_length

if TYPE_CHECKING:
    from mvit_tasks.modeling.backbone.arch import MViTArch


def build_core_defaults() -> CfgNode:
    """A new tree holding the core defaults (``get_cfg()`` returns this)."""
    from mvit_tasks.modeling.backbone.arch import MViTArch  # lazy: keeps imports acyclic

    _C = CfgNode()

    _C.MODEL = CfgNode()
    # Registered MViT variant name (e.g. "mvitv2_s_16x4"); "" = use MODEL.MVIT (and defaults).
    _C.MODEL.VARIANT = ""
    # Per-field overrides of the variant's MViTArch; None = keep the variant's value.
    _C.MODEL.MVIT = CfgNode({f.name.upper(): None for f in dataclasses.fields(MViTArch)})
    _C.MODEL.NUM_CLASSES = 400

    _C.MODEL.HEAD = CfgNode()
    _C.MODEL.HEAD.DROPOUT_RATE = 0.5
    # "cls" | "mean" | "auto" (the cls token if the backbone has one, else mean pooling).
    _C.MODEL.HEAD.POOL = "auto"

    # Checkpoint to load (any supported source, auto-detected).
    _C.MODEL.WEIGHTS = ""
    # auto | native | slowfast | mvit | torchvision | timm | pytorchvideo | detectron2
    _C.MODEL.WEIGHTS_SOURCE = "auto"
    # Key prefixes allowed to be missing from the checkpoint (e.g. ["head."] for a new head).
    _C.MODEL.WEIGHTS_ALLOW_MISSING = []
    # Key prefixes of the checkpoint allowed to stay unused.
    _C.MODEL.WEIGHTS_ALLOW_UNEXPECTED = []
    # Explicit opt-in to load checkpoints that need arbitrary pickled objects (unsafe).
    _C.MODEL.WEIGHTS_UNSAFE_PICKLE = False
    # torch.compile the model for training and testing (checkpoints keep the plain key names).
    _C.MODEL.COMPILE = False

    _C.DATA = CfgNode()
    _C.DATA.NUM_FRAMES = 16  # frames per clip
    _C.DATA.SAMPLING_RATE = 4  # temporal stride between sampled frames
    _C.DATA.TRAIN_CROP_SIZE = 224
    _C.DATA.TEST_CROP_SIZE = 224
    _C.DATA.MEAN = [0.45, 0.45, 0.45]  # per-channel, on [0, 1] pixel values
    _C.DATA.STD = [0.225, 0.225, 0.225]

    _C.OUTPUT_DIR = "./output"
    _C.SEED = 0
    for key in ("DATA.MEAN", "DATA.STD"):  # one value per RGB channel
        require_list_length(key, 3)
    # Keys that were never read; old files that set them still load, with a WARNING.
    deprecate_key("MODEL.ARCH", "the model is the task's (--task NAME), not a config key")
    deprecate_key("DATA.INPUT_CHANNEL_NUM", "inputs are always 3-channel RGB")
    return _C


def _tuples(value: Any) -> Any:
    """Lists (also nested) -> tuples, the form ``MViTArch`` uses for sequences."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _same_kind(value: Any, ref: Any) -> bool:
    if isinstance(ref, bool) or isinstance(value, bool):
        return type(value) is type(ref)
    if isinstance(ref, float):
        return isinstance(value, (int, float))
    return type(value) is type(ref)


def arch_from_cfg(cfg: CfgNode, input_from_data: bool = False) -> "MViTArch":
    """``MViTArch`` of ``MODEL.VARIANT`` (or the defaults) with every non-None ``MODEL.MVIT.*``.

    With ``input_from_data`` (the clip / image tasks, as SlowFast sizes its position tables from
    ``DATA.*``), the input geometry has one source: ``DATA.NUM_FRAMES`` (video models) and
    ``DATA.TRAIN_CROP_SIZE`` give ``num_frames`` / ``spatial_size`` when ``MODEL.MVIT.NUM_FRAMES``
    / ``SPATIAL_SIZE`` are not set, and a set value that differs is an error naming both keys
    (it would otherwise interpolate the position tables at every forward, silently). Without it
    (detection: its image sizes are not ``DATA.*``), ``DATA.*`` is not consulted.
    """
    from mvit_tasks.modeling.backbone.arch import MViTArch

    variant = cfg.MODEL.VARIANT
    if variant:
        from mvit_tasks.modeling.backbone.variants import get_variant

        base = get_variant(variant).arch
    else:
        base = MViTArch()
    names = {f.name for f in dataclasses.fields(MViTArch)}
    overrides: Dict[str, Any] = {}
    for key, value in cfg.MODEL.MVIT.items():
        if value is None:
            continue
        if key.lower() not in names:
            raise KeyError(f"MODEL.MVIT.{key} is not a field of MViTArch ({sorted(names)})")
        current = getattr(base, key.lower())
        if isinstance(current, (bool, int, float, str)) and not _same_kind(value, current):
            raise ValueError(
                f"MODEL.MVIT.{key} must be a {type(current).__name__} like the variant's "
                f"{current!r}, got {value!r}"
            )
        overrides[key.lower()] = _tuples(value)
    if input_from_data:
        overrides.update(_input_geometry(cfg, base, overrides))
    try:
        return dataclasses.replace(base, **overrides)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Invalid MViT architecture from MODEL.VARIANT={variant!r} and MODEL.MVIT overrides "
            f"{ {k.upper(): v for k, v in overrides.items()} }: {e}"
        ) from e


def cfg_from_arch(
    arch: "MViTArch", relative_to: Optional["MViTArch"] = None
) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{"MODEL": {"MVIT": {FIELD: value}}}`` (YAML-ready) for ``arch``.

    With ``relative_to`` (e.g. the variant's arch), only fields that differ from it are written.
    """
    values = arch.to_dict()
    if relative_to is not None:
        ref = relative_to.to_dict()
        values = {k: v for k, v in values.items() if v != ref[k]}
    return {"MODEL": {"MVIT": {k.upper(): v for k, v in values.items()}}}


def _input_geometry(cfg: CfgNode, base: "MViTArch", overrides: Dict[str, Any]) -> Dict[str, Any]:
    """``num_frames`` / ``spatial_size`` from ``DATA.*`` (see :func:`arch_from_cfg`)."""
    video = overrides.get("video", base.video)
    crop = int(cfg.DATA.TRAIN_CROP_SIZE)
    wanted: Dict[str, Any] = {"spatial_size": (crop, crop)}
    sources = {"spatial_size": ("MODEL.MVIT.SPATIAL_SIZE", "DATA.TRAIN_CROP_SIZE", crop)}
    if video:
        wanted["num_frames"] = int(cfg.DATA.NUM_FRAMES)
        sources["num_frames"] = ("MODEL.MVIT.NUM_FRAMES", "DATA.NUM_FRAMES",
                                 int(cfg.DATA.NUM_FRAMES))
    out: Dict[str, Any] = {}
    for field, value in wanted.items():
        if field in overrides:
            if _tuples(overrides[field]) != value:
                model_key, data_key, data_value = sources[field]
                raise ValueError(
                    f"{model_key}={list(_tuples(overrides[field])) if field == 'spatial_size' else overrides[field]!r} "
                    f"and {data_key}={data_value!r} describe the same input differently; set "
                    f"one of them (the model's position tables are sized from {data_key} when "
                    f"{model_key} is not set)")
            continue
        out[field] = value
    return out
