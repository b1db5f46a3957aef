"""Reading official SlowFast / facebookresearch/mvit YAML files: safe loading only, ``_BASE_``,
duplicate-key reports, and a repair of the one known indentation defect upstream
(SlowFast ``configs/ImageNet/MVITv2_B.yaml``)."""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Dict, List, Tuple

import yaml

# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
_KEY_WITH_VALUE = re.compile(r"^(?P<indent> *)[A-Za-z0-9_]+ *: *[^\s#]")


def _repair_dedented_keys(text: str) -> Tuple[str, List[int]]:
    """Re-indent ``KEY: value`` lines that sit dedented between two equally indented siblings.

    Such a line is never valid YAML (a scalar key cannot own the indented lines after it); it is
    the known defect of SlowFast ``configs/ImageNet/MVITv2_B.yaml`` (``DROPPATH_RATE: 0.3``).
    Returns the new text and the 1-based numbers of the lines changed.
    """
    lines = text.split("\n")

    def is_content(i: int) -> bool:
        s = lines[i].strip()
        return bool(s) and not s.startswith("#")

    def indent(i: int) -> int:
        return len(lines[i]) - len(lines[i].lstrip(" "))

    fixed = []
    for i, line in enumerate(lines):
        m = _KEY_WITH_VALUE.match(line)
        if not m:
            continue
        prev = next((j for j in range(i - 1, -1, -1) if is_content(j)), None)
        nxt = next((j for j in range(i + 1, len(lines)) if is_content(j)), None)
        if prev is None or nxt is None:
            continue
        dedented = indent(prev) == indent(nxt) > len(m.group("indent"))
        if dedented and _KEY_WITH_VALUE.match(lines[prev]):
            lines[i] = " " * indent(nxt) + line.lstrip(" ")
            fixed.append(i + 1)
    return "\n".join(lines), fixed


def _node_text(node: Any) -> Any:
    """Plain structure of a YAML node's source text (to compare duplicated values)."""
    if isinstance(node, yaml.ScalarNode):
        return node.value
    if isinstance(node, yaml.SequenceNode):
        return [_node_text(n) for n in node.value]
    if isinstance(node, yaml.MappingNode):
        return [(_node_text(k), _node_text(v)) for k, v in node.value]
    return None


def _duplicate_keys(text: str, path: str) -> List[str]:
    """Warnings for keys given twice in one mapping with different values.

    PyYAML (hence yacs / fvcore) silently keeps the last one, e.g. SlowFast
    ``Kinetics/MVIT_B_32x3_CONV.yaml`` has ``DEPTH: 16`` and later ``DEPTH: 24``.
    """
    out: List[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: Dict[Any, Tuple[int, Any]] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else None
                if key is not None:
                    line = k.start_mark.line + 1
                    if key in seen and seen[key][1] != _node_text(v):
                        out.append(
                            f"{path}:{line}: duplicate key {prefix}{key} overrides the value "
                            f"at line {seen[key][0]} (the last one wins, as upstream)"
                        )
                    seen[key] = (line, _node_text(v))
                walk(v, f"{prefix}{key}.")
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, prefix)

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return out


def _read_official_yaml(
    path: str, _chain: Tuple[str, ...] = ()
) -> Tuple[Dict[str, Any], List[str]]:
    """Safe-load one official YAML (+ its ``_BASE_`` chain, fvcore style) -> (mapping, warnings)."""
    path = os.path.abspath(os.path.expanduser(path))
    if path in _chain:
        raise ValueError("_BASE_ cycle: " + " -> ".join(_chain + (path,)))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"official config '{path}' does not exist")
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    warnings: List[str] = []
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        raise ValueError(f"{path}: needs an unsafe YAML loader ({e.problem}); refused") from None
    except yaml.YAMLError as e:
        repaired, lines = _repair_dedented_keys(text)
        try:
            data = yaml.safe_load(repaired) if lines else None
        except yaml.YAMLError:
            lines = []
        if not lines:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None
        text = repaired
        repaired_lines = repaired.split("\n")
        warnings += [
            f"{path}:{n}: re-indented the dedented line '{repaired_lines[n - 1].strip()}' into "
            "its block (known upstream indentation defect)"
            for n in lines
        ]
    warnings += _duplicate_keys(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a mapping, got {type(data).__name__}")
    bases = data.pop("_BASE_", None)
    if bases is None:
        return data, warnings
    merged: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        base = os.path.expanduser(base)
        if not os.path.isabs(base):
            base = os.path.join(os.path.dirname(path), base)
        base_data, base_warnings = _read_official_yaml(base, _chain + (path,))
        _deep_merge(merged, base_data)
        warnings += base_warnings
    _deep_merge(merged, data)
    return merged, warnings


def _deep_merge(dst: Dict[str, Any], src: Dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
