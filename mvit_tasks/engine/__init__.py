"""Engine: training loop, checkpoints, distributed launch, samplers, optimisation, logging.

Import submodules directly (``from mvit_tasks.engine.trainer import Trainer``); this package
file stays import-light so tools can read configs without loading the trainer.
"""
