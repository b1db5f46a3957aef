"""``tools/demo.py --task ava --boxes``: ground-truth CSVs as well as detection CSVs.

In ground truth (``ava_val_v2.2.csv``) the 8th column is a person id; read as a detector score
it would be thresholded at ``AVA.DETECTION_SCORE_THRESH`` and person 0's boxes would vanish.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from mvit_tasks.data.video_io import write_video
from mvit_tasks.projects.ava.evaluation.io import sniff_box_kind

from .tiny import CONFIG, TINY_OPTS


def _w(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text,kind", [
    ("v,0902,0.1,0.2,0.5,0.9,12,0\nv,0902,0.6,0.1,0.9,0.8,80,1\n", "groundtruth"),
    ("v,0902,0.1,0.2,0.5,0.9,12\n", "groundtruth"),                      # no 8th column
    ("v,0902,0.1,0.2,0.5,0.9,,0.998\n", "detections"),                   # LFB predicted boxes
    ("v,0902,0.1,0.2,0.5,0.9,-1,0.95\nv,0902,0.1,0.2,0.5,0.9,3,0.9\n", "detections"),
    ("v,0902,0.100,0.200,0.500,0.900,1,0.000125\n", "detections"),        # ava_detections.csv
    ("v,0902,0.1,0.2,0.5,0.9,,1\n", "detections"),                       # no action: a box file
])
def test_box_file_kind_is_told_from_the_file(tmp_path, text, kind):
    assert sniff_box_kind(_w(tmp_path, "b.csv", text)) == kind


def _run(tmp_path, boxes: str, *extra: str) -> str:
    from mvit_tasks.projects.ava.demo import main

    video = str(tmp_path / "v.mp4")  # a 4-s segment from second 900 at 10 fps
    write_video(video, np.full((40, 32, 48, 3), 90, np.uint8), fps=10)
    lm = _w(tmp_path, "lm.pbtxt", "".join(f'item {{\n  name: "a{i}"\n  id: {i}\n}}\n'
                                          for i in range(1, 5)))
    out = str(tmp_path / "vis")
    main(["--config-file", CONFIG, "--random-weights", "--video", video, "--boxes", boxes,
          "--labelmap", lm,
          "--output", out, *extra, "AVA.DEMO_DATA", "False", "AVA.DATA_DIR", str(tmp_path),
          "OUTPUT_DIR", out, *TINY_OPTS])
    return out


def test_ground_truth_boxes_of_person_0_are_kept(tmp_path, capsys):
    gt = _w(tmp_path, "ava_val_v2.2.csv", "v,0902,0.1,0.2,0.5,0.9,1,0\nv,0902,0.1,0.2,0.5,0.9,3,0\n"
            "v,0903,0.5,0.2,0.9,0.9,2,0\n")
    out = _run(tmp_path, gt)
    assert "groundtruth (auto), 2 keyframes of 'v'" in capsys.readouterr().out
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["v_0902.png",
                                                                        "v_0903.png"]
    # read as detections, the person ids 0 fall under the 0.8 threshold
    with pytest.raises(SystemExit, match=r"no boxes of video 'v' above 0.8 \(detections\)"):
        _run(tmp_path, gt, "--boxes-kind", "detections")


def test_the_demo_refuses_to_show_random_actions_unless_asked(tmp_path):
    from mvit_tasks.projects.ava.demo import main

    gt = _w(tmp_path, "gt.csv", "v,0902,0.1,0.2,0.5,0.9,1,0\n")
    with pytest.raises(SystemExit, match=r"no weights .* --random-weights"):
        main(["--config-file", CONFIG, "--video", str(tmp_path / "v.mp4"), "--boxes", gt,
              "--output", str(tmp_path / "vis"), "AVA.DEMO_DATA", "False", *TINY_OPTS])
