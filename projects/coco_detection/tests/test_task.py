"""The ``coco`` task through the engine: demo data, train step, inference, train_net, demo."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

from mvit_tasks.config import arch_from_cfg, load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.registry import TASK_REGISTRY
from mvit_tasks.projects.coco_detection.converters.coco_json import decode_segmentation
from mvit_tasks.projects.coco_detection.dataset import CocoDetectionDataset, collate_detection
from mvit_tasks.projects.coco_detection.synthetic import generate_coco_shapes
from mvit_tasks.projects.coco_detection.task import CocoTask, SeededDataset, weights_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
CONFIGS = os.path.join(ROOT, "projects", "coco_detection", "configs")
DEMO_CFG = os.path.join(CONFIGS, "demo_shapes.yaml")


def _tiny_opts(data_dir: str, out_dir: str = "") -> list:
    """The demo config shrunk to 4 + 2 images of 64 px and a narrower detector."""
    return ["COCO.DATA_DIR", data_dir, "COCO.DEMO_NUM_TRAIN", "4", "COCO.DEMO_NUM_VAL", "2",
            "COCO.DEMO_IMAGE_SIZE", "64", "COCO.INPUT.TRAIN_SHORT_SIZES", "[56, 64]",
            "COCO.INPUT.TEST_SHORT_SIZE", "64", "COCO.INPUT.TEST_MAX_SIZE", "96",
            "MODEL.MVIT.EMBED_DIM", "8", "MODEL.MVIT.SPATIAL_SIZE", "[64, 64]",
            "COCO.DETECTOR.FPN_CHANNELS", "16", "COCO.DETECTOR.BOX_FC_DIM", "32",
            "TRAIN.BATCH_SIZE", "2", "TEST.BATCH_SIZE", "2", "OUTPUT_DIR", out_dir or data_dir]


def _cfg(opts: list, freeze: bool = True):
    return load_config(DEMO_CFG, opts, extra_config_fns=[add_engine_config, CocoTask.add_config],
                       freeze=freeze)


# ------------------------------------------------------------------------------- synthetic
def test_synthetic_dataset_is_valid_deterministic_and_reused(tmp_path):
    a = generate_coco_shapes(str(tmp_path / "a"), 12, 3, size=64, max_shapes=4, seed=3)
    b = generate_coco_shapes(str(tmp_path / "b"), 12, 3, size=64, max_shapes=4, seed=3)
    assert not a["reused"] and generate_coco_shapes(str(tmp_path / "a"), 12, 3, size=64,
                                                     max_shapes=4, seed=3)["reused"]
    with open(a["train_json"]) as f:
        data = json.load(f)
    with open(b["train_json"]) as f:
        assert json.load(f) == data
    png = "train/000005.png"
    assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
    assert [c["name"] for c in data["categories"]] == ["square", "disk", "triangle"]
    assert len(data["images"]) == 12 and a["num_instances"]["train"] == len(data["annotations"])
    kinds = set()
    for ann in data["annotations"]:
        kinds.add("rle" if isinstance(ann["segmentation"], dict) else "polygon")
        m = decode_segmentation(ann["segmentation"], 64, 64)
        ys, xs = np.nonzero(m)
        if isinstance(ann["segmentation"], dict):  # RLE: exact visible mask
            assert m.sum() == ann["area"]
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
        else:  # polygon rasterised by pycocotools vs cv2: within a pixel border
            assert abs(float(m.sum()) - ann["area"]) <= 0.2 * ann["area"] + 8
    assert kinds == {"rle", "polygon"}  # occlusion makes RLE masks in 12 images (seed 3)
    img = cv2.imread(str(tmp_path / "a" / png))
    assert img.shape == (64, 64, 3)


# ------------------------------------------------------------------------------------ task
def test_task_train_step_inference_and_evaluator(tmp_path):
    cfg = _cfg(_tiny_opts(str(tmp_path / "data")))
    assert TASK_REGISTRY.get("coco") is CocoTask
    task = CocoTask(cfg)  # generates the demo data
    assert os.path.exists(tmp_path / "data" / "meta.json")
    assert task.class_names() == ["__background__", "square", "disk", "triangle"]
    train = task.build_dataset("train")
    assert isinstance(train, SeededDataset) and len(train) == 4
    img_a, tgt_a = train[(1, 7)]
    img_b, _ = train[(1, 7)]
    assert torch.equal(img_a, img_b)  # augmentation drawn from the sample seed
    assert img_a.shape[-2:] in {(56, 56), (64, 64)} and tuple(tgt_a["size"]) == img_a.shape[-2:]
    assert tgt_a["masks"].shape[-2:] == img_a.shape[-2:]

    torch.manual_seed(0)
    model = task.build_model()
    batch = task.collate_fn()([train[(i, 10 + i)] for i in range(2)])
    model.train()
    losses = model(batch)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                           "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    grads = [p.grad for p in model.detector.backbone.bottom_up.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)

    val = task.build_dataset("val")
    vbatch = collate_detection([val[0], val[1]])
    model.eval()
    with torch.no_grad():
        outs = model(vbatch)
    assert len(outs) == 2
    for out, image in zip(outs, vbatch["images"]):
        d = out["boxes"].shape[0]
        assert out["masks"].shape == (d, 1, *image.shape[-2:])  # in the file's pixels
        assert d <= cfg.COCO.DETECTOR.DETECTIONS_PER_IMAGE
    ev = task.build_evaluator("val")
    ev.process(vbatch, outs)
    res = ev.evaluate()
    assert set(res) == {"bbox", "segm"} and 0.0 <= res["bbox"]["AP"] <= 100.0

    # perfect detections (the ground truth, in the frame the model saw) give AP 100
    ev.reset()
    perfect, inputs = [], []
    val_full = CocoDetectionDataset(*task.split_files("val"), None, train=False)  # with masks
    for i in range(len(val_full)):
        image, t = val_full[i]
        inputs.append(t)
        perfect.append({"boxes": t["boxes"], "labels": t["labels"],
                        "scores": torch.ones(len(t["labels"])),
                        "masks": t["masks"][:, None].float()})
    ev.process(inputs, perfect)
    res = ev.evaluate()
    assert res["bbox"]["AP"] == pytest.approx(100.0) and res["segm"]["AP"] == pytest.approx(100.0)


def test_num_classes_mismatch_and_weights_format(tmp_path):
    cfg = _cfg(_tiny_opts(str(tmp_path)) + ["MODEL.NUM_CLASSES", "5"])
    with pytest.raises(ValueError, match="instances_train.json has 3 categories.*must be 4"):
        CocoTask(cfg).build_dataset("train")
    assert weights_format({"detector.backbone.fpn.x": 0}) == "native"
    assert weights_format({"module.roi_heads.box_head.fc1.weight": 0}) == "detectron2"
    assert weights_format({"backbone.fpn_lateral2.weight": 0}) == "detectron2"
    assert weights_format({"blocks.0.attn.qkv.weight": 0}) == "backbone"


def test_model_weights_round_trip_native(tmp_path):
    cfg = _cfg(_tiny_opts(str(tmp_path)), freeze=False)
    torch.manual_seed(1)
    model = CocoTask(cfg).build_model().eval()
    path = str(tmp_path / "w.pth")
    torch.save({"model": model.state_dict()}, path)
    cfg.MODEL.WEIGHTS = path
    torch.manual_seed(2)
    loaded = CocoTask(cfg).build_model().eval()
    x = {"images": [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))]}
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    with torch.no_grad():
        a, b = model(x)[0], loaded(x)[0]
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


@pytest.mark.parametrize("size,depth,dp", [("t", 10, 0.2), ("s", 16, 0.2), ("b", 24, 0.4)])
def test_recipe_configs(size, depth, dp):
    cfg = load_config(os.path.join(CONFIGS, f"mask_rcnn_mvitv2_{size}_3x.yaml"), [],
                      extra_config_fns=[add_engine_config, CocoTask.add_config])
    arch = arch_from_cfg(cfg)
    assert (arch.depth, arch.drop_path_rate, arch.window_size) == (depth, dp, 56)
    assert cfg.SOLVER.BASE_LR == pytest.approx(1.6e-4) and cfg.SOLVER.WEIGHT_DECAY == 0.1
    assert cfg.SOLVER.MAX_EPOCH == 36 and cfg.TRAIN.BATCH_SIZE == 64
    assert cfg.SOLVER.STEPS[1] == pytest.approx(36 * 52500 / 67500)
    assert cfg.MODEL.NUM_CLASSES == 81 and cfg.COCO.INPUT.CROP_PROB == 0.5
    assert cfg.COCO.BACKBONE_WEIGHTS.endswith(f"MViTv2_{size.upper()}_in1k.pyth")


# --------------------------------------------------------------------- end to end (engine)
@pytest.mark.slow
def test_train_net_end_to_end_and_demo(tmp_path):
    from mvit_tasks.cli import train_net
    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    opts = _tiny_opts(data, out)
    report = train_net.main(["--task", "coco", "--config-file", DEMO_CFG, "--cpu", *opts,
                             "TRAIN.MAX_ITERS", "3", "SOLVER.MAX_EPOCH", "1",
                             "SOLVER.WARMUP_EPOCHS", "0.0", "TENSORBOARD.ENABLE", "False"])
    res = report["results"]
    assert set(res) == {"bbox", "segm"}
    for t in ("bbox", "segm"):
        assert {"AP", "AP50", "AP75", "AP-square", "AP-disk", "AP-triangle"} <= set(res[t])
    ckpt = os.path.join(out, "checkpoints", "last.pth")
    assert os.path.isfile(ckpt)

    # the evaluation wrote the standard results file; tools/eval_coco.py re-scores it exactly
    import glob
    import json
    import math

    from mvit_tasks.cli.eval_coco import main as eval_coco

    written = glob.glob(os.path.join(out, "eval", "*", "coco_instances_results.json"))
    assert len(written) == 1
    folder = os.path.dirname(written[0])
    records = json.load(open(written[0]))
    assert records and {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(
        records[0])
    again = str(tmp_path / "again.json")
    assert eval_coco(["--gt", os.path.join(data, "annotations", "instances_val.json"),
                      "--dt", written[0], "--image-ids",
                      os.path.join(folder, "coco_evaluated_image_ids.json"),
                      "--json-out", again]) == 0
    rescored = json.load(open(again))
    for t in ("bbox", "segm"):
        for k, v in res[t].items():
            w = rescored[t][k]
            assert (w is None and math.isnan(v)) or w == v, (t, k, v, w)

    from mvit_tasks.projects.coco_detection import demo

    assert demo.DEMO_NAME == "coco"
    image = os.path.join(data, "val", "000000.png")
    png = str(tmp_path / "det.png")
    assert demo.main(["--config-file", DEMO_CFG, "--weights", ckpt, "--input", image,
                      "--output", png, "--confidence-threshold", "0.0", "--cpu", *opts,
                      "COCO.DETECTOR.SCORE_THRESH", "0.0"]) == 0
    drawn, orig = cv2.imread(png), cv2.imread(image)
    assert drawn.shape == orig.shape
    assert (drawn != orig).any()  # boxes / masks were drawn (threshold 0 keeps all)
