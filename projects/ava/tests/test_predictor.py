"""AvaPredictor and ``tools/demo.py --task ava`` without ``--boxes``: a person detector (the COCO
project's, or torchvision's Faster R-CNN from a weights file) finds the keyframe boxes; captions
stay inside the frame and apart on small and large frames."""
from __future__ import annotations

import importlib
import itertools
import os

import numpy as np
import pytest
import torch

from mvit_tasks.data.video_io import probe_video, write_video
from mvit_tasks.projects.ava.collate import ava_collate
from mvit_tasks.projects.ava.converters.ava import read_ava_boxes
from mvit_tasks.projects.ava.demo import caption_layout
from mvit_tasks.projects.ava.person_detector import select_persons
from mvit_tasks.projects.ava.predictor import AvaPredictor, load_ava_config, top_actions

from .tiny import CONFIG, TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COCO_CFG = os.path.join(ROOT, "projects", "coco_detection", "configs", "demo_shapes.yaml")
OWN_VIDEO = ["AVA.SEGMENT_START_SEC", "0", "AVA.DEMO_DATA", "False"]


def _importable(module: str) -> bool:  # the shipped class lists / zoo weights may be absent
    try:
        return importlib.import_module(module) is not None
    except ImportError:
        return False


def _video(tmp_path, seconds: int = 3, fps: int = 10, h: int = 48, w: int = 64) -> str:
    rng = np.random.default_rng(0)
    path = str(tmp_path / "clip.mp4")
    write_video(path, rng.integers(0, 256, (seconds * fps, h, w, 3), dtype=np.uint8), fps=fps)
    return path


def _labelmap(tmp_path) -> str:
    path = tmp_path / "lm.pbtxt"
    path.write_text("".join(f'item {{\n  name: "action number {i}"\n  id: {i}\n}}\n'
                            for i in range(1, 5)))
    return str(path)


def _run_demo(tmp_path, video: str, *extra: str) -> str:
    from mvit_tasks.projects.ava.demo import main

    out = str(tmp_path / "vis")
    assert main(["--config-file", CONFIG, "--random-weights", "--video", video,
                 "--labelmap", _labelmap(tmp_path), "--output", out, "--cpu", *extra,
                 "AVA.DATA_DIR", str(tmp_path), "OUTPUT_DIR", out, *OWN_VIDEO, *TINY_OPTS]) == 0
    return out


def test_select_persons_keeps_the_person_label_above_the_threshold_normalised():
    boxes = torch.tensor([[0, 0, 32, 24], [8, 8, 40, 30], [1, 2, 3, 4], [-5, 0, 70, 48]])
    b, s = select_persons(boxes, torch.tensor([1, 1, 3, 1]), torch.tensor([0.85, 0.95, 0.99,
                                                                            0.79]),
                          person_label=1, score_thresh=0.8, height=48, width=64)
    np.testing.assert_allclose(s, [0.95, 0.85])
    np.testing.assert_allclose(b, [[8 / 64, 8 / 48, 40 / 64, 30 / 48], [0, 0, 0.5, 0.5]])
    b, _ = select_persons(boxes, torch.tensor([1, 1, 3, 1]), torch.ones(4), 1, 0.0, 48, 64)
    assert b.min() >= 0 and b.max() <= 1  # clipped to the frame


def test_predict_equals_the_models_evaluation_outputs(tmp_path):
    video = _video(tmp_path)
    csv = tmp_path / "b.csv"
    csv.write_text("clip,0001,0.1,0.2,0.5,0.9,,0.9\nclip,0001,0.5,0.1,0.9,0.8,,0.9\n"
                   "clip,0002,0.2,0.2,0.6,0.9,,0.9\n")
    records = list(read_ava_boxes(str(csv), allow_unlabelled=True).values())
    predictor = AvaPredictor.from_config(CONFIG, opts=[*OWN_VIDEO, *TINY_OPTS],
                                         allow_random=True)
    assert predictor.keyframe_seconds(video) == [0, 1, 2, 3]
    assert predictor.keyframe_seconds(video, step=2) == [0, 2]
    scores = predictor.predict(video, records)
    ds = predictor.dataset(video, records)
    for i, rec in enumerate(records):
        with torch.no_grad():
            expected = predictor.model(ava_collate([ds[i]]))[0]["scores"].numpy()
        boxes, got = scores[rec.timestamp]
        np.testing.assert_allclose(got, expected, atol=1e-6)
        np.testing.assert_array_equal(boxes, rec.boxes)
    lines = top_actions(scores[1][1], {1: "stand", 2: "sit"}, top_k=2, thresh=0.0)
    assert len(lines) == 2 and all(len(ln) == 2 for ln in lines)
    with pytest.raises(ValueError, match="no weights"):
        AvaPredictor.from_config(CONFIG, opts=[*OWN_VIDEO, *TINY_OPTS])


def _torchvision_weights(tmp_path) -> str:
    """A torchvision Faster R-CNN (mobilenet 320) state dict whose classifier favours class 1
    (person), as a trained detector on a frame with people."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=91)
    sd = model.state_dict()
    sd["roi_heads.box_predictor.cls_score.bias"][1] = 10.0
    path = str(tmp_path / "frcnn.pth")
    torch.save(sd, path)
    return path


@pytest.mark.slow
def test_demo_detects_persons_with_torchvision_faster_rcnn(tmp_path, capsys):
    video = _video(tmp_path)
    weights = _torchvision_weights(tmp_path)
    out = _run_demo(tmp_path, video, "--detector", "torchvision", "--detector-weights", weights,
                    "--detector-arch", "fasterrcnn_mobilenet_v3_large_320_fpn", "--thresh", "0")
    assert "persons >= 0.8 on 4 of 4 keyframes of 'clip'" in capsys.readouterr().out
    found = read_ava_boxes(os.path.join(out, "person_boxes.csv"), allow_unlabelled=True)
    assert sorted(t for _, t in found) == [0, 1, 2, 3]
    assert all((r.scores >= 0.8).all() and len(r.boxes) for r in found.values())
    pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert pngs == [f"clip_{s:04d}.png" for s in range(4)]
    assert probe_video(os.path.join(out, "demo.mp4")).num_frames == 30
    # the saved boxes read back with --boxes (detections, kept at the 0.8 threshold)
    again = _run_demo(tmp_path, video, "--boxes", os.path.join(out, "person_boxes.csv"))
    assert "detections (auto), 4 keyframes of 'clip'" in capsys.readouterr().out
    assert sorted(f for f in os.listdir(again) if f.endswith(".png")) == pngs


def test_demo_detects_persons_with_the_coco_projects_detector(tmp_path, capsys):
    from mvit_tasks.projects.coco_detection.predictor import load_coco_config
    from mvit_tasks.projects.coco_detection.task import build_detector

    cfg_file = tmp_path / "detector.yaml"  # the COCO demo detector, shrunk
    cfg_file.write_text(
        f"_BASE_: {COCO_CFG}\nMODEL:\n  MVIT: {{EMBED_DIM: 8, SPATIAL_SIZE: [64, 64]}}\n"
        f"COCO:\n  DATA_DIR: {tmp_path / 'none'}\n  INPUT: {{TEST_SHORT_SIZE: 64, "
        "TEST_MAX_SIZE: 96}\n  DETECTOR: {FPN_CHANNELS: 16, BOX_FC_DIM: 32, SCORE_THRESH: 0.0,"
        " DETECTIONS_PER_IMAGE: 3}\n")
    torch.manual_seed(0)
    weights = str(tmp_path / "det.pth")
    torch.save({"model": build_detector(load_coco_config(str(cfg_file))).state_dict()}, weights)
    video = _video(tmp_path, seconds=2)
    args = ["--detector-config", str(cfg_file), "--detector-weights", weights,
            "--person-thresh", "0", "--keyframe-step", "2"]
    with pytest.raises(ValueError, match="cannot tell the person class .*--person-label"):
        _run_demo(tmp_path, video, *args)  # 3 shapes, no 'person': the label must be given
    out = _run_demo(tmp_path, video, *args, "--person-label", "2")
    assert "on 2 of 2 keyframes" in capsys.readouterr().out  # seconds 0 and 2
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["clip_0000.png",
                                                                         "clip_0002.png"]


def test_demo_without_boxes_or_detector_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="pass --boxes B.csv, or --detector-weights"):
        _run_demo(tmp_path, _video(tmp_path, seconds=1))


@pytest.mark.parametrize("h,w", [(64, 96), (1080, 1920)])
def test_captions_are_inside_the_frame_and_apart(h, w):
    boxes = np.array([[0.0, 0.0, 0.4, 1.0], [0.3, 0.05, 0.7, 0.9], [0.6, 0.2, 1.0, 1.0]],
                     np.float32)
    names = {1: "watch (a person)", 2: "talk to (e.g., self, a person)", 3: "stand"}
    texts = top_actions(np.array([[0.9, 0.8, 0.7]] * 3, np.float32), names, top_k=3, thresh=0)
    blocks = [b for b in caption_layout(boxes, texts, h, w) if b is not None]
    assert blocks and (len(blocks) == 3 or min(h, w) < 100)
    for b in blocks:
        x1, y1, x2, y2 = b.rect
        assert 0 <= x1 and x2 <= w and 0 <= y1 and y2 <= h
        for p, q in itertools.combinations(b.line_boxes, 2):
            assert p[3] <= q[1] or q[3] <= p[1]  # stacked, not overlapping
    for p, q in itertools.combinations([b.rect for b in blocks], 2):
        assert p[2] <= q[0] or q[2] <= p[0] or p[3] <= q[1] or q[3] <= p[1]
    if h >= 1080:
        assert all(b.lines == tuple(t) for b, t in zip(blocks, texts))  # nothing cut


def test_action_names_from_the_labelmap_or_the_shipped_list(tmp_path):
    from mvit_tasks.projects.ava.predictor import action_names

    cfg = load_ava_config(CONFIG, ["AVA.DATA_DIR", str(tmp_path), *OWN_VIDEO])
    assert action_names(cfg, _labelmap(tmp_path))[4] == "action number 4"
    shipped = action_names(cfg)  # no AVA.LABEL_MAP_FILE under AVA.DATA_DIR
    if not _importable("mvit_tasks.data.classnames"):
        assert shipped == {}
    else:
        assert len(shipped) == 60 and shipped[12] == "stand"
