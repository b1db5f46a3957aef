"""Built-in task projects, installed as ``mvit_tasks.projects`` (one sub-package per task; see
each folder's README). Import them as ``mvit_tasks.projects.<name>``, never as ``projects``."""
