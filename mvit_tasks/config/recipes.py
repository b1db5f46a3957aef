"""Find a shipped config recipe by name after ``pip install``, or by path in a checkout.

``--config-file`` (and ``create_model(config_file=)``) take, in this order:

1. an existing file (any path, as in a checkout: ``projects/ava/configs/mvitv2_s_16x4_k400.yaml``);
2. the same repository-relative path inside the installed package (``projects/...`` ->
   ``mvit_tasks/projects/...``, ``configs/...`` -> ``mvit_tasks/configs/...``), so the commands
   of the READMEs work from any directory;
3. a recipe name: ``mvitv2_s_16x4_k400`` or ``ava/mvitv2_s_16x4_k400.yaml`` (project folder
   names shortened as in ``coco``), searched in every project's ``configs/`` and in
   ``configs/``; a name that matches several recipes is an error listing them.
"""
from __future__ import annotations

import os
from typing import Dict, List

__all__ = ["config_roots", "list_recipes", "resolve_config_file"]


def config_roots() -> Dict[str, str]:
    """``{"projects": dir, "configs": dir}`` of the shipped configs (installed or checkout)."""
    import mvit_tasks
    import mvit_tasks.projects

    package_dir = os.path.dirname(os.path.abspath(mvit_tasks.__file__))
    configs = os.path.join(package_dir, "configs")  # the wheel's mvit_tasks/configs
    if not os.path.isdir(configs):  # a checkout: the repository's configs/ next to the package
        configs = os.path.join(os.path.dirname(package_dir), "configs")
    return {"projects": list(mvit_tasks.projects.__path__)[0], "configs": configs}


def list_recipes() -> List[str]:
    """Repository-relative paths of every shipped YAML file (``projects/ava/configs/x.yaml``,
    ``configs/backbones/y.yaml``), sorted."""
    found = []
    for prefix, root in config_roots().items():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("tests", "__pycache__"))
            for f in filenames:
                if f.endswith(".yaml"):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    found.append("/".join([prefix, *rel.split(os.sep)]))
    return sorted(found)


def _matches(recipe: str, name: str) -> bool:
    """Whether ``name`` (``x``, ``x.yaml``, ``ava/x``, ``coco/x``) names ``recipe``."""
    if not name.endswith(".yaml"):
        name += ".yaml"
    parts = recipe.split("/")
    if parts[-1] != os.path.basename(name):
        return False
    folder = os.path.dirname(name).replace(os.sep, "/").strip("/")
    if not folder:
        return True
    owner = parts[1] if parts[0] == "projects" else "/".join(parts[1:-1])
    return owner == folder or owner.startswith(folder + "_")


def resolve_config_file(path: str) -> str:
    """The file ``path`` names (see the module doc); raises ``FileNotFoundError`` naming it."""
    expanded = os.path.expanduser(path)
    if os.path.isfile(expanded):
        return expanded
    roots = config_roots()
    rel = expanded.replace(os.sep, "/")
    while rel.startswith("./"):
        rel = rel[2:]
    head, _, tail = rel.partition("/")
    if head in roots and tail:
        candidate = os.path.join(roots[head], *tail.split("/"))
        if os.path.isfile(candidate):
            return candidate
    if not os.path.isabs(expanded):
        hits = [r for r in list_recipes() if _matches(r, rel)]
        if len(hits) == 1:
            head, _, tail = hits[0].partition("/")
            return os.path.join(roots[head], *tail.split("/"))
        if len(hits) > 1:
            raise FileNotFoundError(f"Config file '{path}' does not exist, and it names several "
                                    f"shipped recipes: {', '.join(hits)}; give one of them")
    raise FileNotFoundError(f"Config file '{path}' does not exist (neither a path nor the name "
                            "of a shipped recipe; `mvit-train --list-configs` lists them)")
