"""SlowFast AVA (``DETECTION.ENABLE``) MViT checkpoints work end to end.

Artifacts are built in SlowFast's formats: a ``configs/AVA/``-style YAML and a ``.pyth``
``{"model_state": ...}`` with SlowFast's key names (``blocks.N.*``, ``norm``, ``head.projection``;
backbone keys via our SlowFast converter's export, as ``tests/tools/test_convert_checkpoint.py``
makes them). Scores of our loaded :class:`AvaDetector` are checked against SlowFast's MViT
detection forward written out here from its semantics (``video_model_builder.py::MViT`` with
``DETECTION.ENABLE``, ``head_helper.py::ResNetRoIHead``): final norm of the last tokens, cls token
dropped, ``B x C x T x H x W``, mean over T, ``RoIAlign(R, 1 / SPATIAL_SCALE_FACTOR,
sampling_ratio=0, ALIGNED)`` on boxes in input pixels, max over the R x R grid, ``projection``,
sigmoid. The backbone blocks are ours (their SlowFast parity is tested in ``tests/checkpoint``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Tuple

import pytest
import torch
import torch.nn.functional as F
import yaml
from torchvision.ops import roi_align

from mvit_tasks.checkpoint.converters import get_converter
from mvit_tasks.checkpoint.loader import CheckpointMismatchError, load_weights
from mvit_tasks.checkpoint.official_config import load_official_config
from mvit_tasks.config import load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.projects.ava.model import AvaDetector
from mvit_tasks.projects.ava.task import AvaTask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
from mvit_tasks.cli import convert_checkpoint

H, W = 64, 96  # test frames: short side DATA.TEST_CROP_SIZE, full width


def slowfast_yaml(path: str, factor: float = 32, resolution: int = 5, aligned: bool = True,
                  stride: int = 32, num_classes: int = 6, **sections: Dict[str, Any]) -> str:
    """A tiny MViTv2 ``configs/AVA/``-style SlowFast YAML whose last stage has ``stride``.

    ``factor`` / ``resolution`` / ``aligned`` go to ``DETECTION.*``; ``None`` omits the key
    (SlowFast's default applies). ``sections`` update the top-level sections.
    """
    depth = {16: 3, 32: 4}[stride]  # patch stride 4, then a 2x q-pooling per further stage
    stages = list(range(1, depth))
    det: Dict[str, Any] = {"ENABLE": True}
    for key, value in (("SPATIAL_SCALE_FACTOR", factor), ("ROI_XFORM_RESOLUTION", resolution),
                       ("ALIGNED", aligned)):
        if value is not None:
            det[key] = value
    raw: Dict[str, Any] = {
        "TRAIN": {"ENABLE": False, "DATASET": "ava", "BATCH_SIZE": 4},
        "DATA": {"NUM_FRAMES": 4, "SAMPLING_RATE": 2, "TRAIN_JITTER_SCALES": [64, 80],
                 "TRAIN_CROP_SIZE": 64, "TEST_CROP_SIZE": 64, "INPUT_CHANNEL_NUM": [3]},
        "DETECTION": det,
        "AVA": {"DETECTION_SCORE_THRESH": 0.8, "TRAIN_PREDICT_BOX_LISTS": [],
                "TEST_PREDICT_BOX_LISTS": ["ava_val_predicted_boxes.csv"]},
        "MVIT": {
            "ZERO_DECAY_POS_CLS": False, "USE_ABS_POS": False, "REL_POS_SPATIAL": True,
            "REL_POS_TEMPORAL": True, "DEPTH": depth, "NUM_HEADS": 1, "EMBED_DIM": 16,
            "PATCH_KERNEL": [3, 7, 7], "PATCH_STRIDE": [2, 4, 4], "PATCH_PADDING": [1, 3, 3],
            "MLP_RATIO": 2.0, "QKV_BIAS": True, "DROPPATH_RATE": 0.0, "NORM": "layernorm",
            "MODE": "conv", "CLS_EMBED_ON": True,
            "DIM_MUL": [[i, 2.0] for i in stages], "HEAD_MUL": [[i, 2.0] for i in stages],
            "POOL_KVQ_KERNEL": [3, 3, 3], "POOL_KV_STRIDE_ADAPTIVE": [1, 4, 4],
            "POOL_Q_STRIDE": [[0, 1, 1, 1]] + [[i, 1, 2, 2] for i in stages],
            "DIM_MUL_IN_ATT": True, "RESIDUAL_POOLING": True, "SEPARATE_QKV": False,
        },
        "MODEL": {"NUM_CLASSES": num_classes, "ARCH": "mvit", "MODEL_NAME": "MViT",
                  "LOSS_FUNC": "bce", "HEAD_ACT": "sigmoid", "DROPOUT_RATE": 0.5},
        "TEST": {"ENABLE": True, "DATASET": "ava", "BATCH_SIZE": 4},
        "NUM_GPUS": 1,
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    with open(path, "w") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    return path


def slowfast_checkpoint(config: str, path: str, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A SlowFast ``.pyth`` for ``config`` with non-trivial weights (head std 0.7 / 0.5)."""
    arch, info = load_official_config(config)
    with torch.device("meta"):
        shapes = AvaDetector.from_arch(arch, info["num_classes"]).state_dict()
    g = torch.Generator().manual_seed(seed)
    native = {}
    for k, v in shapes.items():
        r = torch.randn(v.shape, generator=g)
        if k.startswith("head."):
            native[k] = r * (0.7 if k.endswith("weight") else 0.5)
        elif "norm" in k and k.endswith("weight"):
            native[k] = 1.0 + 0.3 * r
        else:
            native[k] = 0.2 * r
    sd = get_converter("slowfast").from_native(native)
    # SlowFast's names: top-level blocks / final norm / head.projection, no prefix of ours
    assert {"norm.weight", "cls_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
            "blocks.1.attn.rel_pos_t", "head.projection.weight", "head.projection.bias"} <= set(sd)
    assert not any(k.startswith("backbone.") for k in sd)
    torch.save({"epoch": 20, "model_state": sd, "optimizer_state": {}, "cfg": "..."}, path)
    return sd


def convert(tmp_path, config: str, sd_path: str, *extra: str) -> Tuple[int, str]:
    out = str(tmp_path / "converted.pth")
    rc = convert_checkpoint.main(["--source", "slowfast", "--source-config", config, *extra,
                                  sd_path, out])
    return rc, out


def ava_cfg(path: str, *opts: str):
    return load_config(path, list(opts), extra_config_fns=[add_engine_config, AvaTask.add_config])


def slowfast_scores(model: AvaDetector, sd: Dict[str, torch.Tensor], video: torch.Tensor,
                    rois: torch.Tensor, factor: float, resolution: int,
                    aligned: bool) -> torch.Tensor:
    """``(K, classes)`` sigmoid scores of SlowFast's MViT detection forward (see the header)."""
    bb = model.backbone
    x, thw = bb.patch_embed(video)
    x = torch.cat((bb.cls_token.expand(x.shape[0], -1, -1), x), dim=1)  # no abs pos (MViTv2)
    for blk in bb.blocks:
        x, thw = blk(x, thw)
    c = x.shape[-1]
    x = F.layer_norm(x, (c,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    x = x[:, 1:].transpose(1, 2).reshape(x.shape[0], c, *thw)  # drop cls -> B C T H W
    x = x.mean(dim=2)  # AvgPool3d([T, 1, 1]) over the whole clip, squeezed
    x = roi_align(x, rois, (resolution, resolution), spatial_scale=1.0 / factor,
                  sampling_ratio=0, aligned=aligned)
    x = x.amax(dim=(2, 3))  # MaxPool2d(resolution) -> 1 x 1
    logits = x @ sd["head.projection.weight"].T + sd["head.projection.bias"]
    return torch.sigmoid(logits)


def _inputs() -> Tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    video = torch.randn(2, 3, 4, H, W, generator=g)
    rois = torch.tensor([[0, 3.5, 5.0, 40.2, 60.0], [0, 50.0, 2.0, 95.0, 63.0],
                         [1, 10.0, 10.0, 30.0, 50.0], [1, 0.0, 0.0, 96.0, 64.0],
                         [1, 61.3, 20.7, 70.1, 33.9]])
    return video, rois


# ------------------------------------------------------------------------------ logits parity
@pytest.mark.parametrize("factor,resolution,aligned,stride", [
    (32, 5, True, 32), (16, 7, False, 16),
    (16, 7, True, 32),  # SlowFast's default factor on a stride-32 MViT: reproduced as trained
])
def test_converted_checkpoint_scores_match_slowfast(tmp_path, capsys, factor, resolution,
                                                    aligned, stride):
    config = slowfast_yaml(str(tmp_path / "MVITv2_tiny_ava.yaml"), factor, resolution, aligned,
                           stride)
    sd = slowfast_checkpoint(config, str(tmp_path / "ava.pyth"))
    rc, out = convert(tmp_path, config, str(tmp_path / "ava.pyth"))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "loaded strictly into the model of tools/train_net.py --task ava" in captured.out

    cfg = ava_cfg(str(tmp_path / "converted.yaml"))  # as train_net --task ava reads it
    model = AvaTask(cfg).build_model().eval()  # loads MODEL.WEIGHTS = the converted file
    assert model.head.spatial_scale == 1.0 / factor and model.head.resolution == resolution
    assert model.head.aligned is aligned
    assert model.backbone.output_shape()[model.in_feature].stride == stride
    video, rois = _inputs()
    batch = {"video": video, "boxes": rois, "norm_boxes": [rois[:2, 1:], rois[2:, 1:]],
             "video_id": ["a", "b"], "timestamp": torch.tensor([902, 903])}
    with torch.no_grad():
        ours = torch.cat([o["scores"] for o in model(batch)])
        ref = slowfast_scores(model, sd, video, rois, factor, resolution, aligned)
    assert ref.shape == (5, 6) and ref.std() > 0.05  # not a degenerate head
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)

    # the .pyth itself loads strictly too (auto-detected as slowfast), same scores
    direct = AvaTask(ava_cfg(str(tmp_path / "converted.yaml"), "MODEL.WEIGHTS",
                             str(tmp_path / "ava.pyth"))).build_model().eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.cat([o["scores"] for o in direct(batch)]), ref,
                                   rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ config keys
def test_converted_config_is_an_ava_task_config(tmp_path):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"), 16, 7, False, 16, num_classes=80,
                           AVA={"DETECTION_SCORE_THRESH": 0.7, "LABEL_MAP_FILE": "labels.pbtxt",
                                "ANNOTATION_DIR": "/data/ava/annotations"})
    slowfast_checkpoint(config, str(tmp_path / "in.pyth"))
    rc, out = convert(tmp_path, config, str(tmp_path / "in.pyth"))
    assert rc == 0
    text = open(str(tmp_path / "converted.yaml")).read()
    assert "# for tools/train_net.py --task ava" in text
    cfg = ava_cfg(str(tmp_path / "converted.yaml"))
    a = cfg.AVA
    assert (a.ROI_SPATIAL_SCALE, a.ROI_RESOLUTION, a.ROI_ALIGNED) == (1 / 16, 7, False)
    assert (a.ROI_SAMPLING_RATIO, a.SPATIAL_POOL) == (0, "max")
    assert cfg.MODEL.NUM_CLASSES == 80 and cfg.MODEL.HEAD.DROPOUT_RATE == 0.5
    assert (cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE) == (4, 2)
    assert (cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE) == (64, 64)
    assert a.DETECTION_SCORE_THRESH == 0.7 and a.LABEL_MAP_FILE == "labels.pbtxt"
    assert a.ANNOTATION_DIR == "/data/ava/annotations" and a.TRAIN_JITTER_SCALES == [64, 80]
    assert (a.FPS, a.SEGMENT_START_SEC) == (30.0, 900.0)
    # SlowFast defaults for what the YAML omits
    assert a.GROUNDTRUTH_FILE == "ava_val_v2.2.csv" and a.TEST_LISTS == ["val.csv"]
    assert a.FRAME_LIST_DIR == "" and cfg.MODEL.WEIGHTS == out


def test_slowfast_detection_defaults_when_omitted(tmp_path):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"), None, None, None, 32)
    raw = yaml.safe_load(open(config))
    del raw["AVA"]["DETECTION_SCORE_THRESH"]
    yaml.safe_dump(raw, open(config, "w"))
    _, info = load_official_config(config)
    a = info["task_config"]["AVA"]
    assert info["task"] == "ava" and info["detection"]
    assert (a["ROI_SPATIAL_SCALE"], a["ROI_RESOLUTION"], a["ROI_ALIGNED"]) == (1 / 16, 7, True)
    assert a["DETECTION_SCORE_THRESH"] == 0.9  # SlowFast defaults.py (its AVA configs say 0.8)


def test_head_act_other_than_sigmoid_is_refused(tmp_path, capsys):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"))
    raw = yaml.safe_load(open(config))
    del raw["MODEL"]["HEAD_ACT"]  # SlowFast's default: softmax
    yaml.safe_dump(raw, open(config, "w"))
    with pytest.raises(ValueError, match=r"MODEL.HEAD_ACT='softmax' \(SlowFast's default"):
        load_official_config(config)
    slowfast_checkpoint(slowfast_yaml(str(tmp_path / "ok.yaml")), str(tmp_path / "in.pyth"))
    rc, out = convert(tmp_path, config, str(tmp_path / "in.pyth"))
    assert rc == 2 and "sigmoid" in capsys.readouterr().err and not os.path.exists(out)


def test_untranslated_ava_settings_are_reported(tmp_path):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"), AVA={
        "TRAIN_PREDICT_BOX_LISTS": ["ava_train_v2.2.csv", "person_box/train_boxes.csv"],
        "BGR": False, "TEST_FORCE_FLIP": True, "IMG_PROC_BACKEND": "cv2"})
    _, info = load_official_config(config)
    text = "\n".join(info["warnings"])
    assert "AVA.TRAIN_PREDICT_BOX_LISTS" in text and "IoU" in text
    assert "AVA.TEST_FORCE_FLIP=True" in text and "AVA.IMG_PROC_BACKEND" in text
    assert "AVA.BGR" not in text  # SlowFast's default value: nothing lost


# ------------------------------------------------------------------------------ strict check
def test_cli_strict_check_uses_the_ava_model(tmp_path, capsys):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"))
    sd = slowfast_checkpoint(config, str(tmp_path / "full.pyth"))
    del sd["head.projection.bias"]
    torch.save({"model_state": sd}, str(tmp_path / "nobias.pyth"))
    rc, out = convert(tmp_path, config, str(tmp_path / "nobias.pyth"))
    err = capsys.readouterr().err
    assert rc == 2 and "head.projection.bias" in err
    assert not any(n.startswith("converted") for n in os.listdir(tmp_path))

    # RoI settings are validated by the AVA task's build_model during the check
    bad = slowfast_yaml(str(tmp_path / "bad.yaml"), factor=1 / 32)
    rc, out = convert(tmp_path, bad, str(tmp_path / "full.pyth"))
    assert rc == 2 and "spatial scale is 1/stride; did you mean 1/32?" in capsys.readouterr().err


def test_roi_settings_are_validated_when_the_model_is_built(tmp_path):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"))
    slowfast_checkpoint(config, str(tmp_path / "in.pyth"))
    assert convert(tmp_path, config, str(tmp_path / "in.pyth"))[0] == 0
    ours = str(tmp_path / "converted.yaml")
    with pytest.raises(ValueError, match=r"spatial scale is 1/stride; did you mean 1/32\?"):
        AvaTask(ava_cfg(ours, "AVA.ROI_SPATIAL_SCALE", "32.0")).build_model()
    with pytest.raises(ValueError, match=r"did you mean 1/16\?"):
        AvaTask(ava_cfg(ours, "AVA.ROI_SPATIAL_SCALE", "16.0")).build_model()
    with pytest.raises(ValueError, match=r"AVA.ROI_RESOLUTION\) must be an integer >= 1"):
        AvaTask(ava_cfg(ours, "AVA.ROI_RESOLUTION", "0")).build_model()
    with pytest.raises(ValueError, match=r"must be > 0"):
        AvaTask(ava_cfg(ours, "AVA.ROI_SPATIAL_SCALE", "-0.5")).build_model()


# ------------------------------------------------------------------------------ old names
def test_older_action_proj_checkpoints_still_load(tmp_path):
    from mvit_tasks.engine.checkpointer import load_model_weights

    config = slowfast_yaml(str(tmp_path / "sf.yaml"))
    arch, info = load_official_config(config)
    src = AvaDetector.from_arch(arch, 6)
    old = {k.replace("head.projection.", "head.action_proj."): v
           for k, v in src.state_dict().items()}
    assert "head.action_proj.weight" in old
    dst = AvaDetector.from_arch(arch, 6)
    report = load_weights(dst, {"model": old})
    assert any("head.action_proj.* -> head.projection.*" in n for n in report.notes)
    assert not report.missing and not report.dropped
    assert torch.equal(dst.head.projection.weight, src.head.projection.weight)
    # an engine training checkpoint of an older version (plain strict load_state_dict)
    torch.save({"format_version": 1, "model": old}, str(tmp_path / "last.pth"))
    again = AvaDetector.from_arch(arch, 6)
    load_model_weights(again, str(tmp_path / "last.pth"))
    assert torch.equal(again.head.projection.bias, src.head.projection.bias)


# ------------------------------------------------------------------------------ never silent
def test_allowed_missing_head_is_dropped_with_a_warning(tmp_path, caplog):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"), num_classes=400)
    slowfast_checkpoint(config, str(tmp_path / "k400.pyth"))  # a 400-class head
    arch, _ = load_official_config(config)
    det = AvaDetector.from_arch(arch, 80)
    with pytest.raises(CheckpointMismatchError, match="head.projection.weight"):
        load_weights(det, str(tmp_path / "k400.pyth"))
    with caplog.at_level(logging.WARNING, logger="mvit_tasks.checkpoint.loader"):
        report = load_weights(det, str(tmp_path / "k400.pyth"), allow_missing=["head."])
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "head.projection.weight (400, 128)" in warned[0].getMessage()
    assert "head.projection.bias (400,)" in warned[0].getMessage()
    assert report.dropped == ["head.projection.weight (400, 128)", "head.projection.bias (400,)"]
    assert "2 checkpoint tensors NOT loaded" in report.summary()


def test_head_under_another_name_is_flagged_and_never_silently_dropped(tmp_path, caplog):
    config = slowfast_yaml(str(tmp_path / "sf.yaml"))
    sd = slowfast_checkpoint(config, str(tmp_path / "in.pyth"))
    renamed = {k.replace("head.projection.", "head.cls_proj."): v for k, v in sd.items()}
    arch, _ = load_official_config(config)
    det = AvaDetector.from_arch(arch, 6)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)Same shape under another name.*"
                       r"head\.cls_proj\.weight \(6, 128\) <-> head\.projection\.weight"):
        load_weights(det, {"model_state": renamed}, allow_missing=["head."])
    with caplog.at_level(logging.WARNING, logger="mvit_tasks.checkpoint.loader"):
        report = load_weights(det, {"model_state": renamed}, allow_missing=["head."],
                              allow_unexpected=["head."])
    assert report.dropped == ["head.cls_proj.weight (6, 128)", "head.cls_proj.bias (6,)"]
    assert any("head.cls_proj.weight (6, 128)" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)


# ------------------------------------------------------------------------------ eval-only
def test_train_net_eval_only_with_the_converted_checkpoint(tmp_path):
    from mvit_tasks.projects.ava.synthetic import generate_demo_ava
    from mvit_tasks.cli.train_net import main

    data = str(tmp_path / "demo")
    generate_demo_ava(data, num_train_videos=1, num_val_videos=2, num_keyframes=3,
                      size=(H, W), fps=30, seed=2)
    config = slowfast_yaml(str(tmp_path / "sf.yaml"), 32, 5, True, 32, num_classes=4, AVA={
        "ANNOTATION_DIR": os.path.join(data, "annotations"),
        "LABEL_MAP_FILE": "ava_action_list_demo.pbtxt",
        "EXCLUSION_FILE": "ava_val_excluded_timestamps.csv"})
    slowfast_checkpoint(config, str(tmp_path / "ava.pyth"))
    rc, out = convert(tmp_path, config, str(tmp_path / "ava.pyth"))
    assert rc == 0
    report = main(["--task", "ava", "--config-file", str(tmp_path / "converted.yaml"),
                   "--eval-only", "--cpu", "TEST.CHECKPOINT_FILE_PATH", out,
                   "AVA.DATA_DIR", data, "OUTPUT_DIR", str(tmp_path / "out"),
                   "DATA_LOADER.NUM_WORKERS", "0", "TENSORBOARD.ENABLE", "False"])
    metrics = report["results"]["ava"]
    assert metrics["num_keyframes"] == 6 and 0.0 <= metrics["mAP"] <= 100.0
    assert report["skipped_eval"] == []
