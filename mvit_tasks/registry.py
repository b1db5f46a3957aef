"""Name -> object registries: tasks (``--task NAME``), model variants (``create_model(NAME)``)
and checkpoint converters (``MODEL.WEIGHTS_SOURCE``). Each one here is looked up by name; a
kind of object that is only ever built directly (backbones, necks, heads, datasets, evaluators)
has no registry.

Semantics follow detectron2's / fvcore's ``Registry``: registering a name twice raises, looking
up an unknown name raises a ``KeyError`` that lists every registered name.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple, TypeVar

T = TypeVar("T")


class Registry:
    """A named mapping from strings to callables (classes or functions).

    Args:
        name: what the registry holds, used in error messages (e.g. ``"TASK"``).
        signature: a one-line description of what a registered entry must accept/return;
            shown by ``describe()`` and in lookup errors so users know what to register.

    Use as a decorator (``@TASK_REGISTRY.register()`` or ``.register("name")``) or call
    ``register(name, obj)`` directly.
    """

    def __init__(self, name: str, signature: str = "") -> None:
        self._name = name
        self._signature = signature
        self._obj_map: Dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    def _do_register(self, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self._name} registry: names must be non-empty strings, got {name!r}")
        if name in self._obj_map:
            raise KeyError(
                f"{self._name} registry: an object named '{name}' is already registered "
                f"({self._obj_map[name]!r}); pick another name"
            )
        self._obj_map[name] = obj

    def register(self, name: Any = None, obj: Any = None) -> Any:
        """Register ``obj`` under ``name`` (default: ``obj.__name__``); usable as decorator."""
        if callable(name) and obj is None and not isinstance(name, str):
            # used as bare decorator: @REGISTRY.register
            self._do_register(name.__name__, name)
            return name
        if obj is None:

            def deco(func_or_class: T) -> T:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; raise ``KeyError`` listing the names."""
        try:
            return self._obj_map[name]
        except KeyError:
            known = ", ".join(sorted(self._obj_map)) or "(none)"
            hint = f" Entries must be: {self._signature}." if self._signature else ""
            raise KeyError(
                f"No object named '{name}' in the {self._name} registry. Registered: {known}.{hint}"
            ) from None

    def names(self) -> List[str]:
        return sorted(self._obj_map)

    def describe(self) -> str:
        return f"{self._name} registry ({self._signature or 'no signature documented'}): " + (
            ", ".join(self.names()) or "(empty)"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter(sorted(self._obj_map.items()))

    def __len__(self) -> int:
        return len(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {len(self)} entries)"

    def unregister(self, name: str) -> Optional[Any]:
        """Remove ``name`` (tests and interactive sessions only)."""
        return self._obj_map.pop(name, None)


TASK_REGISTRY = Registry("TASK", "Task subclass; Task.add_config(cfg) adds its keys")
CONVERTER_REGISTRY = Registry(
    "CHECKPOINT_CONVERTER",
    "CheckpointConverter with detect(state_dict) -> bool and convert(state_dict) -> state_dict",
)
VARIANT_REGISTRY = Registry("MODEL_VARIANT", "ModelVariant (architecture kwargs + metadata)")

__all__ = [
    "Registry",
    "TASK_REGISTRY",
    "CONVERTER_REGISTRY",
    "VARIANT_REGISTRY",
]
