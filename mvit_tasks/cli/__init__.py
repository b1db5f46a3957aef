"""The command-line tools: ``mvit-train`` (``tools/train_net.py``), ``mvit-eval-ava``,
``mvit-eval-coco``, ``mvit-demo``, ... Each module has ``main(argv)`` (callable from Python) and
``cli()`` (the console script). The ``tools/*.py`` and ``datasets/prepare_*.py`` files of a
checkout are thin wrappers around them.

Importing this package sets one environment default for the tools' own process, before torch is
loaded: ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning, which matters
on shared CPUs); a value the user set is kept.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
