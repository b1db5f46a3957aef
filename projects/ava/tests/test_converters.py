"""AVA converters on tiny real-format files: grouping, validation (file:line), IoU rule, CSV out."""
import gzip

import numpy as np
import pytest

from mvit_tasks.projects.ava.converters import (
    box_iou, keyframe_frame_index, merge_detected_boxes, read_ava_boxes, read_frame_list,
    write_detection_csv,
)
from mvit_tasks.projects.ava.evaluation.io import AvaFormatError, read_box_csv

GT = ("vid_a,0902,0.1,0.2,0.5,0.9,12,0\n"
      "vid_a,902,0.1,0.2,0.5,0.9,79,0\n"
      "vid_a,0902,0.6,0.1,0.9,0.8,12,1\n"
      "vid_b,0903,0.0,0.0,1.0,1.0,1,0\n")


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_ground_truth_groups_boxes_and_labels(tmp_path):
    recs = read_ava_boxes(_write(tmp_path, "gt.csv", GT), valid_ids=set(range(1, 81)))
    assert list(recs) == [("vid_a", 902), ("vid_b", 903)]  # "0902" and "902" are one keyframe
    a = recs[("vid_a", 902)]
    np.testing.assert_allclose(a.boxes, [[0.1, 0.2, 0.5, 0.9], [0.6, 0.1, 0.9, 0.8]], atol=1e-7)
    assert a.labels == [[12, 79], [12]]
    assert a.scores.tolist() == [1.0, 1.0]  # the person id column is not a score


def test_gzipped_file_reads_the_same(tmp_path):
    p = tmp_path / "gt.csv.gz"
    p.write_bytes(gzip.compress(GT.encode()))
    recs = read_ava_boxes(str(p))
    assert recs[("vid_a", 902)].labels == [[12, 79], [12]]


@pytest.mark.parametrize("row, message", [
    ("vid_a,09:02,0.1,0.2,0.5,0.9,12,0", "unparsable timestamp"),
    ("vid_a,0902,0.1,0.2,0.5,0.9,81,0", "unknown action id 81"),
    ("vid_a,0902,0.1,0.2,0.5,0.9,,0", "unparsable action_id ''"),
    ("vid_a,0902,0.1,0.2,0.5,0.9,-1,0", "missing action id -1 in a ground-truth file"),
    ("vid_a,0902,0.1,0.2,0.5", "5 fields"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    path = _write(tmp_path, "bad.csv", GT + row + "\n")
    with pytest.raises(AvaFormatError) as e:
        read_ava_boxes(path, valid_ids=set(range(1, 81)))
    assert str(e.value).startswith(f"{path}:5: ")
    assert message in str(e.value)


def test_odd_boxes_are_kept_and_reported_as_the_evaluator_does(tmp_path, caplog):
    # the evaluator's reader and rules: kept as they are (the dataset clips to the frame),
    # listed with file:line; strict refuses; a non-finite box cannot be cut: dropped, listed
    rows = ("vid_a,0902,0.1,0.2,1.5,0.9,12,0\n"    # x2 > 1
            "vid_a,0903,0.5,0.2,0.1,0.9,12,0\n"    # inverted
            "vid_a,0904,0.1,0.2,nan,0.9,12,0\n")   # not finite
    path = _write(tmp_path, "odd.csv", GT + rows)
    found = []
    recs = read_ava_boxes(path, valid_ids=set(range(1, 81)), findings=found)
    assert [(f.code, f.first_line) for f in found] == [
        ("non_finite", 7), ("out_of_range", 5), ("inverted", 6)]
    np.testing.assert_allclose(recs[("vid_a", 902)].boxes[-1], [0.1, 0.2, 1.5, 0.9], atol=1e-7)
    np.testing.assert_allclose(recs[("vid_a", 903)].boxes[0], [0.5, 0.2, 0.1, 0.9], atol=1e-7)
    assert ("vid_a", 904) not in recs
    with caplog.at_level("WARNING"):
        read_ava_boxes(path)
    assert f"{path}:6: 1 row with an inverted box" in caplog.text
    with pytest.raises(AvaFormatError, match=r"odd.csv:5: row with a box coordinate outside "
                                             r"\[0, 1\].*strict"):
        read_ava_boxes(path, strict=True)


def test_detections_unlabelled_and_score_threshold(tmp_path):
    det = ("vid_a,0902,0.1,0.2,0.5,0.9,,0.95\n"
           "vid_a,0902,0.6,0.1,0.9,0.8,-1,0.79\n"
           "vid_a,0902,0.6,0.1,0.9,0.8,-1,0.80\n"
           "vid_c,0910,0.2,0.2,0.3,0.3,,0.5\n")
    recs = read_ava_boxes(_write(tmp_path, "det.csv", det), allow_unlabelled=True,
                          score_thresh=0.8)
    assert list(recs) == [("vid_a", 902)]  # vid_c's only box is under the threshold
    assert recs[("vid_a", 902)].labels == [[], []]
    np.testing.assert_allclose(recs[("vid_a", 902)].scores, [0.95, 0.80], atol=1e-7)


def test_detected_boxes_take_labels_at_iou_09(tmp_path):
    gt = read_ava_boxes(_write(tmp_path, "gt.csv", "v,0902,0.1,0.1,0.5,0.5,3,0\n"))
    # IoU with the GT box: 0.4 * 0.38 / 0.16 = 0.95; 0.2 * 0.2 / (0.16 + 0.16 - 0.04); 1
    det = read_ava_boxes(_write(tmp_path, "det.csv",
                                "v,0902,0.1,0.1,0.5,0.48,,0.9\n"
                                "v,0902,0.3,0.3,0.7,0.7,,0.9\n"
                                "v,0902,0.1,0.1,0.5,0.5,,0.9\n"), allow_unlabelled=True)
    iou = box_iou(det[("v", 902)].boxes, gt[("v", 902)].boxes)[:, 0]
    np.testing.assert_allclose(iou, [0.95, 0.04 / 0.28, 1.0], rtol=1e-5)
    merged = merge_detected_boxes(gt, det, 0.9, include_negatives=True)[("v", 902)]
    assert merged.labels == [[3], [3], []]  # GT, matched detection, negative; exact GT not twice
    no_neg = merge_detected_boxes(gt, det, 0.9, include_negatives=False)[("v", 902)]
    assert no_neg.labels == [[3], [3]]
    assert gt[("v", 902)].labels == [[3]]  # inputs are not modified


def test_frame_list_and_keyframe_index(tmp_path):
    text = ("original_vido_id video_id frame_id path labels\n"
            "vid 0 1 vid/vid_000002.jpg \"\"\n"
            "vid 0 0 vid/vid_000001.jpg \"\"\n")
    assert read_frame_list(_write(tmp_path, "train.csv", text)) == {
        "vid": ["vid/vid_000001.jpg", "vid/vid_000002.jpg"]}
    with pytest.raises(AvaFormatError, match=r"train2.csv:4: .*listed twice"):
        read_frame_list(_write(tmp_path, "train2.csv", text + "vid 0 0 vid/x.jpg \"\"\n"))
    assert keyframe_frame_index(902) == 60 and keyframe_frame_index(1798) == 26940
    assert keyframe_frame_index(903, fps=10, start_sec=900) == 30


def test_write_detection_csv_roundtrip(tmp_path):
    outputs = [{"video_id": "v1", "timestamp": 902,
                "boxes": np.array([[0.1, 0.2, 0.3, 0.4]]), "scores": np.array([[0.5, 0.25, 1.0]])},
               {"video_id": "v2", "timestamp": 1000,
                "boxes": np.zeros((0, 4)), "scores": np.zeros((0, 3))}]
    path = str(tmp_path / "det.csv")
    assert write_detection_csv(path, outputs, class_ids=[1, 2, 3], keep_ids={1, 3}) == 2
    assert open(path).read().splitlines() == ["v1,0902,0.100,0.200,0.300,0.400,1,0.500000",
                                              "v1,0902,0.100,0.200,0.300,0.400,3,1.000000"]
    table = read_box_csv(path)
    assert table.action.tolist() == [1, 3] and table.score.tolist() == [0.5, 1.0]


def test_prepare_ava_extracts_frames_at_the_target_rate(tmp_path):
    from mvit_tasks.cli.prepare_ava import extract_frames
    from mvit_tasks.data.video_io import write_video

    video = str(tmp_path / "seg.mp4")  # a cut segment: frame 0 is second 900
    write_video(video, np.zeros((20, 16, 16, 3), np.uint8), fps=10)
    paths = extract_frames(video, str(tmp_path / "frames"), fps=20)
    assert len(paths) == 40 and paths[0].endswith("seg/seg_000001.jpg")
