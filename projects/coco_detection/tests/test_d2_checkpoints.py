"""detectron2 checkpoints through every entry point: ``MODEL.WEIGHTS``, ``create_model``,
``tools/convert_checkpoint.py`` (both ways), for Mask R-CNN and Cascade Mask R-CNN.

The detectron2 checkpoints are written here from detectron2's module names and shapes, walked
from its constructors for the MViTv2 configs (``projects/MViTv2/configs/mask_rcnn_mvitv2_t_3x``
and ``cascade_mask_rcnn_mvitv2_t_3x``: ``modeling/backbone/mvit.py`` ``MViT``, ``fpn.py``
``FPN``, ``rpn.py`` ``StandardRPNHead``, ``box_head.py`` ``FastRCNNConvFCHead``,
``fast_rcnn.py`` ``FastRCNNOutputLayers``, ``mask_head.py`` ``MaskRCNNConvUpsampleHead``,
``cascade_rcnn.py``), with a tiny backbone, random values of std 0.5 and 0-d BatchNorm counters,
saved as the model zoo saves them (``.pkl`` of numpy arrays) or as ``torch.save`` (``.pth``).
Where our detector must hold each tensor is written out separately below
(:func:`expected_in_ours`), not taken from the converter.
"""
from __future__ import annotations

import logging
import os
import pickle
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from mvit_tasks.checkpoint.io import load_checkpoint_file
from mvit_tasks.config import load_config
from mvit_tasks.engine.defaults import add_engine_config
from mvit_tasks.modeling.build import create_model
from mvit_tasks.projects.coco_detection.modeling import torchvision_to_detectron2
from mvit_tasks.projects.coco_detection.task import CocoTask
from mvit_tasks.projects.coco_detection.tests.test_modeling import _fill

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
DEMO_CFG = os.path.join(ROOT, "projects", "coco_detection", "configs", "demo_shapes.yaml")
from mvit_tasks.cli import convert_checkpoint

K = 3  # foreground classes of the demo config (MODEL.NUM_CLASSES 4)
C, FC = 16, 32  # FPN channels, box-head fc width
EMBED, DEPTH, LAST = 8, 4, (0, 1, 2, 3)  # detectron2 MViT(embed_dim, depth, last_block_indexes)
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
WB = ("weight", "bias")
Shapes = Dict[str, Tuple[int, ...]]


# ------------------------------------------------------------------ detectron2 names + shapes
def d2_mvit_shapes(embed_dim: int, depth: int, num_heads: int, last: Sequence[int],
                   img_size: int, kv_stride: int = 4) -> Shapes:
    """``backbone.bottom_up.*`` of detectron2 ``MViT`` (use_rel_pos, no abs pos, 3x3 pooling,
    mlp_ratio 4), walking its constructor loop."""
    p = "backbone.bottom_up."
    s: Shapes = {p + "patch_embed.proj.weight": (embed_dim, 3, 7, 7),
                 p + "patch_embed.proj.bias": (embed_dim,)}
    dim_out, size, stage = embed_dim, img_size // 4, 2
    for i in range(depth):
        kv = kv_stride * 2 if i in (last[1], last[2]) else kv_stride
        q = 2 if i - 1 in last else 1
        dim, hd, b = embed_dim, dim_out // num_heads, f"{p}blocks.{i}."
        s.update({b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                  b + "attn.qkv.weight": (3 * dim_out, dim), b + "attn.qkv.bias": (3 * dim_out,),
                  b + "attn.proj.weight": (dim_out, dim_out), b + "attn.proj.bias": (dim_out,),
                  b + "norm2.weight": (dim_out,), b + "norm2.bias": (dim_out,),
                  b + "mlp.fc1.weight": (4 * dim_out, dim_out), b + "mlp.fc1.bias": (4 * dim_out,),
                  b + "mlp.fc2.weight": (dim_out, 4 * dim_out), b + "mlp.fc2.bias": (dim_out,)})
        for t in "qkv":
            s.update({f"{b}attn.pool_{t}.weight": (hd, 1, 3, 3), f"{b}attn.norm_{t}.weight": (hd,),
                      f"{b}attn.norm_{t}.bias": (hd,)})
        rel = 2 * max(size // q, size // kv) - 1
        s.update({b + "attn.rel_pos_h": (rel, hd), b + "attn.rel_pos_w": (rel, hd)})
        if dim != dim_out:
            s.update({b + "proj.weight": (dim_out, dim), b + "proj.bias": (dim_out,)})
        embed_dim = dim_out
        if i in last:
            s.update({f"{p}scale{stage}_norm.weight": (dim_out,),
                      f"{p}scale{stage}_norm.bias": (dim_out,)})
            dim_out, num_heads, stage = 2 * dim_out, 2 * num_heads, stage + 1
            kv_stride = max(kv_stride // 2, 1)
        if i - 1 in last:
            size //= 2
    return s


def _conv(s: Shapes, name: str, cin: int, cout: int, k: int, norm: bool) -> None:
    """detectron2 ``Conv2d(bias=not norm, norm=BN)``."""
    s[name + ".weight"] = (cout, cin, k, k)
    if norm:
        s.update({f"{name}.norm.{t}": (() if t == "num_batches_tracked" else (cout,)) for t in BN})
    else:
        s[name + ".bias"] = (cout,)


def d2_detector_shapes(cascade: bool, full_size: bool = False) -> Shapes:
    """``mask_rcnn_mvitv2_t_3x`` / ``cascade_mask_rcnn_mvitv2_t_3x``: tiny (embed 8, depth 4,
    64 px, FPN ``C`` channels, fc ``FC``, ``K`` classes) or as published (embed 96, depth 10,
    224 px, 256 / 1024, 80 classes)."""
    embed, ch, fc, classes = (96, 256, 1024, 80) if full_size else (EMBED, C, FC, K)
    s = (d2_mvit_shapes(96, 10, 1, (0, 2, 7, 9), 224) if full_size else
         d2_mvit_shapes(EMBED, DEPTH, 1, LAST, 64))
    for k, width in zip((2, 3, 4, 5), (embed, 2 * embed, 4 * embed, 8 * embed)):
        _conv(s, f"backbone.fpn_lateral{k}", width, ch, 1, False)
        _conv(s, f"backbone.fpn_output{k}", ch, ch, 3, False)
    rpn = "proposal_generator.rpn_head."
    for name in (["conv.conv0", "conv.conv1"] if cascade else ["conv"]):  # conv_dims [-1, -1]
        _conv(s, rpn + name, ch, ch, 3, False)
    _conv(s, rpn + "objectness_logits", ch, 3, 1, False)
    _conv(s, rpn + "anchor_deltas", ch, 12, 1, False)
    stages = [f".{st}" for st in range(3)] if cascade else [""]
    for st in stages:
        head, pred = f"roi_heads.box_head{st}.", f"roi_heads.box_predictor{st}."
        if cascade:  # 4 convs (NaiveSyncBatchNorm) + fc1
            for j in range(1, 5):
                _conv(s, f"{head}conv{j}", ch, ch, 3, True)
            s.update({head + "fc1.weight": (fc, ch * 49), head + "fc1.bias": (fc,)})
        else:  # conv_dims [], fc_dims [1024, 1024]
            s.update({head + "fc1.weight": (fc, ch * 49), head + "fc1.bias": (fc,),
                      head + "fc2.weight": (fc, fc), head + "fc2.bias": (fc,)})
        reg = 4 if cascade else 4 * classes  # cls_agnostic_bbox_reg in the cascade
        s.update({pred + "cls_score.weight": (classes + 1, fc),
                  pred + "cls_score.bias": (classes + 1,), pred + "bbox_pred.weight": (reg, fc),
                  pred + "bbox_pred.bias": (reg,)})
    for j in range(1, 5):
        _conv(s, f"roi_heads.mask_head.mask_fcn{j}", ch, ch, 3, cascade)
    s.update({"roi_heads.mask_head.deconv.weight": (ch, ch, 2, 2),  # ConvTranspose2d: in, out
              "roi_heads.mask_head.deconv.bias": (ch,)})
    _conv(s, "roi_heads.mask_head.predictor", ch, classes, 1, False)
    return s


def d2_checkpoint(shapes: Shapes, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Values of std 0.5 (positive running variances, 0-d int64 BatchNorm counters)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (k, shape) in enumerate(sorted(shapes.items())):
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1000 + i, dtype=torch.int64)
        else:
            v = torch.randn(shape, generator=g) * 0.5
            out[k] = v.abs() + 0.5 if k.endswith("running_var") else v
    return out


def save_d2(sd: Dict[str, torch.Tensor], path: str) -> str:
    if path.endswith(".pkl"):  # model zoo: a pickle of numpy arrays
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}, "__author__": "test"},
                        f)
    else:
        torch.save({"model": sd, "iteration": 7}, path)
    return path


# -------------------------------------------------------- where our detector holds each tensor
def expected_in_ours(d2: Dict[str, torch.Tensor], cascade: bool) -> Dict[str, torch.Tensor]:
    """The COCO model's state dict that a detectron2 state dict must give."""
    e: Dict[str, torch.Tensor] = {}
    bottom = "backbone.bottom_up."
    for k, v in d2.items():
        if k.startswith(bottom):  # 2-D kernels as 5-D with temporal extent 1
            conv = k.endswith(("patch_embed.proj.weight", "pool_q.weight", "pool_k.weight",
                               "pool_v.weight"))
            e["detector." + k] = v.unsqueeze(2) if conv else v
    d = "detector."
    for i, k in enumerate((2, 3, 4, 5)):
        for t in WB:
            e[f"{d}backbone.fpn.inner_blocks.{i}.0.{t}"] = d2[f"backbone.fpn_lateral{k}.{t}"]
            e[f"{d}backbone.fpn.layer_blocks.{i}.0.{t}"] = d2[f"backbone.fpn_output{k}.{t}"]
    rpn = "proposal_generator.rpn_head."
    for t in WB:
        for j in (0, 1) if cascade else (0,):
            e[f"{d}rpn.head.conv.{j}.0.{t}"] = d2[rpn + (f"conv.conv{j}.{t}" if cascade else
                                                        f"conv.{t}")]
        e[f"{d}rpn.head.cls_logits.{t}"] = d2[rpn + f"objectness_logits.{t}"]
        e[f"{d}rpn.head.bbox_pred.{t}"] = d2[rpn + f"anchor_deltas.{t}"]

    def bg_first(v: torch.Tensor) -> torch.Tensor:  # detectron2's row K is the background
        return torch.cat((v[K:], v[:K]))

    def zero_block(v: torch.Tensor, rows: int) -> torch.Tensor:
        return torch.cat((torch.zeros((rows,) + tuple(v.shape[1:])), v))

    for t in WB:
        if cascade:
            for st in range(3):
                h, p = f"{d}roi_heads.box_heads.{st}.", f"roi_heads.box_predictor.{st}."
                e[f"{h}5.{t}"] = d2[f"roi_heads.box_head.{st}.fc1.{t}"]
                e[f"{d}roi_heads.box_predictors.{st}.cls_score.{t}"] = bg_first(
                    d2[p + f"cls_score.{t}"])
                e[f"{d}roi_heads.box_predictors.{st}.bbox_pred.{t}"] = d2[p + f"bbox_pred.{t}"]
        else:
            e[f"{d}roi_heads.box_head.fc6.{t}"] = d2[f"roi_heads.box_head.fc1.{t}"]
            e[f"{d}roi_heads.box_head.fc7.{t}"] = d2[f"roi_heads.box_head.fc2.{t}"]
            p = "roi_heads.box_predictor."
            e[f"{d}roi_heads.box_predictor.cls_score.{t}"] = bg_first(d2[p + f"cls_score.{t}"])
            e[f"{d}roi_heads.box_predictor.bbox_pred.{t}"] = zero_block(d2[p + f"bbox_pred.{t}"], 4)
        e[f"{d}roi_heads.mask_predictor.conv5_mask.{t}"] = d2[f"roi_heads.mask_head.deconv.{t}"]
        e[f"{d}roi_heads.mask_predictor.mask_fcn_logits.{t}"] = zero_block(
            d2[f"roi_heads.mask_head.predictor.{t}"], 1)
    for j in range(4):
        src = f"roi_heads.mask_head.mask_fcn{j + 1}"
        e[f"{d}roi_heads.mask_head.{j}.0.weight"] = d2[src + ".weight"]
        if cascade:
            for t in BN:
                e[f"{d}roi_heads.mask_head.{j}.1.{t}"] = d2[f"{src}.norm.{t}"]
                for st in range(3):
                    e[f"{d}roi_heads.box_heads.{st}.{j}.1.{t}"] = d2[
                        f"roi_heads.box_head.{st}.conv{j + 1}.norm.{t}"]
            for st in range(3):
                e[f"{d}roi_heads.box_heads.{st}.{j}.0.weight"] = d2[
                    f"roi_heads.box_head.{st}.conv{j + 1}.weight"]
        else:
            e[f"{d}roi_heads.mask_head.{j}.0.bias"] = d2[src + ".bias"]
    return e


# ------------------------------------------------------------------------------ the COCO task
CASCADE_OPTS = ["COCO.DETECTOR.ROI_HEADS", "cascade", "COCO.DETECTOR.BOX_HEAD", "4conv1fc",
                "COCO.DETECTOR.BOX_HEAD_NORM", "BN", "COCO.DETECTOR.RPN_CONV_DEPTH", "2",
                "COCO.DETECTOR.MASK_HEAD_NORM", "BN"]


def coco_cfg(cascade: bool, weights: str = "", fmt: str = "auto", extra: Sequence[str] = ()):
    """The demo config with detectron2's MViT geometry (kv stride doubled in the global blocks
    of scale3 / scale4), 64 px, the sizes above."""
    opts = ["COCO.DEMO_DATA", "False", "MODEL.MVIT.EMBED_DIM", str(EMBED),
            "MODEL.MVIT.SPATIAL_SIZE", "[64, 64]", "MODEL.MVIT.WINDOW_SIZE", "8",
            "MODEL.MVIT.POOL_KV_STRIDE", "[[1, 4, 4], [2, 2, 2]]",
            "COCO.DETECTOR.FPN_CHANNELS", str(C), "COCO.DETECTOR.BOX_FC_DIM", str(FC),
            "COCO.INPUT.TEST_SHORT_SIZE", "64", "COCO.INPUT.TEST_MAX_SIZE", "96",
            "COCO.DETECTOR.SCORE_THRESH", "0.0", "MODEL.WEIGHTS", weights,
            "COCO.WEIGHTS_FORMAT", fmt, *(CASCADE_OPTS if cascade else []), *extra]
    return load_config(DEMO_CFG, opts, extra_config_fns=[add_engine_config, CocoTask.add_config])


def build(cascade: bool, weights: str = "", fmt: str = "auto", seed: int = 0,
          extra: Sequence[str] = ()) -> torch.nn.Module:
    torch.manual_seed(seed)
    return CocoTask(coco_cfg(cascade, weights, fmt, extra)).build_model().eval()


def fill(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random values of std 0.1, well above the default init (test_modeling's ``_fill``), and
    BatchNorm counters of 77."""
    _fill(model, seed)
    for k, t in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            t.fill_(77)
    return model


def detect(model: torch.nn.Module) -> List[Dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    images = [torch.rand(3, 64, 80, generator=g), torch.rand(3, 56, 64, generator=g)]
    with torch.no_grad():
        return model.eval()({"images": images})


def assert_same_state(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


def read_pkl(path: str) -> Dict[str, np.ndarray]:
    with open(path, "rb") as f:
        return pickle.load(f)["model"]


# ------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("cascade", [False, True], ids=["mask_rcnn", "cascade"])
def test_detectron2_names_and_shapes_are_those_of_our_models(cascade) -> None:
    """detectron2's key list (from its constructors) is exactly what our model exports."""
    ours = build(cascade).detector.state_dict()
    exported = torchvision_to_detectron2(ours).state_dict
    assert {k: tuple(v.shape) for k, v in exported.items()} == d2_detector_shapes(cascade)


@pytest.mark.parametrize("cascade", [False, True], ids=["mask_rcnn", "cascade"])
def test_full_size_names_and_shapes_are_detectron2s(cascade) -> None:
    """The published MViTv2-T configs: 288 (Mask R-CNN) / 388 (Cascade) tensors."""
    name = ("cascade_" if cascade else "") + "mask_rcnn_mvitv2_t_3x.yaml"
    cfg = load_config(os.path.join(os.path.dirname(DEMO_CFG), name), ["COCO.BACKBONE_WEIGHTS", ""],
                      extra_config_fns=[add_engine_config, CocoTask.add_config])
    ours = CocoTask(cfg).build_model().detector.state_dict()
    exported = {k: tuple(v.shape) for k, v in torchvision_to_detectron2(ours).state_dict.items()}
    assert exported == d2_detector_shapes(cascade, full_size=True)
    assert len(exported) == (388 if cascade else 288)


def test_model_weights_takes_a_zoo_spec(tmp_path, monkeypatch) -> None:
    """``MODEL.WEIGHTS zoo:<variant>.<tag>`` for a detector: the spec goes through the hub
    (here answered with a local detectron2 file) and the file loads as detectron2's."""
    import mvit_tasks.hub.zoo as zoo
    from mvit_tasks.modeling.backbone.pretrained import PRETRAINED

    d2 = d2_checkpoint(d2_detector_shapes(False))
    path = save_d2(d2, str(tmp_path / "model_final_0123ab.pkl"))
    asked = []
    variant, entries = next((v, e) for v, e in PRETRAINED.items() if v.endswith("_coco") and e)
    monkeypatch.setattr(zoo, "resolve_zoo", lambda spec, progress=True: (
        asked.append(spec) or (path, entries[0])))
    spec = f"zoo:{variant}.{entries[0].tag}"
    model = build(False, spec, "auto", seed=5)
    assert asked == [spec]
    assert_same_state(model.state_dict(), expected_in_ours(d2, False))


@pytest.mark.parametrize("fmt", ["pkl", "pth"])
@pytest.mark.parametrize("cascade", [False, True], ids=["mask_rcnn", "cascade"])
def test_model_weights_loads_a_detectron2_checkpoint_strictly(tmp_path, caplog, cascade,
                                                              fmt) -> None:
    d2 = d2_checkpoint(d2_detector_shapes(cascade))
    path = save_d2(d2, str(tmp_path / f"model_final.{fmt}"))
    if fmt == "pkl":  # 0-d counters stay 0-d through the safe reader
        obj = load_checkpoint_file(path)["model"]
        assert all(obj[k].ndim == 0 for k in obj if k.endswith("num_batches_tracked"))
    with caplog.at_level(logging.INFO, logger="mvit_tasks.projects.coco_detection.task"):
        model = build(cascade, path, "auto", seed=5)
    assert_same_state(model.state_dict(), expected_in_ours(d2, cascade))
    line = [r.getMessage() for r in caplog.records if "MODEL.WEIGHTS" in r.getMessage()]
    assert len(line) == 1 and "(detectron2)" in line[0] and "allowed-missing" not in line[0]
    forced = build(cascade, path, "detectron2", seed=6)  # COCO.WEIGHTS_FORMAT detectron2
    assert_same_state(forced.state_dict(), model.state_dict())
    if cascade:  # a Cascade checkpoint into Mask R-CNN says what to build
        with pytest.raises(ValueError, match="COCO.DETECTOR.ROI_HEADS cascade"):
            build(False, path, extra=CASCADE_OPTS[2:])
    else:
        with pytest.raises(ValueError, match="the model is a cascade"):
            build(True, path)


@pytest.mark.parametrize("cascade", [False, True], ids=["mask_rcnn", "cascade"])
def test_convert_tool_round_trip_from_detectron2(tmp_path, capsys, cascade) -> None:
    """d2 .pkl -> ours (loads through MODEL.WEIGHTS native / auto) -> d2: identical."""
    d2 = d2_checkpoint(d2_detector_shapes(cascade), seed=1)
    src = save_d2(d2, str(tmp_path / "model_final.pkl"))
    ours, back = str(tmp_path / "ours.pth"), str(tmp_path / "back.pkl")
    assert convert_checkpoint.main([src, ours]) == 0
    out = capsys.readouterr().out
    assert "as the coco detector (detector.*)" in out
    settings = out.split("for --task coco: ")[1].split()
    assert settings[settings.index("COCO.DETECTOR.ROI_HEADS") + 1] == (
        "cascade" if cascade else "standard")
    expected = expected_in_ours(d2, cascade)
    assert_same_state(load_checkpoint_file(ours)["model"], expected)
    for fmt in ("native", "auto"):  # the builder loads it strictly, with the printed settings
        model = build(False, ours, fmt, extra=settings)
        assert_same_state(model.state_dict(), expected)

    assert convert_checkpoint.main(["--to", "detectron2", ours, back]) == 0
    again = read_pkl(back)
    assert sorted(again) == sorted(d2)
    for k, v in d2.items():
        assert again[k].shape == tuple(v.shape) and again[k].dtype == v.numpy().dtype, k
        assert np.array_equal(again[k], v.numpy()), k


@pytest.mark.parametrize("cascade", [False, True], ids=["mask_rcnn", "cascade"])
def test_convert_tool_round_trip_from_ours_and_outputs(tmp_path, capsys, cascade) -> None:
    """ours -> d2 (.pkl) -> ours: every tensor back (the background blocks torchvision has and
    detectron2 lacks come back as zeros) and the same detections."""
    src_model = fill(build(cascade), seed=2)
    sd = src_model.state_dict()
    src, d2_path, back = (str(tmp_path / n) for n in ("ours.pth", "d2.pkl", "back.pth"))
    torch.save({"model": sd, "epoch": 3}, src)
    assert convert_checkpoint.main(["--to", "detectron2", src, d2_path]) == 0
    assert "background block dropped" in capsys.readouterr().out
    d2 = read_pkl(d2_path)
    assert {k: v.shape for k, v in d2.items()} == d2_detector_shapes(cascade)
    assert all(d2[k].ndim == 0 and d2[k] == 77 for k in d2 if k.endswith("num_batches_tracked"))
    assert convert_checkpoint.main([d2_path, back]) == 0
    again = load_checkpoint_file(back)["model"]
    bg = {k: 4 if "bbox_pred" in k else 1 for k in sd
          if k.endswith(("predictor.bbox_pred.weight", "predictor.bbox_pred.bias",
                         "mask_fcn_logits.weight", "mask_fcn_logits.bias"))}
    assert len(bg) == 4 if not cascade else len(bg) == 2  # cascade boxes are class-agnostic
    zeroed = {k: v.clone() for k, v in sd.items()}
    for k, rows in bg.items():
        zeroed[k][:rows] = 0
    assert_same_state(again, zeroed)

    loaded = build(cascade, back, "auto", seed=9)
    a, b = detect(src_model), detect(loaded)
    assert sum(len(x["boxes"]) for x in a) > 0
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_export_refuses_what_detectron2_cannot_name(tmp_path, capsys) -> None:
    sd = build(False).state_dict()
    sd["detector.roi_heads.box_head.extra.weight"] = torch.zeros(2)
    src, out = str(tmp_path / "ours.pth"), str(tmp_path / "model_final.pkl")
    torch.save({"model": sd}, src)
    assert convert_checkpoint.main(["--to", "detectron2", src, out]) == 2
    err = capsys.readouterr().err
    assert "detector.roi_heads.box_head.extra.weight" not in err  # named without the prefix
    assert "roi_heads.box_head.extra.weight" in err and "no detectron2 name" in err
    assert not os.path.exists(out)
    torch.save({"model": {**build(False).state_dict(), "ema.step": torch.zeros(())}}, src)
    assert convert_checkpoint.main(["--to", "detectron2", src, out]) == 2
    assert "ema.step" in capsys.readouterr().err and not os.path.exists(out)


def test_create_model_takes_the_backbone_of_a_whole_detector(tmp_path, capsys, caplog) -> None:
    """The full-size MViTv2-T of a detectron2 model_final.pkl (with small heads), and of the
    same detector converted to the COCO task's layout (nested under detector.backbone.)."""
    shapes = d2_mvit_shapes(96, 10, 1, (0, 2, 7, 9), 224)
    heads = {k: v for k, v in d2_detector_shapes(False).items()
             if not k.startswith("backbone.bottom_up.")}
    d2 = d2_checkpoint({**shapes, **heads}, seed=4)
    d2["pixel_mean"] = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    path = save_d2(d2, str(tmp_path / "model_final.pkl"))
    coco = str(tmp_path / "coco.pth")
    assert convert_checkpoint.main([path, coco]) == 0
    capsys.readouterr()
    cases = {path: (len(d2) - len(shapes), "backbone.fpn_lateral* 8, backbone.fpn_output* 8, "
                    "proposal_generator.rpn_head 6, roi_heads.box_head 4"),
             coco: (len(heads), "detector.backbone.fpn 16, detector.rpn.head 6, "
                    "detector.roi_heads.box_head 4")}
    for weights, (count, prefixes) in cases.items():
        caplog.clear()
        with caplog.at_level(logging.INFO):
            model = create_model("mvitv2_t_coco", weights=weights)
        state = model.state_dict()
        for k, v in d2.items():
            if k.startswith("backbone.bottom_up."):
                assert torch.equal(state[k[len("backbone.bottom_up."):]].reshape(v.shape), v), k
        lines = [r.getMessage() for r in caplog.records if "left aside" in r.getMessage()]
        assert len(lines) == 1 and not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert f"{count} tensors outside the backbone left aside ({prefixes}" in lines[0], lines[0]
        assert lines[0].startswith(f"loaded {len(shapes)} tensors")


def test_pkl_zero_dim_arrays_stay_zero_dim(tmp_path) -> None:
    path = str(tmp_path / "x.pkl")
    arrays = {"a.num_batches_tracked": np.array(5, dtype=np.int64), "b": np.float32(2.5),
              "c": np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2]}
    with open(path, "wb") as f:
        pickle.dump({"model": arrays}, f)
    got = load_checkpoint_file(path)["model"]
    assert got["a.num_batches_tracked"].shape == () and got["a.num_batches_tracked"] == 5
    assert got["b"].shape == () and got["b"] == 2.5
    assert torch.equal(got["c"], torch.tensor([[0.0, 2.0], [3.0, 5.0]]))
