"""The ``ava`` task end to end: demo data -> tools/train_net.py -> detections CSV -> evaluator."""
import glob
import os

import numpy as np
import pytest
import torch

from mvit_tasks.modeling.backbone.arch import MViTArch
from mvit_tasks.tasks import list_tasks
from mvit_tasks.projects.ava.evaluation import evaluate_files
from mvit_tasks.projects.ava.model import AvaDetector

from .tiny import CONFIG, run_opts, tiny_demo
TINY = dict(num_frames=4, spatial_size=(32, 32), patch_kernel=(3, 5, 5), patch_stride=(2, 4, 4),
            patch_padding=(1, 2, 2), embed_dim=16, num_heads=1, depth=2,
            dim_mul=((1, 2.0),), head_mul=((1, 2.0),), pool_q_stride=((1, 1, 2, 2),),
            pool_kv_stride_adaptive=(1, 2, 2), pool_kvq_kernel=(3, 3, 3))


def test_task_is_registered():
    assert "ava" in list_tasks()


def test_roi_head_scale_from_output_shape_and_eval_format():
    model = AvaDetector.from_arch(MViTArch(**TINY), num_classes=5, dropout=0.0).eval()
    stride = model.backbone.output_shape()[model.in_feature].stride
    assert stride == 8 and model.head.spatial_scale == 1 / 8
    batch = {"video": torch.randn(2, 3, 4, 32, 48),
             "boxes": torch.tensor([[0, 0, 0, 16, 16], [1, 8, 8, 40, 30], [1, 0, 0, 48, 32.]]),
             "norm_boxes": [torch.rand(1, 4), torch.rand(2, 4)], "video_id": ["a", "b"],
             "timestamp": torch.tensor([902, 903])}
    with torch.no_grad():
        out = model(batch)
    assert [(o["video_id"], o["timestamp"], tuple(o["scores"].shape)) for o in out] == [
        ("a", 902, (1, 5)), ("b", 903, (2, 5))]
    assert torch.equal(out[1]["boxes"], batch["norm_boxes"][1])
    assert ((out[1]["scores"] > 0) & (out[1]["scores"] < 1)).all()
    # one box alone gives the same scores as in the batch (RoIs are independent)
    with torch.no_grad():
        alone = model.forward_logits(batch["video"][1:], torch.tensor([[0, 8, 8, 40, 30.]]))
    torch.testing.assert_close(torch.sigmoid(alone), out[1]["scores"][:1], rtol=1e-4, atol=1e-5)
    model.train()
    batch["labels"] = torch.zeros(3, 5)
    loss = model(batch)["loss_bce"]
    loss.backward()
    assert loss.ndim == 0 and model.head.projection.weight.grad.abs().sum() > 0


def test_bad_ground_truth_row_stops_with_file_and_line(tmp_path):
    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.projects.ava.task import AvaTask

    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "gt.csv").write_text("v,0902,0.1,0.1,0.5,0.5,3,0\nv,0903,0.1,0.1,0.5,0.5,99,0\n")
    cfg = load_config(CONFIG, ["AVA.DEMO_DATA", "False", "AVA.DATA_DIR", str(tmp_path),
                               "AVA.TRAIN_GT_BOX_LISTS", "['gt.csv']"],
                      extra_config_fns=[add_engine_config, AvaTask.add_config])
    with pytest.raises(ValueError, match=r"gt.csv:2: unknown action id 99"):
        AvaTask(cfg).records("train")


@pytest.mark.slow
def test_train_net_end_to_end(tmp_path):
    from mvit_tasks.cli.train_net import main

    data = str(tmp_path / "demo")
    paths = tiny_demo(data)
    out_dir = str(tmp_path / "out")
    opts = [*run_opts(data, out_dir), "AVA.TRAIN_USE_DETECTED_BOXES", "True",
            "AVA.TRAIN_PREDICT_BOX_LISTS", "['ava_train_predicted_boxes.csv']"]
    report = main(["--task", "ava", "--config-file", CONFIG, "--cpu", *opts])
    metrics = report["results"]["ava"]
    assert np.isfinite(metrics["mAP"]) and metrics["num_keyframes"] == 6
    assert metrics["num_input_warnings"] == 0
    assert report["skipped_train_count"] == 0
    csvs = glob.glob(os.path.join(out_dir, "**", "ava_detections.csv"), recursive=True)
    assert len(csvs) == 1
    rows = open(csvs[0]).read().splitlines()
    assert len(rows) == metrics["num_det_rows"] and len(rows) % 4 == 0  # 4 classes per box
    again = evaluate_files(paths["val_gt"], csvs[0], paths["labelmap"], paths["exclusions"])
    assert np.isclose(100.0 * again.mean_ap, metrics["mAP"], atol=1e-9)

    # visualisation from the trained checkpoint: PNG per keyframe + an mp4 of every frame
    from mvit_tasks.data.video_io import probe_video
    from mvit_tasks.projects.ava.demo import main as demo_main

    vis = str(tmp_path / "vis")
    model_opts = opts  # the same config (the demo ignores the training keys)
    assert demo_main(["--config-file", CONFIG, "--weights",
                      os.path.join(out_dir, "checkpoints", "last.pth"),
                      "--video", os.path.join(paths["videos"], "demo_val_000.mp4"),
                      "--boxes", paths["val_boxes"], "--output", vis, *model_opts]) == 0
    assert sorted(os.listdir(vis)) == ["demo.mp4"] + [f"demo_val_000_{s:04d}.png"
                                                      for s in (902, 903, 904)]
    assert probe_video(os.path.join(vis, "demo.mp4")).num_frames == 60  # (3 + 3) s x 10 fps


def test_kinetics_classifier_weights_load_into_the_detector(tmp_path):
    from mvit_tasks.checkpoint.loader import load_weights
    from mvit_tasks.modeling.meta_arch.classifier import Classifier

    arch = MViTArch(**TINY)
    clf = Classifier.from_arch(arch, num_classes=7)
    path = str(tmp_path / "k400.pth")
    torch.save({"model": clf.state_dict()}, path)
    det = AvaDetector.from_arch(arch, num_classes=3)
    load_weights(det, path, allow_missing=["head."], allow_unexpected=["head."])
    for k, v in clf.backbone.state_dict().items():
        assert torch.equal(det.backbone.state_dict()[k], v), k


def test_recipe_config_uses_the_last_stage_stride():
    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.projects.ava.task import AvaTask

    path = os.path.join(os.path.dirname(CONFIG), "mvitv2_s_16x4_k400.yaml")
    cfg = load_config(path, [], extra_config_fns=[add_engine_config, AvaTask.add_config])
    assert cfg.MODEL.NUM_CLASSES == 80 and cfg.AVA.DETECTION_SCORE_THRESH == 0.8
    model = AvaTask(cfg).build_model()
    assert model.in_feature == "scale5" and model.head.spatial_scale == 1 / 32
    assert model.head.projection.out_features == 80
