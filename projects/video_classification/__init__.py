"""Video / image classification project: registers ``classification``, ``kinetics``,
``ssv2`` and ``imagenet`` (see ``task.py`` and this folder's README)."""
from . import task  # noqa: F401  (registers the tasks)
