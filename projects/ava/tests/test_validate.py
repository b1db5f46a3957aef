"""``datasets/prepare_ava.py validate`` on a tree laid out as SlowFast's DATASET.md describes.

The fixture follows the official names and formats: ``annotations/`` with the AVA v2.2 files
(and a v2.1 label map in its ``item { id }`` form), LFB/SlowFast person boxes with an empty
action column, the ``person_box_67091280_iou90/`` files with ``-1`` negatives, ``frame_lists/
{train,val}.csv`` with the ``original_vido_id video_id frame_id path labels`` header, and
``frames/<id>/<id>_%06d.jpg``.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mvit_tasks.cli.prepare_ava import main
from mvit_tasks.projects.ava.converters.validate import classify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
VIDS = {"train": ["-5KQ66BBWC4", "5BDj0ow5hnA"], "val": ["1j20qq1JyX4"]}


def _w(path, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def make_tree(root, missing_frame: bool = False, odd_box: bool = False) -> str:
    ann = os.path.join(root, "annotations")
    pb = os.path.join(ann, "person_box_67091280_iou90")
    for split, vids in VIDS.items():
        boxes = ("0.1,0.2,0.5,0.9", "0.6,0.1,0.9,0.8")  # person 0 does two actions
        gt = "".join(f"{v},{s:04d},{boxes[p]},{a},{p}\n" for v in vids for s in (902, 903)
                     for p, a in ((0, 12), (0, 79), (1, 80)))
        _w(os.path.join(ann, f"ava_{split}_v2.2.csv"), gt)
        det = "".join(f"{v},{s:04d},0.1,0.2,0.5,0.9,,0.98\n{v},{s:04d},0.6,0.1,0.9,0.8,,0.4\n"
                      for v in vids for s in (902, 903))
        if odd_box and split == "val":
            det += f"{vids[0]},0904,0.1,0.2,1.04,0.9,,0.9\n"  # x2 > 1: read, reported
        _w(os.path.join(ann, f"ava_{split}_predicted_boxes.csv"), det)
        neg = "".join(f"{v},{s:04d},0.1,0.2,0.5,0.9,12,0.98\n{v},{s:04d},0.6,0.1,0.9,0.8,-1,"
                      "0.95\n" for v in vids for s in (902, 903))
        name = ("ava_detection_train_boxes_and_labels_include_negative_v2.2.csv"
                if split == "train" else "ava_detection_val_boxes_and_labels.csv")
        _w(os.path.join(pb, name), neg)
        lines = ["original_vido_id video_id frame_id path labels"]
        for i, v in enumerate(vids):
            for k in range(100):
                lines.append(f"{v} {i} {k} {v}/{v}_{k + 1:06d}.jpg \"\"")
                if not (missing_frame and v == VIDS["val"][0] and k == 60):
                    _w(os.path.join(root, "frames", v, f"{v}_{k + 1:06d}.jpg"), "")
        _w(os.path.join(root, "frame_lists", f"{split}.csv"), "\n".join(lines) + "\n")
    _w(os.path.join(ann, "ava_val_excluded_timestamps_v2.2.csv"), f"{VIDS['val'][0]},0903\n")
    _w(os.path.join(ann, "ava_action_list_v2.2_for_activitynet_2019.pbtxt"), "".join(
        f'label {{\n  name: "c{i}"\n  label_id: {i}\n  label_type: PERSON_MOVEMENT\n}}\n'
        for i in (12, 79, 80)))
    _w(os.path.join(ann, "ava_action_list_v2.1_for_activitynet_2018.pbtxt.txt"), "".join(
        f'item {{\n  name: "c{i}"\n  id: {i}\n}}\n' for i in (12, 79, 80)))
    _w(os.path.join(ann, "ava_included_timestamps_v2.2.txt"),
       "".join(f"{s:04d}\n" for s in range(902, 1799)))
    _w(os.path.join(ann, "README.txt"), "notes\n")
    return str(root)


@pytest.mark.parametrize("name,kind", [
    ("ava_val_v2.2.csv", "groundtruth"), ("ava_train_v2.1.csv.gz", "groundtruth"),
    ("ava_test_predicted_boxes.csv", "detections"),
    ("ava_detection_val_boxes_and_labels.csv", "detections"),
    ("ava_detection_train_boxes_and_labels_include_negative.csv", "detections"),
    ("ava_train_excluded_timestamps_v2.1.csv", "exclusions"),
    ("ava_action_list_v2.2.pbtxt", "labelmap"), ("ava_action_list_v2.1.pbtxt", "labelmap"),
    ("frame_lists/val.csv", "frame_list"), ("ava_file_names_trainval_v2.1.txt", "file_names"),
    ("ava_val_v2.3.csv", None), ("train.csv", None),
])
def test_official_names_are_recognised(name, kind):
    assert classify(os.path.join("ava", name)) == kind


def test_whole_tree_is_read(tmp_path, capsys):
    root = make_tree(tmp_path / "ava")
    assert main(["validate", "--root", root]) == 0
    out = capsys.readouterr().out
    pb = os.path.join("annotations", "person_box_67091280_iou90")
    for line in [
        "annotations/ava_train_v2.2.csv: groundtruth, 4 keyframes, 8 boxes (8 labelled), 2 videos",
        "annotations/ava_val_predicted_boxes.csv: detections, 2 keyframes, 4 boxes (0 labelled)",
        f"{pb}/ava_detection_train_boxes_and_labels_include_negative_v2.2.csv: detections, "
        "4 keyframes, 8 boxes (4 labelled), 2 videos",
        f"{pb}/ava_detection_val_boxes_and_labels.csv: detections",
        "annotations/ava_action_list_v2.1_for_activitynet_2018.pbtxt.txt: label map, 3 classes",
        "annotations/ava_val_excluded_timestamps_v2.2.csv: exclusions, 1 keyframes",
        "annotations/ava_included_timestamps_v2.2.txt: timestamps list, 897 entries",
        "frame_lists/train.csv: frame list, 2 videos, 100..100 frames per video",
        "frame_lists/val.csv: 5 frames of 1 videos looked up",
        "not recognised (skipped): annotations/README.txt", "warnings: 0",
    ]:
        assert line in out, line


def test_warnings_are_counted_and_strict_refuses(tmp_path, capsys):
    root = make_tree(tmp_path / "ava", missing_frame=True, odd_box=True)
    assert main(["validate", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "warnings: 2" in out and "1 of 5 sampled frames missing" in out
    assert "ava_val_predicted_boxes.csv:5: 1 row with a box coordinate outside [0, 1]" in out
    assert main(["validate", "--root", root, "--strict"]) == 2


def test_bad_row_in_a_nested_file_exits_2_with_file_and_line(tmp_path):
    root = make_tree(tmp_path / "ava")
    bad = os.path.join(root, "annotations", "person_box_67091280_iou90",
                       "ava_detection_val_boxes_and_labels.csv")
    with open(bad, "a") as f:
        f.write("1j20qq1JyX4,0904,0.1,0.2,0.5\n")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "datasets", "prepare_ava.py"),
                           "validate", "--root", root], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{bad}:5: 5 fields" in proc.stderr
