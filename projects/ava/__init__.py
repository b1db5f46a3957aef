"""AVA v2.2 project: ``task.py`` registers the ``ava`` task (imported by ``mvit_tasks.tasks``
on lookup); the frame-mAP evaluator lives in ``evaluation/`` (see this folder's README).
Kept import-free so ``tools/eval_ava.py`` does not load torch."""
