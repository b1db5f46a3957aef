"""Import the official MViT config YAMLs of PySlowFast and facebookresearch/mvit.

Turns a published config (SlowFast ``configs/Kinetics/MVITv2_S_16x4.yaml``, facebookresearch/mvit
``configs/MVITv2_T.yaml``, ...) into an :class:`~mvit_tasks.modeling.backbone.arch.MViTArch` plus
the data / head settings that go with the released checkpoint, and writes it as one of our
configs (:func:`write_native_config`).

Semantics followed (read from the upstream code, not copied):

* SlowFast ``slowfast/models/video_model_builder.py::MViT`` (Fan et al., ICCV 2021; Li et al.,
  CVPR 2022): ``PATCH_2D`` selects a Conv2d stem and prepends a temporal stride of 1; the pooling
  keys stay 3-D (``[i, t, h, w]``) even for images. ``POOL_KV_STRIDE_ADAPTIVE``, when set,
  *replaces* ``POOL_KV_STRIDE``. ``POOL_KVQ_KERNEL: None`` derives each kernel from its stride
  (``s + 1 if s > 1 else s``). Residual pooling skips the cls row. Head: ``USE_MEAN_POOLING``
  = drop cls, mean, then ``norm`` (mean -> norm); otherwise ``norm`` then the cls token
  (``CLS_EMBED_ON``) or the token mean (norm -> mean); then dropout (``MODEL.DROPOUT_RATE``) and
  ``head.projection``.
* facebookresearch/mvit ``mvit/models/mvit_model.py`` (image models, 2-element kernels/strides
  ``[i, h, w]``): ``POOL_KVQ_KERNEL`` is always used (no stride-derived kernels), no separate or
  temporal position tables, no ``USE_MEAN_POOLING`` key. Head: ``norm`` -> cls token or token mean
  -> dropout -> ``head.projection`` (the same as timm's ``forward_head`` for ``mvitv2_*``).
  The first release (``3fd4d097``) adds pooled q to the cls row as well in residual pooling; a
  later revision of ``attention.py`` skips it like SlowFast. timm's port, which serves the
  IN-21K ``*_cls`` weights, follows the first form, hence ``residual_pooling_cls=True`` here.
* Both read YAML through yacs/fvcore: string values that are Python literals are evaluated
  (``PATCH_KERNEL: (3, 7, 7)``) and a key given twice keeps its last value (SlowFast
  ``Kinetics/MVIT_B_32x3_CONV.yaml`` says ``DEPTH: 16`` and later ``DEPTH: 24``); both are
  reproduced here, duplicates with different values are reported in ``info["warnings"]``.

Our backbone applies its final LayerNorm to every token and the head pools afterwards, i.e.
norm -> (cls | mean). SlowFast's ``USE_MEAN_POOLING`` (mean -> norm) is therefore rejected.

Defaults for keys a YAML omits come from the tables below, which restate each repository's
``defaults.py``. Settings our MViT cannot express raise :class:`ValueError` naming the key, the
value and the file.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from mvit_tasks.checkpoint.official_defaults import (
    _MVIT_ONLY,
    _SLOWFAST_ONLY,
    _SLOWFAST_ONLY_SECTIONS,
    MVIT,
    OFFICIAL_DEFAULTS,
    SLOWFAST,
)
from mvit_tasks.checkpoint.official_yaml import _read_official_yaml
from mvit_tasks.modeling.backbone.arch import _OPTIONAL_SEQ_FIELDS, MViTArch

__all__ = [
    "SLOWFAST",
    "MVIT",
    "OFFICIAL_DEFAULTS",
    "detect_flavor",
    "arch_from_official",
    "load_official_config",
    "write_native_config",
]


def detect_flavor(raw: Dict[str, Any], source: str = "<dict>") -> str:
    """``"slowfast"`` (PySlowFast: video, or ``PATCH_2D`` images) or ``"mvit"`` (image repo).

    Decided by keys that exist in only one repository's defaults; failing that, by the
    dimensionality of the pooling settings (``[i, h, w]`` entries / 2-element kernels = mvit).
    """
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ValueError(f"{source}: an official config must be a mapping, not {kind}")
    mvit_sec = raw.get("MVIT")
    if not isinstance(mvit_sec, dict):
        raise ValueError(f"{source}: no MVIT section; not an MViT config")
    present = {(s, k) for s, sec in raw.items() if isinstance(sec, dict) for k in sec}
    sf = sorted(f"{s}.{k}" for s, k in present & _SLOWFAST_ONLY)
    sf += sorted(s for s in raw if s in _SLOWFAST_ONLY_SECTIONS)
    mv = sorted(f"{s}.{k}" for s, k in present & _MVIT_ONLY)
    if sf and mv:
        raise ValueError(
            f"{source}: keys of both PySlowFast ({', '.join(sf)}) and facebookresearch/mvit "
            f"({', '.join(mv)}); pass flavor= explicitly"
        )
    if sf:
        return SLOWFAST
    if mv:
        return MVIT
    for key, offset in (("POOL_Q_STRIDE", 1), ("POOL_KV_STRIDE", 1), ("POOL_KVQ_KERNEL", 0),
                        ("POOL_KV_STRIDE_ADAPTIVE", 0), ("PATCH_KERNEL", 0), ("PATCH_STRIDE", 0)):
        value = _decode(mvit_sec.get(key))
        if not value:
            continue
        first = value[0] if offset else value
        if isinstance(first, (list, tuple)) and len(first) - offset in (2, 3):
            return MVIT if len(first) - offset == 2 else SLOWFAST
    return SLOWFAST


# --------------------------------------------------------------------------------------------
# Official dict -> MViTArch
# --------------------------------------------------------------------------------------------
def _decode(value: Any) -> Any:
    """yacs/fvcore ``_decode_cfg_value``: strings that are Python literals become values."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


class _View:
    """Merged read access: the YAML's value if given, else the flavor's upstream default."""

    def __init__(self, raw: Dict[str, Any], flavor: str, source: str) -> None:
        self.raw, self.flavor, self.source = raw, flavor, source
        self.defaults = OFFICIAL_DEFAULTS[flavor]

    def section(self, name: str) -> Dict[str, Any]:
        if "." in name:
            top, sub = name.split(".", 1)
            sec = self.section(top).get(sub)
        else:
            sec = self.raw.get(name)
        if sec is None:
            return {}
        if not isinstance(sec, dict):
            raise ValueError(f"{self.source}: {name} must be a mapping, got {sec!r}")
        return sec

    def given(self, name: str, key: str) -> bool:
        return key in self.section(name)

    def __call__(self, name: str, key: str) -> Any:
        sec = self.section(name)
        if key in sec:
            return _decode(sec[key])
        return copy.deepcopy(self.defaults[name][key])

    def error(self, name: str, key: str, why: str) -> ValueError:
        return ValueError(f"{self.source}: {name}.{key}={self(name, key)!r} {why}")


OfficialView = _View  # public names for the translators of task projects


def _as_bool(view: _View, name: str, key: str) -> bool:
    value = view(name, key)
    if not isinstance(value, bool):
        raise view.error(name, key, "must be True or False")
    return value


def _as_int(view: _View, name: str, key: str) -> int:
    value = view(name, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise view.error(name, key, "must be an integer")
    return value


def _as_float(view: _View, name: str, key: str) -> float:
    value = view(name, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise view.error(name, key, "must be a number")
    return float(value)


def _int_seq(view: _View, name: str, key: str, lengths: Sequence[int]) -> Optional[Tuple[int, ...]]:
    value = view(name, key)
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
    if not ok or len(value) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise view.error(name, key, f"must be a list of {want} integers")
    return tuple(value)


def _indexed(
    view: _View, name: str, key: str, depth: int, lengths: Sequence[int], last_index: int,
    mul: bool = False,
) -> Optional[List[List[Any]]]:
    """``[[block, ...], ...]`` lists (DIM_MUL / HEAD_MUL / POOL_*_STRIDE), checked and typed."""
    value = view(name, key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise view.error(name, key, "must be a list of [block_index, ...] lists")
    out = []
    for entry in value:
        if not isinstance(entry, (list, tuple)) or len(entry) not in lengths:
            want = " or ".join(str(n) for n in lengths)
            raise view.error(name, key, f"needs entries of {want} numbers, got {entry!r}")
        idx = entry[0]
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= last_index:
            raise view.error(
                name, key, f"has block index {idx!r} outside 0..{last_index} (DEPTH={depth})"
            )
        if mul:
            if isinstance(entry[1], bool) or not isinstance(entry[1], (int, float)):
                raise view.error(name, key, f"needs [block, multiplier] entries, got {entry!r}")
            out.append([idx, float(entry[1])])
        else:
            if not all(type(v) is int and v >= 1 for v in entry[1:]):
                raise view.error(name, key, f"needs positive integer strides, got {entry!r}")
            out.append([int(v) for v in entry])
    return out


def _check_temporal_one(
    view: _View, key: str, seq: Optional[Sequence[int]], offset: int = 0
) -> None:
    """Image models may write 3-D settings only with a temporal size of 1 (padding: 0)."""
    want = 0 if key == "PATCH_PADDING" else 1
    if seq is not None and len(seq) - offset == 3 and seq[offset] != want:
        raise view.error("MVIT", key, f"must have temporal size {want} in an image model")


def _refuse_unsupported(view: _View) -> None:
    """Raise for keys upstream does not know and for settings MViTArch cannot express."""
    source, flavor, sf, M = view.source, view.flavor, view.flavor == SLOWFAST, "MVIT"
    # keys that do not exist upstream (yacs would refuse them too)
    known = set(view.defaults["MVIT"]) | ({"REV"} if sf else set())
    unknown = sorted(set(view.section(M)) - known)
    if unknown:
        raise ValueError(
            f"{source}: unknown MVIT key(s) {unknown} for a {flavor} config (obsolete or "
            f"misspelled; the {flavor} defaults.py has no such key)"
        )
    if sf:
        unknown_rev = sorted(set(view.section("MVIT.REV")) - set(view.defaults["MVIT.REV"]))
        if unknown_rev:
            raise ValueError(f"{source}: unknown MVIT.REV key(s) {unknown_rev}")

    model_name = view("MODEL", "MODEL_NAME")
    if model_name != "MViT":
        raise view.error("MODEL", "MODEL_NAME", "is not an MViT model (expected 'MViT')")

    # settings MViTArch cannot express
    if sf and _as_bool(view, "MVIT.REV", "ENABLE"):
        raise view.error("MVIT.REV", "ENABLE", "(reversible MViT) is not supported")
    if _as_bool(view, M, "POOL_FIRST"):
        raise view.error(M, "POOL_FIRST", "is not supported (fused qkv, pooling after it)")
    if sf and _as_bool(view, M, "SEPARATE_QKV"):
        raise view.error(M, "SEPARATE_QKV", "is not supported (checkpoints need a fused attn.qkv)")
    if view(M, "MODE") not in ("conv", "max", "avg"):
        raise view.error(M, "MODE", "is not supported (conv, max or avg; not conv_unshared)")
    if sf:
        if view(M, "NORM") != "layernorm":
            raise view.error(M, "NORM", "is not supported (only layernorm)")
        if _as_bool(view, M, "USE_FIXED_SINCOS_POS"):
            raise view.error(M, "USE_FIXED_SINCOS_POS", "(frozen sin-cos table) is not supported")
        if _as_bool(view, M, "USE_MEAN_POOLING"):
            raise view.error(
                M, "USE_MEAN_POOLING",
                "is not supported: it pools tokens before the final norm (mean -> norm), while "
                "our head pools the normalised tokens (norm -> mean)",
            )
        if _as_bool(view, M, "NORM_STEM"):
            raise view.error(M, "NORM_STEM", "(norm after the patch embedding) is not supported")
        if _as_float(view, M, "LAYER_SCALE_INIT_VALUE") != 0.0:
            raise view.error(M, "LAYER_SCALE_INIT_VALUE", "(layer scale) is not supported")
        if _as_float(view, M, "DROPOUT_RATE") != 0.0:
            raise view.error(
                M, "DROPOUT_RATE", "(dropout inside the backbone blocks) is not supported; "
                "MODEL.DROPOUT_RATE (the head dropout) is"
            )


def arch_from_official(
    raw: Dict[str, Any], flavor: Optional[str] = None, *, source: str = "<dict>"
) -> Tuple[MViTArch, Dict[str, Any]]:
    """Translate an official config mapping into ``(MViTArch, info)``.

    Args:
        raw: the YAML mapping as published (``yaml.safe_load`` output).
        flavor: ``"slowfast"`` or ``"mvit"``; detected with :func:`detect_flavor` if None.
        source: name used in error messages (the file path).

    Returns:
        ``arch`` and ``info`` with ``num_classes``, ``num_frames``, ``sampling_rate``,
        ``train_crop_size``, ``test_crop_size``, ``mean``, ``std`` (on [0, 1] pixels),
        ``head_pool`` ("cls" | "mean", both after the final norm), ``dropout_rate``,
        ``head_act``, ``dataset``, ``source_checkpoint``, ``reverse_input_channel`` (BGR input),
        ``num_ensemble_views`` / ``num_spatial_crops`` (test views), ``val_crop_ratio``,
        ``detection``, ``task`` (the registered task whose :meth:`~mvit_tasks.tasks.Task.
        from_official_config` claims the config, e.g. ``ava`` for ``DETECTION.ENABLE``; ""
        for a classifier), ``task_config`` (that task's keys),
        ``zero_decay_pos_cls``, ``flavor``, ``source`` and ``warnings``.

    Raises:
        ValueError: unknown ``MVIT`` keys, malformed values, or settings MViTArch cannot
            express (the message names the key, the value and the file).
    """
    if flavor is None:
        flavor = detect_flavor(raw, source)
    if flavor not in OFFICIAL_DEFAULTS:
        raise ValueError(f"{source}: flavor must be 'slowfast' or 'mvit', got {flavor!r}")
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise ValueError(f"{source}: an official config must be a mapping, not {kind}")
    view = _View(raw, flavor, source)
    warnings: List[str] = []
    sf = flavor == SLOWFAST
    M = "MVIT"

    _refuse_unsupported(view)
    mode = view(M, "MODE")

    # ---- geometry
    video = not (_as_bool(view, M, "PATCH_2D") if sf else True)
    if video:
        num_frames = _as_int(view, "DATA", "NUM_FRAMES")
        sampling_rate = _as_int(view, "DATA", "SAMPLING_RATE")
        dims, entry_lens = (3,), (4,)
    else:
        if sf and _as_int(view, "DATA", "NUM_FRAMES") != 1:
            raise view.error("DATA", "NUM_FRAMES", "must be 1 for an image (PATCH_2D) model")
        num_frames, sampling_rate = 1, 1
        dims, entry_lens = (2, 3), (3, 4)
    train_crop = _as_int(view, "DATA", "TRAIN_CROP_SIZE")
    test_crop = _as_int(view, "DATA", "TEST_CROP_SIZE")
    if train_crop != test_crop:
        warnings.append(
            f"{source}: DATA.TRAIN_CROP_SIZE={train_crop} != DATA.TEST_CROP_SIZE={test_crop}; the "
            f"upstream MViT asserts they are equal; position tables are sized for {train_crop}"
        )
    in_chans = 3
    if sf:
        chans = view("DATA", "INPUT_CHANNEL_NUM")
        if not isinstance(chans, (list, tuple)) or not chans or not isinstance(chans[0], int):
            raise view.error("DATA", "INPUT_CHANNEL_NUM", "must be a list like [3]")
        in_chans = chans[0]

    patch = {}
    for key in ("PATCH_KERNEL", "PATCH_STRIDE", "PATCH_PADDING"):
        patch[key] = _int_seq(view, M, key, dims)
        if patch[key] is None:
            raise view.error(M, key, "must be set")
        if not video:
            _check_temporal_one(view, key, patch[key])

    depth = _as_int(view, M, "DEPTH")
    if depth < 1:
        raise view.error(M, "DEPTH", "must be >= 1")
    dim_mul = _indexed(view, M, "DIM_MUL", depth, (2,), depth, mul=True) or []
    head_mul = _indexed(view, M, "HEAD_MUL", depth, (2,), depth, mul=True) or []
    pool_q = _indexed(view, M, "POOL_Q_STRIDE", depth, entry_lens, depth - 1) or []
    pool_kv = _indexed(view, M, "POOL_KV_STRIDE", depth, entry_lens, depth - 1)
    adaptive = _int_seq(view, M, "POOL_KV_STRIDE_ADAPTIVE", dims)
    kvq_kernel = _int_seq(view, M, "POOL_KVQ_KERNEL", dims)
    if not video:
        for key, entries in (("POOL_Q_STRIDE", pool_q), ("POOL_KV_STRIDE", pool_kv or [])):
            for e in entries:
                _check_temporal_one(view, key, e, offset=1)
        _check_temporal_one(view, "POOL_KV_STRIDE_ADAPTIVE", adaptive)
        _check_temporal_one(view, "POOL_KVQ_KERNEL", kvq_kernel)
    if adaptive is not None:
        if pool_kv:
            warnings.append(
                f"{source}: MVIT.POOL_KV_STRIDE is ignored because MVIT.POOL_KV_STRIDE_ADAPTIVE is "
                "set (upstream replaces the explicit list)"
            )
        pool_kv = None
    elif not pool_kv:
        pool_kv = None
    if kvq_kernel is None and not sf:
        raise view.error(M, "POOL_KVQ_KERNEL", "must be set for a facebookresearch/mvit config")

    cls_embed = _as_bool(view, M, "CLS_EMBED_ON")
    use_abs_pos = _as_bool(view, M, "USE_ABS_POS")
    sep_pos_embed = use_abs_pos and sf and _as_bool(view, M, "SEP_POS_EMBED")
    rel_pos_spatial = _as_bool(view, M, "REL_POS_SPATIAL")
    rel_pos_temporal = sf and _as_bool(view, M, "REL_POS_TEMPORAL")
    if rel_pos_temporal and not video:
        raise view.error(M, "REL_POS_TEMPORAL", "needs a temporal axis; image (PATCH_2D) model")
    residual_pooling = _as_bool(view, M, "RESIDUAL_POOLING")

    fields = dict(
        video=video,
        spatial_size=(train_crop, train_crop),
        num_frames=num_frames,
        in_chans=in_chans,
        patch_kernel=patch["PATCH_KERNEL"],
        patch_stride=patch["PATCH_STRIDE"],
        patch_padding=patch["PATCH_PADDING"],
        embed_dim=_as_int(view, M, "EMBED_DIM"),
        num_heads=_as_int(view, M, "NUM_HEADS"),
        depth=depth,
        mlp_ratio=_as_float(view, M, "MLP_RATIO"),
        qkv_bias=_as_bool(view, M, "QKV_BIAS"),
        dim_mul=dim_mul,
        head_mul=head_mul,
        pool_q_stride=pool_q,
        pool_kv_stride=pool_kv,
        pool_kv_stride_adaptive=adaptive,
        pool_kvq_kernel=kvq_kernel,
        pool_mode=mode,
        cls_embed=cls_embed,
        use_abs_pos=use_abs_pos,
        sep_pos_embed=sep_pos_embed,
        rel_pos_spatial=rel_pos_spatial,
        rel_pos_temporal=rel_pos_temporal,
        rel_pos_zero_init=_as_bool(view, M, "REL_POS_ZERO_INIT"),
        residual_pooling=residual_pooling,
        # facebookresearch/mvit (released code) adds pooled q to the cls row too (a no-op
        # without a cls token); SlowFast skips the cls row.
        residual_pooling_cls=not sf,
        dim_mul_in_att=_as_bool(view, M, "DIM_MUL_IN_ATT"),
        drop_path_rate=_as_float(view, M, "DROPPATH_RATE"),
        norm_eps=1e-6,
        act_checkpoint=_as_bool(view, "MODEL", "ACT_CHECKPOINT"),
    )
    try:
        arch = MViTArch(**fields)
        arch.block_specs()  # validates the per-block expansion
    except (TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        raise ValueError(f"{source}: the {flavor} config gives an invalid MViT: {e}") from e

    info = _info(view, arch, sampling_rate, warnings)
    return arch, info


def _info(
    view: _View, arch: MViTArch, sampling_rate: int, warnings: List[str]
) -> Dict[str, Any]:
    """The settings that go with an official config's weights (see :func:`arch_from_official`)."""
    sf = view.flavor == SLOWFAST

    def floats(key: str) -> List[float]:
        value = view("DATA", key)
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise view.error("DATA", key, "must be a list of 3 numbers")
        return [float(v) for v in value]

    if view.given("TRAIN", "DATASET"):
        dataset = view("TRAIN", "DATASET")
    elif view.given("TEST", "DATASET"):
        dataset = view("TEST", "DATASET")
    else:
        dataset = view("TRAIN", "DATASET")
    checkpoint = view("TEST", "CHECKPOINT_FILE_PATH") or view("TRAIN", "CHECKPOINT_FILE_PATH")
    detection = bool(sf and _as_bool(view, "DETECTION", "ENABLE"))
    task, task_config = _task_of(view, warnings) if sf else ("", {})
    if detection and not task:
        raise view.error("DETECTION", "ENABLE", "no registered task translates SlowFast "
                         "detection configs (the ava project does; is it installed?)")

    return {
        "flavor": view.flavor,
        "source": view.source,
        "num_classes": _as_int(view, "MODEL", "NUM_CLASSES"),
        "num_frames": arch.num_frames,
        "sampling_rate": sampling_rate,
        "train_crop_size": _as_int(view, "DATA", "TRAIN_CROP_SIZE"),
        "test_crop_size": _as_int(view, "DATA", "TEST_CROP_SIZE"),
        "mean": floats("MEAN"),
        "std": floats("STD"),
        "head_pool": "cls" if arch.cls_embed else "mean",
        "dropout_rate": _as_float(view, "MODEL", "DROPOUT_RATE"),
        "head_act": view("MODEL", "HEAD_ACT"),
        "dataset": dataset,
        "source_checkpoint": checkpoint or "",
        "reverse_input_channel": bool(sf and _as_bool(view, "DATA", "REVERSE_INPUT_CHANNEL")),
        "num_ensemble_views": _as_int(view, "TEST", "NUM_ENSEMBLE_VIEWS") if sf else 1,
        "num_spatial_crops": _as_int(view, "TEST", "NUM_SPATIAL_CROPS") if sf else 1,
        "val_crop_ratio": None if arch.video else _as_float(
            view, "DATA", "IN_VAL_CROP_RATIO" if sf else "VAL_CROP_RATIO"
        ),
        "detection": detection,
        "task": task,
        "task_config": task_config,
        "zero_decay_pos_cls": _as_bool(view, "MVIT", "ZERO_DECAY_POS_CLS"),
        "warnings": warnings,
    }

def _task_of(view: "OfficialView", warnings: List[str]) -> tuple:
    """``(task name, {section: {key: value}})`` of the one registered task that claims the
    official config (:meth:`Task.from_official_config`), else ``("", {})``."""
    from mvit_tasks.registry import TASK_REGISTRY
    from mvit_tasks.tasks import load_builtin_projects

    load_builtin_projects()
    claims = []
    for name, task_cls in TASK_REGISTRY:
        keys = task_cls.from_official_config(view, warnings)
        if keys is not None:
            claims.append((name, keys))
    if len(claims) > 1:
        raise view.error("MODEL", "ARCH", f"claimed by several tasks: {[c[0] for c in claims]}")
    return claims[0] if claims else ("", {})


def load_official_config(
    path: str, flavor: Optional[str] = None
) -> Tuple[MViTArch, Dict[str, Any]]:
    """Read an official SlowFast / mvit YAML (safe loader only) -> ``(MViTArch, info)``.

    Tolerates the known dedented-key defect of SlowFast ``ImageNet/MVITv2_B.yaml`` (with a
    warning in ``info["warnings"]``) and reports duplicate keys; any other YAML error raises a
    :class:`ValueError` naming the file and line.
    """
    raw, warnings = _read_official_yaml(path)
    arch, info = arch_from_official(raw, flavor, source=os.path.abspath(path))
    info["warnings"] = warnings + info["warnings"]
    return arch, info


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_native_config(
    arch: MViTArch, info: Dict[str, Any], out_path: str, weights: str = ""
) -> None:
    """Write our config YAML (``MODEL.MVIT.<FIELD>`` for every MViTArch field, head and data keys,
    plus ``info["task_config"]``, e.g. the ``AVA.*`` keys of a detection config).

    Optional sequence fields that are None are written as ``[]`` (e.g. ``POOL_KVQ_KERNEL: []`` =
    kernels derived from strides), because ``null`` in our configs means "not set, keep the
    variant's value" (see ``mvit_tasks.config.arch_from_cfg``); ``MViTArch`` reads ``[]`` as None.
    """
    mvit = {
        f.name.upper(): ([] if getattr(arch, f.name) is None and f.name in _OPTIONAL_SEQ_FIELDS
                         else _plain(getattr(arch, f.name)))
        for f in dataclasses.fields(arch)
    }
    cfg = {
        "MODEL": {
            "NUM_CLASSES": int(info["num_classes"]),
            "WEIGHTS": weights,
            "HEAD": {"POOL": info["head_pool"], "DROPOUT_RATE": float(info["dropout_rate"])},
            "MVIT": mvit,
        },
        "DATA": {
            "NUM_FRAMES": int(info["num_frames"]),
            "SAMPLING_RATE": int(info["sampling_rate"]),
            "TRAIN_CROP_SIZE": int(info["train_crop_size"]),
            "TEST_CROP_SIZE": int(info["test_crop_size"]),
            "MEAN": [float(v) for v in info["mean"]],
            "STD": [float(v) for v in info["std"]],
        },
    }
    for section, keys in info.get("task_config", {}).items():
        cfg.setdefault(section, {}).update(keys)
    parent = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(parent, exist_ok=True)
    header = f"# generated by mvit_tasks.checkpoint.official_config from {info.get('source')}\n"
    if info.get("task"):
        header += f"# for tools/train_net.py --task {info['task']}\n"
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(header)
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)


as_bool, as_int, as_float = _as_bool, _as_int, _as_float
