"""COCO detection project: MViTv2 -> FPN -> Mask R-CNN. ``task.py`` registers the task
``coco`` (imported by ``mvit_tasks.tasks`` on lookup); this file stays import-free so the
stand-alone evaluator (``tools/eval_coco.py``) does not load the models."""
