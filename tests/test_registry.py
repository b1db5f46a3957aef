"""Tests of mvit_tasks.registry.Registry: decorator forms, duplicates, unknown names."""

from __future__ import annotations

import pytest

from mvit_tasks import registry as registry_module
from mvit_tasks.registry import Registry


def test_decorator_forms_and_direct_call() -> None:
    reg = Registry("THING", "fn() -> int")

    @reg.register
    def bare() -> int:
        return 1

    @reg.register()
    def empty_call() -> int:
        return 2

    @reg.register("custom_name")
    def named() -> int:
        return 3

    def direct() -> int:
        return 4

    assert reg.register("direct", direct) is direct
    assert bare() == 1 and named() == 3, "decorators return the object unchanged"
    assert reg.names() == ["bare", "custom_name", "direct", "empty_call"]
    assert reg.get("custom_name") is named and reg.get("empty_call") is empty_call
    assert "bare" in reg and "named" not in reg and len(reg) == 4
    assert [name for name, _ in reg] == reg.names()


def test_classes_register_under_their_name() -> None:
    reg = Registry("CLS")

    @reg.register()
    class Head:
        pass

    assert reg.get("Head") is Head


def test_duplicates_raise() -> None:
    reg = Registry("DUP")
    reg.register("a", object())
    with pytest.raises(KeyError, match="DUP.*'a'.*already registered"):
        reg.register("a", object())
    with pytest.raises(KeyError):

        @reg.register("a")
        def again() -> None:
            pass

    assert len(reg) == 1


def test_unknown_name_lists_registered_names_and_signature() -> None:
    reg = Registry("BACKBONE", "fn(**kwargs) -> Backbone")
    reg.register("mvit", object())
    reg.register("alpha", object())
    with pytest.raises(KeyError) as err:
        reg.get("vit")
    msg = str(err.value)
    assert "'vit'" in msg and "BACKBONE" in msg and "alpha, mvit" in msg
    assert "fn(**kwargs) -> Backbone" in msg
    with pytest.raises(KeyError, match=r"\(none\)"):
        Registry("EMPTY").get("x")


def test_invalid_names_and_unregister() -> None:
    reg = Registry("X")
    with pytest.raises(ValueError, match="non-empty strings"):
        reg.register(3, object())

    def fallback() -> None:
        pass

    assert reg.register("", fallback) is fallback and reg.get("fallback") is fallback
    reg.unregister("fallback")
    obj = object()
    reg.register("o", obj)
    assert reg.unregister("o") is obj and "o" not in reg and reg.unregister("o") is None
    assert "X registry" in reg.describe() and "(empty)" in reg.describe()


@pytest.mark.parametrize(
    "name",
    [n for n in registry_module.__all__ if n.endswith("_REGISTRY")],
)
def test_global_registries_are_documented(name: str) -> None:
    reg = getattr(registry_module, name)
    assert isinstance(reg, Registry) and reg.name
    assert "no signature documented" not in reg.describe()


def test_only_registries_that_are_looked_up_exist() -> None:
    """A registry nothing looks up by name must not exist: tasks (``resolve_task``), variants
    (``get_variant`` / ``create_model``) and converters (``get_converter`` / auto-detection)."""
    names = {n for n in registry_module.__all__ if n.endswith("_REGISTRY")}
    assert names == {"TASK_REGISTRY", "VARIANT_REGISTRY", "CONVERTER_REGISTRY"}
