"""Task registry lookup: ``resolve_task(name)`` for ``tools/train_net.py --task NAME``.

A name is found, in this order:

1. in ``TASK_REGISTRY`` (already imported);
2. after importing the ``task`` module of every built-in project ``mvit_tasks.projects.<name>``
   (the repository's ``projects/<name>/task.py``, or the package itself when it has none), which
   registers its tasks; project ``__init__`` files stay light, so the stand-alone evaluators
   (``tools/eval_ava.py``) do not load the models;
3. in the ``mvit_tasks.tasks`` entry-point group of installed distributions
   (``name = package.module:TaskClass``);
4. as a module path: ``package.module`` (imported; it must register exactly one new task, or
   one named like the module's last part) or ``package.module:TaskClass``.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from importlib import metadata
from typing import Any, Dict, List, Type

from mvit_tasks.registry import TASK_REGISTRY
from mvit_tasks.tasks.base import HookBase, Task

ENTRY_POINT_GROUP = "mvit_tasks.tasks"
_LOAD_ERRORS: Dict[str, str] = {}
_LOADED = False


def builtin_project_packages() -> List[str]:
    """Module names of the built-in projects (``mvit_tasks.projects.<name>``), sorted."""
    import mvit_tasks.projects as projects

    prefix = projects.__name__ + "."
    return sorted(info.name for info in pkgutil.iter_modules(projects.__path__, prefix)
                  if info.ispkg)


def project_submodules(submodule: str) -> Dict[str, Any]:
    """``{project package: its imported ``submodule``}`` for the built-in projects that have one
    (``"demo"``, ``"benchmark"``); the core names no project."""
    found: Dict[str, Any] = {}
    for package in builtin_project_packages():
        name = f"{package}.{submodule}"
        if importlib.util.find_spec(name) is not None:
            found[package] = importlib.import_module(name)
    return found


def load_builtin_projects() -> Dict[str, str]:
    """Import every built-in project (its ``task`` module, else the package); returns
    ``{module: error}`` for the ones that failed."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for package in builtin_project_packages():
            task_module = package + ".task"
            try:
                importlib.import_module(
                    task_module if importlib.util.find_spec(task_module) else package)
            except Exception as e:  # noqa: BLE001 - reported by list_tasks / resolve_task
                _LOAD_ERRORS[package] = f"{type(e).__name__}: {e}"
    return dict(_LOAD_ERRORS)


def _entry_points() -> Dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def list_tasks() -> List[str]:
    """Names of all registered tasks (built-in projects and entry points included)."""
    load_builtin_projects()
    return sorted(set(name for name, _ in TASK_REGISTRY) | set(_entry_points()))


_FROM_MODULE: Dict[str, Type[Task]] = {}  # spec -> class: a module registers only once


def _from_module(spec: str) -> Type[Task]:
    if spec in _FROM_MODULE:
        return _FROM_MODULE[spec]
    _FROM_MODULE[spec] = cls = _find_in_module(spec)
    return cls


def _find_in_module(spec: str) -> Type[Task]:
    module_name, _, attr = spec.partition(":")
    before = set(name for name, _ in TASK_REGISTRY)
    module = importlib.import_module(module_name)
    if attr:
        cls = getattr(module, attr)
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"{spec} is not a Task subclass")
        return cls
    new = sorted(set(name for name, _ in TASK_REGISTRY) - before)
    last = module_name.rsplit(".", 1)[-1]
    if last in TASK_REGISTRY:
        return TASK_REGISTRY.get(last)
    if len(new) == 1:
        return TASK_REGISTRY.get(new[0])
    raise KeyError(f"importing {module_name!r} registered {new or 'no'} tasks; name one with "
                   f"'{module_name}:TaskClass' or register exactly one")


def resolve_task(name: str) -> Type[Task]:
    """The Task class for ``name`` (see the module docstring for the lookup order)."""
    if name not in TASK_REGISTRY:
        load_builtin_projects()
    if name in TASK_REGISTRY:
        cls = TASK_REGISTRY.get(name)
    elif name in _entry_points():
        cls = _from_module(_entry_points()[name])
    elif "." in name or ":" in name:
        cls = _from_module(name)
    else:
        errors = "".join(f"\n  {m}: {e}" for m, e in _LOAD_ERRORS.items())
        raise KeyError(f"unknown task {name!r}; registered: {list_tasks()}"
                       + (f"\nprojects that failed to import:{errors}" if errors else ""))
    cls.name = name
    return cls


__all__ = ["HookBase", "Task", "TASK_REGISTRY", "builtin_project_packages", "list_tasks",
           "load_builtin_projects", "project_submodules", "resolve_task"]
