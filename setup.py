"""The package list only; everything else is in pyproject.toml.

The repository keeps ``projects/`` (one sub-package per task) and ``configs/`` at its top; they
install as ``mvit_tasks.projects`` and ``mvit_tasks.configs`` (pyproject's package-dir mapping),
so the wheel has no generic top-level ``projects`` package. ``mvit_tasks/projects/__init__.py``
is the checkout's stand-in for that mapping and is not installed.
"""
from setuptools import find_packages, setup

CORE = find_packages(include=["mvit_tasks", "mvit_tasks.*"],
                     exclude=["mvit_tasks.projects", "mvit_tasks.projects.*"])
PROJECTS = ["mvit_tasks.projects"] + [f"mvit_tasks.projects.{p}" for p in find_packages("projects")]
CONFIGS = ["mvit_tasks.configs"]  # YAML fragments only (backbones/, schedules/)

setup(packages=CORE + PROJECTS + CONFIGS)
