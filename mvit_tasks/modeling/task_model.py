"""The model of any task's training config, in one call (``create_model(config_file=...)``).

A config that only uses core keys (``MODEL.*``, ``DATA.*``) builds a :class:`Classifier` in
core. A task's training config (``AVA.*``, ``COCO.*``, ``CLS.*`` keys, the engine's
``SOLVER.*`` / ``TRAIN.*``) is read with the keys of the task that owns it, and the model is
what that task's ``build_model()`` builds, ``MODEL.WEIGHTS`` included. The task is ``task=``
when given; otherwise it is detected: every registered task whose keys (plus the engine's)
read the file without an unknown-key error is a candidate, and among candidates related by
inheritance (``classification`` and its presets ``kinetics`` / ``ssv2`` / ``imagenet``, which
only change defaults) the most general is taken. Several unrelated candidates (a file with
no task keys) are an error that lists them.

The task object is built without its data: only :meth:`Task.__init__` of the base class runs
(no demo-data generation, no class-list or manifest files read), which is all that
``build_model`` of the built-in tasks needs.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

from torch import nn

logger = logging.getLogger(__name__)


def _load(config_file: str, opts: Sequence[str], task_cls: Any) -> Any:
    from ..config import load_config
    from ..engine.defaults import add_engine_config

    return load_config(config_file, list(opts),
                       extra_config_fns=[add_engine_config, task_cls.add_config])


def detect_task(config_file: str, opts: Sequence[str] = ()) -> Tuple[str, Any]:
    """``(task name, cfg)`` of the registered task that owns ``config_file``."""
    from ..config import UnknownKeyError
    from ..tasks import list_tasks, resolve_task

    accepted: Dict[str, Tuple[Type[Any], Any]] = {}
    errors: List[str] = []
    for name in list_tasks():
        try:
            cls = resolve_task(name)
            accepted[name] = (cls, _load(config_file, opts, cls))
        except UnknownKeyError as e:
            errors.append(f"{name}: {str(e).splitlines()[0]}")
        except Exception as e:  # noqa: BLE001 - a task that cannot read it is no candidate
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if not accepted:
        raise ValueError(f"no registered task reads '{config_file}':\n  " + "\n  ".join(errors))
    roots = [n for n, (c, _) in accepted.items()
             if not any(c is not o and issubclass(c, o) for o, _ in accepted.values())]
    if len(roots) > 1:
        raise ValueError(f"'{config_file}' is read by several unrelated tasks {sorted(roots)} "
                         "(no task keys in it?); pass task=NAME")
    name = roots[0]
    return name, accepted[name][1]


def build_task_model(task: Optional[str], config_file: str, opts: Sequence[str] = ()
                     ) -> Tuple[nn.Module, str]:
    """``(model, task name)``: ``task``'s (or the detected task's) ``build_model()`` for the
    config. ``opts`` are ``KEY VALUE`` overrides (e.g. ``MODEL.WEIGHTS zoo:mvitv2_s_16x4``)."""
    from ..tasks import Task, resolve_task

    if task:
        cls = resolve_task(task)
        cfg = _load(config_file, opts, cls)
    else:
        task, cfg = detect_task(config_file, opts)
        cls = resolve_task(task)
        logger.info("create_model: '%s' is a '%s' config", config_file, task)
    obj = cls.__new__(cls)
    Task.__init__(obj, cfg)  # without the task's data (see the module docstring)
    return obj.build_model(), task
