"""The classification tasks end to end through tools/train_net.py: multi-view evaluation with a
corrupt file (skipped, counted, named), manifest errors with line numbers, the SSv2 and
ImageNet presets on real files."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from mvit_tasks.data.manifest import ManifestError
from mvit_tasks.data.synthetic import generate_moving_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO = os.path.join(ROOT, "projects", "video_classification", "configs", "demo_moving_shapes.yaml")
FAST = ["DATA_LOADER.NUM_WORKERS", "0", "TENSORBOARD.ENABLE", "False", "TRAIN.BATCH_SIZE", "4",
        "TEST.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "1", "CLS.DEMO_DATA", "False"]


def _train_net():
    from mvit_tasks.cli.train_net import main

    return main


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    generate_moving_shapes(str(root), 2, 1, num_frames=16, size=36)
    return root


def test_multi_view_eval_skips_and_counts_a_corrupt_video(clips, tmp_path):
    val = (clips / "val.csv").read_text().splitlines()
    broken = tmp_path / "broken.mp4"
    good = clips / val[1].split(",")[0]
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # truncated mp4
    (tmp_path / "val.csv").write_text("\n".join(val + [f"{broken},0"]) + "\n")
    out = tmp_path / "out"
    report = _train_net()(["--task", "classification", "--config-file", DEMO, *FAST,
                           "CLS.DATA_DIR", str(clips), "CLS.VAL_MANIFEST", str(tmp_path / "val.csv"),
                           "CLS.PATH_PREFIX", str(clips),
                           "CLS.NUM_ENSEMBLE_VIEWS", "2", "CLS.NUM_SPATIAL_CROPS", "3",
                           # 6 of 42 views fail (14%): allowed here; at the default 5% the
                           # evaluation stops (TooManyFailuresError, tested for AVA)
                           "TRAIN.MAX_FAILED_FRACTION", "0.2", "OUTPUT_DIR", str(out)])
    metrics = report["results"]["classification"]
    assert metrics["num_videos"] == 6 and metrics["num_views"] == 36  # 2 clips x 3 crops each
    assert metrics["num_videos_fewer_views"] == 0
    assert [s["path"] for s in report["skipped_eval"]] == [str(broken)]
    assert report["skipped_eval"][0]["count"] == 6  # each of its 6 views failed
    results = json.loads((out / "eval" / "epoch_0001" / "results.json").read_text())
    assert len(results["skipped"]) == 6


def test_unknown_label_stops_with_file_and_line(clips, tmp_path):
    rows = (clips / "train.csv").read_text().splitlines()
    rows.insert(3, "train/move_left/00000.mp4,jump")
    bad = tmp_path / "train.csv"
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(ManifestError, match=rf"{bad}:4: unknown label 'jump'"):
        _train_net()(["--task", "classification", "--config-file", DEMO, *FAST,
                      "CLS.DATA_DIR", str(clips), "CLS.TRAIN_MANIFEST", str(bad),
                      "CLS.PATH_PREFIX", str(clips), "OUTPUT_DIR", str(tmp_path / "o")])


def test_ssv2_preset_swaps_flipped_labels_and_trains(clips, tmp_path):
    pairs = tmp_path / "flip_pairs.json"
    pairs.write_text(json.dumps({"0": 1, "1": 0}))
    report = _train_net()(["--task", "ssv2", "--config-file", DEMO, *FAST,
                           "CLS.DATA_DIR", str(clips), "CLS.FLIP", "True",
                           "CLS.FLIP_PAIRS_FILE", str(pairs), "MODEL.NUM_CLASSES", "6",
                           "OUTPUT_DIR", str(tmp_path / "o")])
    assert report["iterations"] == 3 and report["results"]["ssv2"]["num_videos"] == 6


def test_imagenet_preset_trains_the_2d_backbone_on_image_folders(tmp_path):
    rng = np.random.default_rng(0)
    rows = {"train": [], "val": []}
    for split, n in (("train", 8), ("val", 2)):
        for c, name in enumerate(("n01", "n02")):
            os.makedirs(tmp_path / split / name, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
                img[..., c] = 255  # class = the saturated channel
                cv2.imwrite(str(tmp_path / split / name / f"{i}.JPEG"), img)
                rows[split].append(f"{split}/{name}/{i}.JPEG,{name}")
    for split, r in rows.items():
        (tmp_path / f"{split}.csv").write_text("path,label\n" + "\n".join(r) + "\n")
    (tmp_path / "labels.txt").write_text("n01\nn02\n")
    tiny = ["MODEL.VARIANT", "mvitv2_t", "MODEL.NUM_CLASSES", "2", "MODEL.MVIT.DEPTH", "2",
            "MODEL.MVIT.EMBED_DIM", "16", "MODEL.MVIT.DIM_MUL", "[[1, 2.0]]",
            "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]", "MODEL.MVIT.POOL_Q_STRIDE", "[[1, 2, 2]]",
            "MODEL.MVIT.SPATIAL_SIZE", "[32, 32]", "DATA.TRAIN_CROP_SIZE", "32",
            "DATA.TEST_CROP_SIZE", "32", "CLS.TEST_SHORT_SIDE", "36"]
    report = _train_net()(["--task", "imagenet", *FAST, *tiny, "CLS.DATA_DIR", str(tmp_path),
                           "OUTPUT_DIR", str(tmp_path / "o")])
    metrics = report["results"]["imagenet"]
    assert report["iterations"] == 4 and metrics["num_videos"] == 4
