"""Video / image classification project: ``task.py`` registers ``classification``,
``kinetics``, ``ssv2`` and ``imagenet`` (imported by ``mvit_tasks.tasks`` on lookup)."""
