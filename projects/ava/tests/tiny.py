"""Shared by the AVA tests: a tiny MViTv2 for the demo config and a generated demo set."""
from __future__ import annotations

import os
from typing import Dict, List

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "demo_synthetic.yaml")
# config overrides: a 2-block MViTv2 on 4 x 32 x 32 clips, one short epoch, no TensorBoard
TINY_OPTS: List[str] = [
    "MODEL.MVIT.NUM_FRAMES", "4", "MODEL.MVIT.SPATIAL_SIZE", "[32, 32]",
    "MODEL.MVIT.DEPTH", "2", "MODEL.MVIT.EMBED_DIM", "16",
    "MODEL.MVIT.DIM_MUL", "[[1, 2.0]]", "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]",
    "MODEL.MVIT.POOL_Q_STRIDE", "[[1, 1, 2, 2]]", "DATA.NUM_FRAMES", "4",
    "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
    "AVA.TRAIN_JITTER_SCALES", "[32, 36]", "AVA.TEST_SHORT_SIDE", "32",
    "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4", "TRAIN.MAX_ITERS", "2",
    "SOLVER.MAX_EPOCH", "1", "TENSORBOARD.ENABLE", "False",
]


def tiny_demo(root: str, num_train: int = 2, num_val: int = 2) -> Dict[str, str]:
    """A 32 x 48 demo set with 3 keyframes per segment (``generate_demo_ava``'s paths)."""
    from mvit_tasks.projects.ava.synthetic import generate_demo_ava

    return generate_demo_ava(root, num_train_videos=num_train, num_val_videos=num_val,
                             num_keyframes=3, size=(32, 48), seed=1)


def run_opts(data: str, out: str) -> List[str]:
    """``KEY VALUE`` overrides that point the demo config at ``data`` and ``out``."""
    return ["AVA.DEMO_DATA", "False", "AVA.DATA_DIR", data, "OUTPUT_DIR", out, *TINY_OPTS]
