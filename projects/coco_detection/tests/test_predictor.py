"""CocoPredictor and ``tools/demo.py --task coco`` on images, a folder and a video: the task's
inference, sorted detections, class names, legible drawing (labels inside, apart)."""
from __future__ import annotations

import importlib
import itertools
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mvit_tasks.data.video_io import iter_frames, probe_video, write_video
from mvit_tasks.projects.coco_detection.demo import draw_detections, main
from mvit_tasks.projects.coco_detection.predictor import CocoPredictor, class_names_of, load_coco_config
from mvit_tasks.projects.coco_detection.task import build_detector

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO_CFG = os.path.join(ROOT, "projects", "coco_detection", "configs", "demo_shapes.yaml")
TINY = ["MODEL.MVIT.EMBED_DIM", "8", "MODEL.MVIT.SPATIAL_SIZE", "[64, 64]",
        "COCO.INPUT.TEST_SHORT_SIZE", "64", "COCO.INPUT.TEST_MAX_SIZE", "96",
        "COCO.DETECTOR.FPN_CHANNELS", "16", "COCO.DETECTOR.BOX_FC_DIM", "32",
        "COCO.DETECTOR.SCORE_THRESH", "0.0", "COCO.DETECTOR.DETECTIONS_PER_IMAGE", "5"]


@pytest.fixture()
def detector(tmp_path):
    """A tiny random detector saved as a native checkpoint; opts pointing at a folder without
    the demo data (so no generation, and no val json for the names)."""
    opts = ["COCO.DATA_DIR", str(tmp_path / "nothing"), *TINY]
    torch.manual_seed(0)
    path = str(tmp_path / "det.pth")
    torch.save({"model": build_detector(load_coco_config(DEMO_CFG, opts)).state_dict()}, path)
    return path, opts


def _importable(module: str) -> bool:  # the shipped class lists / zoo weights may be absent
    try:
        return importlib.import_module(module) is not None
    except ImportError:
        return False


def _image(path, h: int = 48, w: int = 80, seed: int = 0) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)).save(path)
    return str(path)


def test_predictor_is_the_tasks_inference_sorted_with_masks(tmp_path, detector):
    weights, opts = detector
    p = CocoPredictor.from_config(DEMO_CFG, weights, opts)
    rgb = np.asarray(Image.open(_image(tmp_path / "a.png")))
    det = p(rgb)
    with torch.no_grad():
        ref = p.model({"images": [torch.from_numpy(rgb.copy()).permute(2, 0, 1)]})[0]
    assert len(det["scores"]) == len(ref["scores"]) == 5
    assert torch.equal(det["scores"], ref["scores"].sort(descending=True).values)
    assert det["masks"].shape == (5, 48, 80) and det["masks"].dtype == torch.bool
    assert det["boxes"].shape == (5, 4) and (det["labels"] >= 1).all()
    assert p.class_names == ["__background__", "class 1", "class 2", "class 3"]  # no json
    assert p.name(9) == "class 9" and p.label_of("person") is None
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        p(rgb.astype(np.float32))
    with pytest.raises(FileNotFoundError, match="not found"):
        CocoPredictor.from_config(DEMO_CFG, str(tmp_path / "missing.pth"), opts)


def test_names_from_the_val_json_or_cocos_80_for_81_classes(tmp_path):
    import json

    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "val.json").write_text(json.dumps({
        "images": [], "annotations": [],
        "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "person"}]}))
    cfg = load_coco_config(DEMO_CFG, ["COCO.DATA_DIR", str(tmp_path), "COCO.VAL_JSON",
                                      "annotations/val.json", "MODEL.NUM_CLASSES", "3"])
    assert class_names_of(cfg) == ["__background__", "person", "cat"]  # category-id order
    cfg = load_coco_config(DEMO_CFG, ["COCO.DATA_DIR", str(tmp_path / "x"),
                                      "MODEL.NUM_CLASSES", "81"])
    names = class_names_of(cfg)
    assert len(names) == 81
    if _importable("mvit_tasks.data.classnames"):
        assert names[1] == "person" and names[80] == "toothbrush"


def test_demo_draws_a_folder_of_images_and_a_video(tmp_path, detector):
    weights, opts = detector
    folder = tmp_path / "in"
    folder.mkdir()
    _image(folder / "small.png", 48, 64, seed=1)
    _image(folder / "large.jpg", 360, 480, seed=2)
    rng = np.random.default_rng(0)
    write_video(str(folder / "clip.mp4"), rng.integers(0, 256, (6, 48, 64, 3), np.uint8), fps=5)
    out = tmp_path / "out"
    assert main(["--config-file", DEMO_CFG, "--weights", weights, "--input", str(folder),
                 "--output", str(out), "--confidence-threshold", "0", "--cpu", *opts]) == 0
    assert sorted(os.listdir(out)) == ["clip.mp4", "large.png", "small.png"]
    for name, size in (("small.png", (48, 64)), ("large.png", (360, 480))):
        drawn = np.asarray(Image.open(out / name))
        assert drawn.shape[:2] == size
        src = np.asarray(Image.open(folder / ("small.png" if name == "small.png"
                                              else "large.jpg")))
        assert (drawn != src).any()
    info = probe_video(str(out / "clip.mp4"))
    assert (info.num_frames, info.width, info.height) == (6, 64, 48)
    times = [t for t, _ in iter_frames(str(out / "clip.mp4"))]
    np.testing.assert_allclose(times, [i / 5 for i in range(6)], atol=1e-3)  # its own times
    single = tmp_path / "one" / "x.png"  # one input, a file name: written there
    assert main(["--config-file", DEMO_CFG, "--weights", weights, "--input",
                 str(folder / "small.png"), "--output", str(single), "--cpu", *opts]) == 0
    assert single.is_file()


@pytest.mark.parametrize("h,w", [(64, 96), (1080, 1920)])
def test_drawn_labels_are_legible_inside_and_apart(h, w, monkeypatch):
    """The label blocks the drawing uses (captured) lie inside the image and do not overlap;
    boxes and masks keep their class colour."""
    import mvit_tasks.utils.visualize as vis

    captured = []
    real = vis.layout_labels
    monkeypatch.setattr(vis, "layout_labels",
                        lambda *a, **k: captured.append(real(*a, **k)) or captured[-1])
    n = 6
    boxes = torch.tensor([[0.1 * i * w, 0.05 * h, (0.1 * i + 0.3) * w, 0.9 * h]
                          for i in range(n)])
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[0, h // 4:h // 2, w // 4:w // 2] = True
    det = {"boxes": boxes, "labels": torch.tensor([1, 2, 3, 1, 2, 3]),
           "scores": torch.linspace(0.9, 0.4, n), "masks": masks}
    image = np.zeros((h, w, 3), np.uint8)
    out = draw_detections(image, det, ["bg", "person", "dining table", "cell phone"], 0.5)
    blocks = [b for b in captured[0] if b is not None]
    assert 1 <= len(blocks) <= 5  # the 5 detections >= 0.5 (the 0.4 one is not drawn)
    assert blocks[0].lines == ("person 0.90",)  # best first
    for b in blocks:
        x1, y1, x2, y2 = b.rect
        assert 0 <= x1 and x2 <= w and 0 <= y1 and y2 <= h
    for p, q in itertools.combinations([b.rect for b in blocks], 2):
        assert p[2] <= q[0] or q[2] <= p[0] or p[3] <= q[1] or q[3] <= p[1]
    blended = (0.45 * np.asarray(vis.palette(3)[0])).astype(np.uint8)  # 45 % of label 1's
    inside = out[masks[0].numpy()]
    assert inside.any()
    if h >= 1080:  # room for every label; the mask mostly uncovered
        assert len(blocks) == 5
        assert (inside == blended).all(axis=1).mean() > 0.5
