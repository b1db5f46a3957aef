"""The built-in task projects: ``mvit_tasks.projects.<name>`` (``ava``, ``coco_detection``,
``video_classification``).

In a wheel this package *is* the repository's ``projects/`` folder (pyproject.toml maps it here,
so no generic top-level ``projects`` package is installed). In a checkout this file stands in for
it: the package's path is the repository's ``projects/`` folder, whose ``__init__.py`` runs as
this package's body. This file itself is never installed.
"""
import os as _os

_REPO_PROJECTS = _os.path.join(
    _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))), "projects")
__path__ = [_REPO_PROJECTS]
_INIT = _os.path.join(_REPO_PROJECTS, "__init__.py")
if _os.path.isfile(_INIT):
    with open(_INIT, encoding="utf-8") as _f:
        exec(compile(_f.read(), _INIT, "exec"))
