"""Yacs-style config node with ``_BASE_`` inheritance and errors that name the key and the file.

Semantics follow yacs (``merge_from_list`` with ``literal_eval`` typing, type checks against
the current value) and fvcore / detectron2 (``_BASE_`` key, paths relative to the including
file). Differences, all deliberate:

* YAML is only ever read with ``yaml.safe_load``; files needing unsafe tags (``!!python/...``)
  and ``.py`` configs are refused.
* Every layer of a ``_BASE_`` chain is merged separately, so an unknown key or a type mismatch
  names the exact file that holds it (and the files that included it), plus the closest known
  keys as a hint.
* A failed merge leaves the node unchanged; merging into a frozen node raises.
* ``int`` values are accepted for ``float`` keys (``LR: 1``); tuples are stored as lists unless
  the default is a tuple, so ``dump()`` round-trips exactly.
* A key given twice in one YAML mapping is an error naming the key, the file and both lines
  (yaml.safe_load keeps the last one silently).
* Lists are checked element by element against the default's element type (numbers stay
  numbers, strings stay strings), and keys registered with :func:`require_list_length`
  (``DATA.MEAN``: 3 ...) must have that length.
* A key registered with :func:`deprecate_key` (e.g. ``MODEL.ARCH``, never read) is not an error:
  its value is ignored with a WARNING that names the key, the file and why (yacs ignores its
  deprecated keys the same way, with a terser message). Any other unknown key is an error.
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml
from fvcore.common.config import CfgNode as _FvCfgNode

logger = logging.getLogger(__name__)

BASE_KEY = "_BASE_"
_LEAF_TYPES = (str, int, float, bool, list, tuple, type(None))


class ConfigError(Exception):
    """Base class of config errors; ``str(err)`` is the plain message (no KeyError quoting)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownKeyError(ConfigError, KeyError):
    """A key that is not in the defaults (nor added by a task's ``add_config``)."""


class ConfigTypeError(ConfigError, ValueError):
    """A value whose type does not match the key's current value."""


class UnsafeYAMLError(ConfigError, ValueError):
    """A config file that cannot be read with ``yaml.safe_load``."""


def _plain(value: Any) -> Any:
    """Tuples (also nested) -> lists, so values compare equal after a YAML round trip."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and not isinstance(value, _FvCfgNode):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _describe_source(chain: Sequence[str]) -> str:
    """``chain`` = (top file, ..., file that holds the key)."""
    text = f"in file '{chain[-1]}'"
    if len(chain) > 1:
        text += " (a _BASE_ of " + " <- ".join(f"'{c}'" for c in reversed(chain[:-1])) + ")"
    return text


CMDLINE = "given on the command line (opts)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"Config file '{self.name}': key {key!r} is given twice "
                                  f"(lines {seen[key]} and {line}); YAML would silently keep "
                                  "the last one")
            seen[key] = line
        return super().construct_mapping(node, deep)


_LIST_LENGTHS: Dict[str, int] = {}
_DEPRECATED_KEYS: Dict[str, str] = {}


def require_list_length(full_key: str, length: int) -> None:
    """Values of list key ``full_key`` (e.g. ``"DATA.MEAN"``) must have ``length`` items."""
    _LIST_LENGTHS[full_key] = length


def deprecate_key(full_key: str, why: str) -> None:
    """Accept ``full_key`` (a removed key, e.g. ``"MODEL.ARCH"``) in files and overrides, ignore
    its value and log a WARNING with ``why``, so that old config files still load."""
    _DEPRECATED_KEYS[full_key] = why


def read_yaml(path: str) -> Dict[str, Any]:
    """Read one YAML mapping with ``yaml.safe_load`` semantics (an empty file is ``{}``);
    a key given twice in a mapping is an error."""
    if path.endswith(".py"):
        raise UnsafeYAMLError(f"Config file '{path}': Python configs are not supported; use YAML")
    with open(path, "r", encoding="utf-8") as f:
        try:
            loader = _UniqueKeyLoader(f)
            loader.name = path
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
        except yaml.constructor.ConstructorError as e:
            raise UnsafeYAMLError(
                f"Config file '{path}' uses YAML tags that need an unsafe loader ({e.problem}); "
                "configs are only read with yaml.safe_load: write plain values instead"
            ) from None
        except yaml.YAMLError as e:
            raise ConfigError(f"Config file '{path}' is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping, got {type(data).__name__}")
    return data


def load_yaml_layers(
    path: str, _chain: Tuple[str, ...] = ()
) -> List[Tuple[Dict[str, Any], Tuple[str, ...]]]:
    """Resolve ``_BASE_`` recursively: ``[(mapping, chain), ...]`` in merge order (bases first).

    ``chain`` is (top file, ..., this file). ``_BASE_`` is a path or a list of paths; relative
    paths are resolved from the directory of the file that names them.
    """
    if not _chain:  # the top file may be a shipped recipe's name (mvit_tasks.config.recipes)
        from mvit_tasks.config.recipes import resolve_config_file

        path = resolve_config_file(path)
    path = os.path.abspath(os.path.expanduser(path))
    if path in _chain:
        raise ConfigError("_BASE_ cycle: " + " -> ".join(_chain + (path,)))
    if not os.path.isfile(path):
        where = f" (a _BASE_ of '{_chain[-1]}')" if _chain else ""
        raise FileNotFoundError(f"Config file '{path}'{where} does not exist")
    data = read_yaml(path)
    chain = _chain + (path,)
    bases = data.pop(BASE_KEY, None)
    if isinstance(bases, str):
        bases = [bases]
    if bases is not None and not (
        isinstance(bases, list) and all(isinstance(b, str) for b in bases)
    ):
        raise ConfigError(f"{BASE_KEY} in '{path}' must be a path or a list of paths")
    layers: List[Tuple[Dict[str, Any], Tuple[str, ...]]] = []
    for base in bases or []:
        base = os.path.expanduser(base)
        if not os.path.isabs(base):
            base = os.path.join(os.path.dirname(path), base)
        layers += load_yaml_layers(base, chain)
    layers.append((data, chain))
    return layers


class CfgNode(_FvCfgNode):
    """Config tree: attribute access, ``_BASE_`` files, ``KEY VALUE`` overrides, safe YAML only.

    Example::

        cfg = get_cfg()
        cfg.merge_from_file("projects/ava/configs/mvitv2_s_16x4_k400.yaml")
        cfg.merge_from_list(["MODEL.NUM_CLASSES", "80", "DATA.MEAN", "[0.5, 0.5, 0.5]"])
    """

    # ------------------------------------------------------------------ merging
    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file and its ``_BASE_`` chain (each layer checked against this node)."""
        if allow_unsafe:
            raise UnsafeYAMLError("allow_unsafe=True is not supported: configs are safe YAML only")
        new = self._writable_clone()
        for data, chain in load_yaml_layers(cfg_filename):
            new._merge_mapping(data, [], _describe_source(chain))
        self._take(new)

    def merge_from_list(self, cfg_list: Sequence[Any]) -> None:
        """Merge ``["KEY", "VALUE", ...]``; string values are typed with ``literal_eval``."""
        if len(cfg_list) % 2:
            raise ConfigError(
                f"Override list {CMDLINE} has odd length {len(cfg_list)}; it must be "
                f"KEY VALUE pairs: {list(cfg_list)}"
            )
        new = self._writable_clone()
        for full_key, raw in zip(cfg_list[0::2], cfg_list[1::2]):
            if not isinstance(full_key, str) or full_key == BASE_KEY:
                raise ConfigError(f"Invalid key {full_key!r} {CMDLINE} ({BASE_KEY} is file-only)")
            if new._ignore_deprecated(full_key, CMDLINE):
                continue
            if new.key_is_renamed(full_key):
                new.raise_key_rename_error(full_key)
            *parents, leaf = full_key.split(".")
            node: Any = new
            for depth, part in enumerate(parents):
                if not isinstance(node, CfgNode) or part not in node:
                    raise new._unknown_key(".".join(parents[: depth + 1]), full_key, CMDLINE)
                node = node[part]
            if not isinstance(node, CfgNode) or leaf not in node:
                raise new._unknown_key(full_key, full_key, CMDLINE)
            if isinstance(node[leaf], CfgNode):
                raise ConfigTypeError(
                    f"Config key '{full_key}' {CMDLINE} is a section; set its keys "
                    f"({', '.join(node[leaf].keys())}) one by one"
                )
            value = self._decode_cfg_value(raw) if isinstance(raw, str) else raw
            node[leaf] = _coerce(value, node[leaf], full_key, CMDLINE)
        self._take(new)

    def merge_from_other_cfg(self, cfg_other: Dict[str, Any]) -> None:
        """Merge another node or plain dict with the same checks as a file."""
        if BASE_KEY in cfg_other:
            raise ConfigError(f"The reserved key '{BASE_KEY}' can only be used in files")
        new = self._writable_clone()
        new._merge_mapping(cfg_other, [], "from a merged config object")
        self._take(new)

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> Dict[str, Any]:
        """fvcore-compatible: the file merged over its bases, as one plain dict (safe YAML)."""
        if allow_unsafe:
            raise UnsafeYAMLError("allow_unsafe=True is not supported: configs are safe YAML only")
        merged: Dict[str, Any] = {}
        for data, _ in load_yaml_layers(filename):
            _merge_dicts(data, merged)
        return merged

    @classmethod
    def _load_cfg_py_source(cls, filename: str) -> "CfgNode":  # yacs hook for .py configs
        raise UnsafeYAMLError(f"Config file '{filename}': Python configs are not supported")

    # ------------------------------------------------------------------ output
    def dump(self, **kwargs: Any) -> str:
        """YAML text that re-loads (``merge_from_file``) to an equal config."""
        kwargs.setdefault("sort_keys", False)
        kwargs.setdefault("Dumper", _Dumper)
        return yaml.dump(_plain(_to_dict(self)), **kwargs)

    def full_keys(self, prefix: str = "") -> List[str]:
        """Every key of the tree, sections and leaves, as dotted names."""
        out: List[str] = []
        for k, v in self.items():
            name = f"{prefix}{k}"
            out.append(name)
            if isinstance(v, CfgNode):
                out += v.full_keys(name + ".")
        return out

    # ------------------------------------------------------------------ internals
    def _writable_clone(self) -> "CfgNode":
        if self.is_frozen():
            raise AttributeError("Cannot merge into a frozen CfgNode; call cfg.defrost() first")
        return self.clone()

    def _take(self, other: "CfgNode") -> None:
        dict.clear(self)
        dict.update(self, other)

    def _merge_mapping(self, data: Dict[str, Any], prefix: List[str], source: str) -> None:
        """Merge ``data`` into the sub-node at ``prefix`` (``self`` is the root)."""
        node: CfgNode = self
        for p in prefix:
            node = node[p]
        for k, v in data.items():
            full_key = ".".join(prefix + [str(k)])
            if k == BASE_KEY:
                raise ConfigError(f"'{full_key}' {source}: {BASE_KEY} is only allowed at the top")
            if k not in node:
                if node.is_new_allowed():
                    node[k] = type(self)(v, prefix + [k]) if isinstance(v, dict) else _plain(v)
                    continue
                if self._ignore_deprecated(full_key, source):
                    continue
                if self.key_is_renamed(full_key):
                    self.raise_key_rename_error(full_key)
                shown = full_key
                while isinstance(v, dict) and v:  # name a full leaf key, not just the section
                    k, v = next(iter(v.items()))
                    shown += f".{k}"
                raise self._unknown_key(full_key, shown, source)
            current = node[k]
            if isinstance(current, CfgNode):
                if not isinstance(v, dict):
                    raise ConfigTypeError(
                        f"Config key '{full_key}' {source} is a section (keys: "
                        f"{', '.join(current.keys())}), got the value {v!r}"
                    )
                self._merge_mapping(v, prefix + [k], source)
            elif isinstance(v, dict):
                raise ConfigTypeError(
                    f"Config key '{full_key}' {source} takes a value "
                    f"(current: {current!r}), not a mapping"
                )
            else:
                node[k] = _coerce(v, current, full_key, source)

    def _ignore_deprecated(self, full_key: str, source: str) -> bool:
        """True (after a WARNING) for a key of :func:`deprecate_key` or yacs'
        ``register_deprecated_key``; its value is dropped."""
        if full_key in _DEPRECATED_KEYS:
            logger.warning("Config key '%s' %s is deprecated and ignored (%s); remove it",
                           full_key, source, _DEPRECATED_KEYS[full_key])
            return True
        return bool(self.key_is_deprecated(full_key))

    def _unknown_key(self, bad: str, full_key: str, source: str) -> UnknownKeyError:
        """Error for ``full_key`` whose first unknown component ends ``bad``."""
        known = self.full_keys()
        leaf = full_key.split(".")[-1]
        hints = [k for k in known if k.split(".")[-1] == leaf and k != full_key]
        hints += [k for k in difflib.get_close_matches(full_key, known, n=3, cutoff=0.6)]
        hints = list(dict.fromkeys(hints))[:5]
        msg = f"Unknown config key '{full_key}' {source}."
        if bad != full_key:
            msg += f" ('{bad}' is not a known section.)"
        if hints:
            msg += " Did you mean: " + ", ".join(hints) + "?"
        if "." not in bad:
            msg += (
                f" Known top-level keys: {', '.join(self.keys())}. Task keys exist only after "
                "the task's add_config(cfg) ran (--task NAME)."
            )
        return UnknownKeyError(msg)


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing lists without mappings inside in flow style: ``MEAN: [0.45, ...]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    def has_mapping(x: Any) -> bool:
        return isinstance(x, dict) or (isinstance(x, list) and any(map(has_mapping, x)))

    flow = not has_mapping(data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _to_dict(node: Any) -> Any:
    if isinstance(node, _FvCfgNode):
        return {k: _to_dict(v) for k, v in node.items()}
    return node


def _merge_dicts(a: Dict[str, Any], b: Dict[str, Any]) -> None:
    """Merge plain dict ``a`` into ``b`` (values of ``a`` win, sub-dicts merge)."""
    for k, v in a.items():
        if isinstance(v, dict) and isinstance(b.get(k), dict):
            _merge_dicts(v, b[k])
        else:
            b[k] = v


def _coerce(value: Any, original: Any, full_key: str, source: str) -> Any:
    """Check ``value`` against the key's current value (yacs rules, plus int -> float)."""
    if not isinstance(value, _LEAF_TYPES):
        raise ConfigTypeError(
            f"Config key '{full_key}' {source}: values of type {type(value).__name__} "
            f"({value!r}) are not allowed; use str, int, float, bool, list or null"
        )
    value = _plain(value)
    if isinstance(value, list):
        _check_list(value, original, full_key, source)
    if original is None or value is None:
        return value
    if type(value) is type(original):
        return value
    if isinstance(original, (list, tuple)) and isinstance(value, list):
        return type(original)(value)
    if type(original) is float and type(value) is int:
        return float(value)
    raise ConfigTypeError(
        f"Type mismatch for config key '{full_key}' {source}: expected "
        f"{type(original).__name__} (current value {original!r}), got "
        f"{type(value).__name__} ({value!r})"
    )


def _kind(x: Any) -> Optional[str]:
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    return "str" if isinstance(x, str) else None


def _check_list(value: List[Any], original: Any, full_key: str, source: str) -> None:
    """Length (:func:`require_list_length`) and element kinds of a list value."""
    want = _LIST_LENGTHS.get(full_key)
    if want is not None and len(value) != want:
        raise ConfigTypeError(f"Config key '{full_key}' {source}: expected a list of {want} "
                              f"values, got {len(value)} ({value!r})")
    if not isinstance(original, (list, tuple)) or not original:
        return
    kinds = {_kind(x) for x in original}
    if len(kinds) != 1 or None in kinds:
        return  # nested or mixed defaults: no element rule
    kind = kinds.pop()
    ints = kind == "number" and all(isinstance(x, int) for x in original)
    for i, x in enumerate(value):
        if _kind(x) != kind or (ints and not isinstance(x, int)):
            expected = "integers" if ints else {"number": "numbers", "str": "strings",
                                                "bool": "booleans"}[kind]
            raise ConfigTypeError(f"Config key '{full_key}' {source}: item {i} ({x!r}) of "
                                  f"{value!r} is not like the default {list(original)!r} "
                                  f"({expected})")


def get_cfg() -> CfgNode:
    """A fresh copy of the core defaults (tasks then add their keys with ``add_config``)."""
    from mvit_tasks.config.defaults import build_core_defaults

    return build_core_defaults()


def load_config(
    config_file: Optional[str],
    opts: Optional[Sequence[str]] = None,
    extra_config_fns: Iterable[Callable[[CfgNode], Any]] = (),
    freeze: bool = True,
) -> CfgNode:
    """Defaults -> each ``fn(cfg)`` of ``extra_config_fns`` (task keys) -> file -> opts -> freeze.

    Args:
        config_file: YAML file (with optional ``_BASE_``); ``None`` or ``""`` for defaults only.
        opts: command-line overrides ``["KEY", "VALUE", ...]``.
        extra_config_fns: functions that add keys in place, e.g. a task's ``add_config``.
        freeze: freeze the result (default).
    """
    cfg = get_cfg()
    for fn in extra_config_fns:
        fn(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    if opts:
        cfg.merge_from_list(list(opts))
    if freeze:
        cfg.freeze()
    return cfg
