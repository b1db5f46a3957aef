"""ClassificationPredictor and ``tools/demo.py --task kinetics|ssv2|imagenet|classification``:
the task's own test views (clips x crops over the whole video), one clip decoded at a time,
top-5 with names, ``--json``; on generated mp4s / PNGs with tiny saved models."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from mvit_tasks.data.video_io import write_video
from mvit_tasks.projects.video_classification import dataset as dataset_module
from mvit_tasks.projects.video_classification.predictor import (
    ClassificationPredictor, ViewProtocol, build_model, load_task_config,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEMO = os.path.join(ROOT, "projects", "video_classification", "configs", "demo_moving_shapes.yaml")
NAMES = ["move_left", "move_right", "move_up", "move_down", "grow", "shrink"]
# the Kinetics / ImageNet recipe configs shrunk to 2 blocks on 32 px (4 frames for video)
TINY_VIDEO = ["MODEL.NUM_CLASSES", "7", "MODEL.MVIT.DEPTH", "2", "MODEL.MVIT.EMBED_DIM", "16",
              "MODEL.MVIT.DIM_MUL", "[[1, 2.0]]", "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]",
              "MODEL.MVIT.POOL_Q_STRIDE", "[[1, 1, 2, 2]]", "MODEL.MVIT.SPATIAL_SIZE", "[32, 32]",
              "DATA.NUM_FRAMES", "4", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32"]
TINY_IMAGE = ["MODEL.VARIANT", "mvitv2_t", "MODEL.NUM_CLASSES", "3", "MODEL.MVIT.DEPTH", "2",
              "MODEL.MVIT.EMBED_DIM", "16", "MODEL.MVIT.DIM_MUL", "[[1, 2.0]]",
              "MODEL.MVIT.HEAD_MUL", "[[1, 2.0]]", "MODEL.MVIT.POOL_Q_STRIDE", "[[1, 2, 2]]",
              "MODEL.MVIT.SPATIAL_SIZE", "[32, 32]", "DATA.TRAIN_CROP_SIZE", "32",
              "DATA.TEST_CROP_SIZE", "32", "CLS.TEST_SHORT_SIDE", "36"]


def _importable(module: str) -> bool:  # the shipped class lists / zoo weights may be absent
    try:
        return importlib.import_module(module) is not None
    except ImportError:
        return False


def _video(path, frames: int = 90, h: int = 40, w: int = 56, fps: int = 15) -> str:
    rng = np.random.default_rng(3)
    write_video(str(path), rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8), fps=fps,
                options={"g": "10"})
    return str(path)


def _saved_model(tmp_path, config, opts, task: str, name: str = "w.pth") -> str:
    """A randomly initialised model of ``config`` saved as a checkpoint (a trained one's form)."""
    torch.manual_seed(1)
    model = build_model(load_task_config(config, opts, task))
    path = str(tmp_path / name)
    torch.save({"model": model.state_dict()}, path)
    return path


def _demo_tool():
    from mvit_tasks.cli import demo

    return demo


def test_the_views_are_the_tasks_own_and_decoded_one_clip_at_a_time(tmp_path, monkeypatch):
    """Probabilities = the mean softmax over the views of the task's test dataset (built from
    a manifest, as train_net evaluates); each clip is one seek-and-decode of T frames."""
    from mvit_tasks.projects.video_classification.task import ClassificationTask

    video = _video(tmp_path / "v.mp4")
    (tmp_path / "labels.txt").write_text("\n".join(NAMES) + "\n")
    (tmp_path / "test.csv").write_text(f"path,label\n{video},-1\n")
    opts = ["CLS.DATA_DIR", str(tmp_path), "CLS.DEMO_DATA", "False",
            "CLS.NUM_ENSEMBLE_VIEWS", "4", "CLS.NUM_SPATIAL_CROPS", "3"]
    weights = _saved_model(tmp_path, DEMO, opts, "classification")
    cfg = load_task_config(DEMO, opts, "classification", weights)
    task = ClassificationTask(cfg)
    model = task.build_model().eval()
    ds = task.build_dataset("test")
    assert len(ds) == 12
    with torch.no_grad():
        expected = torch.stack([torch.softmax(model(ds[i]["video"][None]), -1)[0]
                                for i in range(len(ds))]).mean(0).numpy()

    reads = []
    real = dataset_module.read_frames

    def spy(path, indices, **kw):
        frames, info = real(path, indices, **kw)
        reads.append(frames.shape[0])
        return frames, info

    monkeypatch.setattr(dataset_module, "read_frames", spy)
    predictor = ClassificationPredictor(model, ViewProtocol.from_cfg(cfg), task.classes)
    result = predictor(video)
    assert result.num_views == 12 and reads == [8, 8, 8, 8]  # 4 clips of T=8, 3 crops each
    np.testing.assert_allclose(result.probs, expected, atol=1e-6)
    top = result.topk(5)
    assert [i for i, _, _ in top] == list(np.argsort(-expected)[:5])
    assert [n for _, n, _ in top] == [NAMES[i] for i, _, _ in top]
    assert result.to_dict(2)["topk"][0] == {"class": top[0][0], "name": top[0][1],
                                            "score": pytest.approx(top[0][2])}


def test_segment_sampling_max_ensemble_frame_folders_and_still_images(tmp_path):
    from PIL import Image

    video = _video(tmp_path / "v.mp4", frames=40)
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(
            folder / f"img_{i}.png")
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    opts = ["CLS.DEMO_DATA", "False", "CLS.SAMPLING", "segment", "CLS.NUM_ENSEMBLE_VIEWS", "2",
            "CLS.NUM_SPATIAL_CROPS", "3", "CLS.ENSEMBLE", "max"]
    cfg = load_task_config(DEMO, opts, "classification")
    views = ViewProtocol.from_cfg(cfg)
    assert (views.sampling, views.num_views, views.ensemble) == ("segment", 6, "max")
    predictor = ClassificationPredictor(build_model(cfg), views)
    _, logits = predictor.view_logits(video)
    result = predictor(video)
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    np.testing.assert_allclose(result.probs, probs.max(0), atol=1e-6)  # CLS.ENSEMBLE max
    assert predictor(str(folder)).num_views == 6
    still = predictor(str(tmp_path / "s.png"))  # a still image: one clip of T copies, 3 crops
    assert still.num_views == 3 and still.topk(1)[0][1] is None


def test_demo_kinetics_preset_task_anywhere_json_and_names(tmp_path, capsys):
    """``--task`` in the middle of the arguments; the Kinetics recipe config (shrunk) with its
    5 x 1 views; names from --class-names; the JSON result."""
    from mvit_tasks.projects.video_classification.demo import DEFAULT_CONFIGS

    cfg_file = os.path.join(ROOT, "projects", "video_classification", "configs",
                            DEFAULT_CONFIGS["kinetics"])
    weights = _saved_model(tmp_path, cfg_file, TINY_VIDEO, "kinetics")
    names = tmp_path / "names.txt"
    names.write_text("".join(f"action {i}\n" for i in range(7)))
    video = _video(tmp_path / "v.mp4", frames=60)
    out = tmp_path / "r" / "out.json"
    rc = _demo_tool().main(["--input", video, "--weights", weights, "--task", "kinetics",
                            "--class-names", str(names), "--json", str(out), "--cpu",
                            *TINY_VIDEO])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "5 clips x 1 crops" in printed and "mvitv2_s_16x4_k400.yaml" in printed
    data = json.loads(out.read_text())
    assert data["task"] == "kinetics" and data["views"]["clips"] == 5
    (result,) = data["results"]
    assert result["input"] == video and result["num_views"] == 5 and len(result["topk"]) == 5
    scores = [t["score"] for t in result["topk"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    assert all(t["name"] == f"action {t['class']}" for t in result["topk"])
    assert f"1. {scores[0]:6.3f}  {result['topk'][0]['name']}" in printed


def test_demo_imagenet_preset_on_an_image_prints_class_i_without_names(tmp_path, capsys):
    from PIL import Image

    from mvit_tasks.projects.video_classification.demo import main

    cfg_file = os.path.join(ROOT, "projects", "video_classification", "configs",
                            "mvitv2_s_in1k.yaml")
    weights = _saved_model(tmp_path, cfg_file, TINY_IMAGE, "imagenet")
    image = tmp_path / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), np.uint8)).save(image)
    video = _video(tmp_path / "v.mp4", frames=20)  # an image model on a video: middle frame
    assert main(["--task", "imagenet", "--input", str(image), video, "--weights", weights,
                 "--top-k", "3", "--cpu", "CLS.DATA_DIR", str(tmp_path), *TINY_IMAGE]) == 0
    printed = capsys.readouterr().out
    assert "1 clips x 1 crops (image sampling" in printed
    assert printed.count("class ") == 6 and f"{image}: 1 views" in printed


def test_demo_refuses_random_weights_and_says_what_pretrained_needs(tmp_path):
    from mvit_tasks.utils.cli import UserError
    from mvit_tasks.projects.video_classification.demo import main

    video = _video(tmp_path / "v.mp4", frames=20)
    with pytest.raises(UserError, match="no weights .*--random-weights"):
        main(["--task", "classification", "--config-file", DEMO, "--input", video,
              "CLS.DEMO_DATA", "False"])
    with pytest.raises(ValueError, match="needs --config-file"):
        main(["--task", "classification", "--input", video, "--random-weights"])
    if not _importable("mvit_tasks.hub"):
        with pytest.raises(ValueError, match="--pretrained: .*--weights FILE"):
            main(["--task", "kinetics", "--input", video, "--pretrained"])
    with pytest.raises(UserError, match="cannot decode video"):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video")
        main(["--task", "classification", "--config-file", DEMO, "--input", str(bad),
              "--random-weights", "CLS.DEMO_DATA", "False"])


@pytest.mark.skipif(not _importable("mvit_tasks.hub"),
                    reason="official weights (mvit_tasks.hub) not in this version")
def test_pretrained_names_the_presets_official_weights():
    from mvit_tasks.projects.video_classification.demo import pretrained_weights

    assert pretrained_weights("kinetics", "mvitv2_s_16x4", "") == "zoo:mvitv2_s_16x4.k400"
    assert pretrained_weights("ssv2", "mvitv2_s_16x4", "") == "zoo:mvitv2_s_16x4.ssv2"
    assert pretrained_weights("classification", "mvitv2_t", "in1k") == "zoo:mvitv2_t.in1k"
    with pytest.raises(ValueError, match="MODEL.VARIANT"):
        pretrained_weights("kinetics", "", "")


def test_class_names_come_from_the_file_the_config_or_the_shipped_lists(tmp_path):
    from mvit_tasks.projects.video_classification.demo import class_names

    def names(task, classes, class_file="", data_dir=str(tmp_path)):
        cfg = load_task_config(DEMO, ["MODEL.NUM_CLASSES", str(classes), "CLS.DATA_DIR",
                                      data_dir, "CLS.DEMO_DATA", "False"], task)
        return class_names(argparse.Namespace(class_names=class_file, task=task), cfg)

    assert names("kinetics", 7) is None  # no labels.txt in CLS.DATA_DIR, no list of 7 classes
    (tmp_path / "labels.txt").write_text("".join(f"c{i}\n" for i in range(7)))
    assert names("kinetics", 7)[6] == "c6"
    (tmp_path / "mine.txt").write_text("a\nb\n")
    assert names("kinetics", 2, str(tmp_path / "mine.txt")) == ["a", "b"]
    if _importable("mvit_tasks.data.classnames"):
        k400 = names("kinetics", 400, data_dir=str(tmp_path / "none"))
        assert len(k400) == 400 and k400[0] == "abseiling"
        assert names("classification", 400, data_dir=str(tmp_path / "none")) is None


def test_demo_names_a_missing_input_before_building_the_model(tmp_path, monkeypatch):
    from mvit_tasks.projects.video_classification import demo

    monkeypatch.setattr(demo, "config_file", lambda *a: pytest.fail("config read first"))
    with pytest.raises(FileNotFoundError, match="input not found: .*nope.mp4"):
        demo.main(["--task", "kinetics", "--input", str(tmp_path / "nope.mp4")])
