"""Engine-test fixtures: ``run`` calls tools/train_net.py in-process on the toy task
(tests/engine/toy_task.py); this folder goes on ``sys.path`` for ``toy_task`` and
``engine_testing``."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from engine_testing import TASK, load_train_net  # noqa: E402


@pytest.fixture()
def run() -> Callable[..., Dict[str, Any]]:
    """``run(out, *KEY_VALUE, flags=())``: one train_net run of the toy task (4 epochs of 8
    steps unless told otherwise); returns what ``main`` returns."""
    tool = load_train_net()

    def _run(out: Any, *opts: str, flags: Any = ()) -> Dict[str, Any]:
        argv = ["--task", TASK, *flags, "OUTPUT_DIR", str(out), "DATA_LOADER.NUM_WORKERS", "0",
                "TRAIN.BATCH_SIZE", "8", "TEST.BATCH_SIZE", "4", "SOLVER.BASE_LR", "0.01",
                "SOLVER.MAX_EPOCH", "4", "SOLVER.WARMUP_EPOCHS", "0.5", "LOG_PERIOD", "2", *opts]
        return tool.main(argv)

    return _run
