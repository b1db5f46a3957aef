"""The test pipeline against detectron2's inference semantics, each computed independently here.

References written in this file from detectron2's algorithms (detectron2 itself is not
installed): ``ResizeShortestEdge.get_output_shape`` (float arithmetic, ``int(x + 0.5)``),
``ResizeTransform.apply_image`` (PIL ``Image.resize(BILINEAR)`` on uint8, called directly),
``_do_paste_mask`` / ``paste_masks_in_image`` (per-pixel: pixel centre -> mask coordinate,
bilinear with zero padding, ``>= 0.5``) and ``detector_postprocess`` (per-axis scale, clip,
drop empty boxes).
"""
from __future__ import annotations

import math
import os
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

from mvit_tasks.modeling.backbone.mvit import MViT
from mvit_tasks.modeling.backbone.variants import get_variant
from mvit_tasks.projects.coco_detection.model import CocoDetector
from mvit_tasks.projects.coco_detection.modeling.postprocess import (
    detector_postprocess,
    paste_masks,
    paste_masks_detectron2,
)
from mvit_tasks.projects.coco_detection.transforms import (
    build_test_transforms,
    resize_image_detectron2,
    shortest_edge_size,
)


# ---------------------------------------------------------------- references (detectron2)
def d2_output_shape(h: int, w: int, short: int, max_size: int) -> Tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``, as its source computes it."""
    scale = short * 1.0 / min(h, w)
    if h < w:
        newh, neww = short * 1.0, scale * w
    else:
        newh, neww = scale * h, short * 1.0
    if max(newh, neww) > max_size:
        s = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * s, neww * s
    return int(newh + 0.5), int(neww + 0.5)


def pil_resize(image_chw: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``ResizeTransform.apply_image`` on a uint8 array: PIL bilinear."""
    hwc = image_chw.permute(1, 2, 0).numpy()
    pil = Image.fromarray(hwc[:, :, 0]) if hwc.shape[2] == 1 else Image.fromarray(hwc)
    out = np.asarray(pil.resize((w, h), Image.BILINEAR))
    return torch.from_numpy(out.reshape(h, w, -1).copy()).permute(2, 0, 1)


def ref_paste_one(mask: np.ndarray, box: Tuple[float, ...], h: int, w: int) -> np.ndarray:
    """Soft paste of one ``M x M`` map, pixel by pixel (float64): the centre of pixel
    ``(y, x)`` maps to mask coordinate ``(c - x0) / (x1 - x0) * M - 0.5``; bilinear between the
    4 neighbouring cells, cells outside the map count as 0."""
    m = mask.shape[0]
    x0, y0, x1, y1 = (float(v) for v in box)
    out = np.zeros((h, w))
    for y in range(h):
        v = (y + 0.5 - y0) / (y1 - y0) * m - 0.5
        for x in range(w):
            u = (x + 0.5 - x0) / (x1 - x0) * m - 0.5
            iu, iv = math.floor(u), math.floor(v)
            fu, fv = u - iu, v - iv
            total = 0.0
            for dv, wv in ((0, 1 - fv), (1, fv)):
                for du, wu in ((0, 1 - fu), (1, fu)):
                    r, c = iv + dv, iu + du
                    if 0 <= r < m and 0 <= c < m:
                        total += wv * wu * float(mask[r, c])
            out[y, x] = total
    return out


def ref_paste_image(mask: np.ndarray, box: np.ndarray, h: int, w: int) -> np.ndarray:
    """The same sampling, vectorised with numpy (float64) for image-sized checks."""
    m = mask.shape[0]
    x0, y0, x1, y1 = (float(v) for v in box)
    u = (np.arange(w) + 0.5 - x0) / (x1 - x0) * m - 0.5
    v = (np.arange(h) + 0.5 - y0) / (y1 - y0) * m - 0.5
    padded = np.zeros((m + 2, m + 2))
    padded[1:-1, 1:-1] = mask
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - iu, v - iv
    # indices into the padded map (cell -1 -> 0, cell M -> M + 1); farther cells are 0 too
    cu0, cu1 = np.clip(iu + 1, 0, m + 1), np.clip(iu + 2, 0, m + 1)
    cv0, cv1 = np.clip(iv + 1, 0, m + 1), np.clip(iv + 2, 0, m + 1)
    okx0, okx1 = (iu >= -1) & (iu <= m), (iu + 1 >= -1) & (iu + 1 <= m)
    oky0, oky1 = (iv >= -1) & (iv <= m), (iv + 1 >= -1) & (iv + 1 <= m)
    wx0, wx1 = (1 - fu) * okx0, fu * okx1
    wy0, wy1 = (1 - fv) * oky0, fv * oky1
    return (wy0[:, None] * (wx0 * padded[cv0][:, cu0] + wx1 * padded[cv0][:, cu1])
            + wy1[:, None] * (wx0 * padded[cv1][:, cu0] + wx1 * padded[cv1][:, cu1]))


def ref_postprocess(boxes: torch.Tensor, in_hw: Tuple[int, int], out_hw: Tuple[int, int]
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """detector_postprocess on boxes (float64): scale per axis, clip, keep non-empty."""
    b = boxes.double().numpy().copy()
    b[:, 0::2] *= out_hw[1] / in_hw[1]
    b[:, 1::2] *= out_hw[0] / in_hw[0]
    b[:, 0::2] = b[:, 0::2].clip(0, out_hw[1])
    b[:, 1::2] = b[:, 1::2].clip(0, out_hw[0])
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[keep], keep


# ------------------------------------------------------------------------------- resize
COMMON = [  # (h, w) of COCO images and edge cases -> detectron2's size at 800 / 1333
    ((480, 640), (800, 1067)), ((427, 640), (800, 1199)), ((640, 480), (1067, 800)),
    ((375, 500), (800, 1067)), ((333, 500), (800, 1201)), ((612, 612), (800, 800)),
    ((640, 640), (800, 800)), ((500, 333), (1201, 800)), ((640, 427), (1199, 800)),
    ((424, 640), (800, 1208)), ((1, 1), (800, 800)), ((1, 2), (667, 1333)),
    ((100, 2000), (67, 1333)), ((2000, 100), (1333, 67)), ((640, 179), (1333, 373)),
    ((480, 853), (750, 1333)), ((800, 1333), (800, 1333)), ((1333, 800), (1333, 800)),
]


@pytest.mark.parametrize("hw,expected", COMMON)
def test_resize_sizes_are_detectron2s(hw, expected):
    assert d2_output_shape(*hw, 800, 1333) == expected  # the literal numbers are d2's
    assert shortest_edge_size(*hw, 800, 1333) == expected


def test_resize_sizes_match_the_reference_on_many_shapes():
    rng = np.random.default_rng(0)
    shapes = [(int(a), int(b)) for a, b in rng.integers(1, 1500, size=(3000, 2))]
    shapes += [(h, w) for h in range(300, 700, 7) for w in (333, 480, 500, 612, 640)]
    for short, max_size in ((800, 1333), (640, 1333), (1024, 1024), (480, 10 ** 9)):
        for h, w in shapes:
            assert shortest_edge_size(h, w, short, max_size) == d2_output_shape(
                h, w, short, max_size), (h, w, short, max_size)
    # torchvision's GeneralizedRCNNTransform floors instead: 480x640 -> 800x1066
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)


@pytest.mark.parametrize("hw,size", [((480, 640), (800, 1067)), ((61, 47), (13, 10)),
                                     ((33, 50), (800, 1212)), ((100, 2000), (67, 1333))])
def test_resized_pixels_are_pil_bilinear(hw, size):
    g = torch.Generator().manual_seed(hw[0])
    image = torch.randint(0, 256, (3, *hw), generator=g, dtype=torch.uint8)
    ours = resize_image_detectron2(image, size)
    assert ours.dtype == torch.uint8 and torch.equal(ours, pil_resize(image, *size))
    gray = image[:1]
    assert torch.equal(resize_image_detectron2(gray, size), pil_resize(gray, *size))
    # torch's own uint8 antialiased resize is not PIL's (off by one in 0.1-0.5 % of values)
    tv = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]
    assert not torch.equal(tv, ours) and int((tv.int() - ours.int()).abs().max()) == 1


def test_float_images_take_detectron2s_float_path():
    image = torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(image[None], size=(50, 67), mode="bilinear", align_corners=False)[0]
    assert torch.equal(resize_image_detectron2(image, (50, 67)), ref)
    assert resize_image_detectron2(image, (30, 40)) is image


def test_test_transforms_resize_like_detectron2_and_move_boxes():
    g = torch.Generator().manual_seed(3)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 48, 64), generator=g, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[8.0, 6.0, 40.0, 30.0]]), format="XYXY",
                                     canvas_size=(48, 64))
    out, target = build_test_transforms(100, 1333)(image, {"boxes": boxes})
    assert tuple(out.shape[-2:]) == d2_output_shape(48, 64, 100, 1333) == (100, 133)
    assert torch.equal(out.as_subclass(torch.Tensor), pil_resize(image.as_subclass(
        torch.Tensor), 100, 133))
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor),
                               torch.tensor([[8 * 133 / 64, 12.5, 40 * 133 / 64, 62.5]]))


# ---------------------------------------------------------------------------- mask paste
PASTE_BOXES = [
    (10.3, 5.7, 30.9, 22.2),    # sub-pixel corners
    (-6.5, -3.2, 20.1, 15.8),   # partly outside (top-left)
    (40.2, 28.4, 70.0, 52.6),   # partly outside (bottom-right)
    (12.0, 12.0, 12.4, 12.3),   # tiny: less than a pixel
    (0.0, 0.0, 48.0, 36.0),     # the whole image
    (3.5, 20.25, 9.75, 35.9),   # thin, touching the bottom
]


def _maps(n: int, m: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, m, m, generator=g)


def test_paste_matches_the_per_pixel_reference():
    h, w = 36, 48
    masks = _maps(len(PASTE_BOXES))
    boxes = torch.tensor(PASTE_BOXES)
    soft = paste_masks_detectron2(masks, boxes, (h, w), threshold=None)
    binary = paste_masks_detectron2(masks, boxes, (h, w))
    assert soft.dtype == torch.float32 and binary.dtype == torch.bool
    assert soft.shape == binary.shape == (len(PASTE_BOXES), h, w)
    for i, box in enumerate(PASTE_BOXES):
        ref = ref_paste_one(masks[i].numpy(), box, h, w)
        # only the box hull + 1 px is sampled; beyond it the reference is below 0.5 anyway
        x_lo, y_lo = max(math.floor(box[0]) - 1, 0), max(math.floor(box[1]) - 1, 0)
        x_hi, y_hi = min(math.ceil(box[2]) + 1, w), min(math.ceil(box[3]) + 1, h)
        inside = np.zeros((h, w), dtype=bool)
        inside[y_lo:y_hi, x_lo:x_hi] = True
        np.testing.assert_allclose(soft[i].numpy()[inside], ref[inside], atol=1e-6, rtol=0)
        assert (soft[i].numpy()[~inside] == 0).all() and (ref[~inside] < 0.5).all()
        assert np.array_equal(binary[i].numpy(), ref >= 0.5), box
    # the sub-pixel box covers no pixel centre; the partly outside boxes keep their inside part
    assert not binary[3].any() and binary[1].any() and binary[2].any()


def test_paste_is_sub_pixel_unlike_torchvisions():
    """A map of ones in the box (10.6, 5.2)-(30.4, 22.7): detectron2's paste covers exactly the
    pixels whose centre lies in the box (columns 11..29, rows 5..22); torchvision's cuts the
    box to whole pixels first (36 pixels differ here)."""
    masks = torch.ones(1, 28, 28)
    boxes = torch.tensor([[10.6, 5.2, 30.4, 22.7]])
    ours = paste_masks_detectron2(masks, boxes, (36, 48))[0]
    cols = ours.any(0).nonzero()[:, 0]
    rows = ours.any(1).nonzero()[:, 0]
    assert (int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])) == (11, 29, 5, 22)
    ref = ref_paste_one(masks[0].numpy(), tuple(boxes[0].tolist()), 36, 48) >= 0.5
    assert np.array_equal(ours.numpy(), ref)
    tv = paste_masks(masks[:, None], boxes, (36, 48), "torchvision")[0, 0]
    assert torch.equal(tv, tv_paste(masks[:, None], boxes, (36, 48))[0, 0] >= 0.5)
    assert int((tv != ours).sum()) == 36


def test_paste_chunks_and_empty_inputs():
    masks, boxes = _maps(len(PASTE_BOXES), 28, seed=1), torch.tensor(PASTE_BOXES)
    one_by_one = torch.stack([paste_masks_detectron2(masks[i:i + 1], boxes[i:i + 1], (36, 48))[0]
                              for i in range(len(PASTE_BOXES))])
    assert torch.equal(paste_masks_detectron2(masks, boxes, (36, 48)), one_by_one)
    assert paste_masks_detectron2(masks[:0], boxes[:0], (36, 48)).shape == (0, 36, 48)
    assert paste_masks(masks[:0, None], boxes[:0], (5, 6), "torchvision").shape == (0, 1, 5, 6)
    with pytest.raises(ValueError, match="mask paste"):
        paste_masks(masks, boxes, (36, 48), "nearest")


def test_detector_postprocess_scales_clips_drops_and_pastes():
    in_hw, out_hw = (100, 133), (48, 64)
    boxes = torch.tensor([[10.0, 20.0, 60.5, 70.25], [120.0, 5.0, 140.0, 30.0],
                          [140.0, 10.0, 150.0, 20.0], [-4.0, 90.0, 30.0, 110.0]])
    result = {"boxes": boxes, "labels": torch.tensor([1, 2, 3, 1]),
              "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]), "masks": _maps(4, 28)[:, None]}
    out = detector_postprocess(result, in_hw, out_hw)
    ref_boxes, keep = ref_postprocess(boxes, in_hw, out_hw)
    assert keep.tolist() == [True, True, False, True]  # box 2 lies right of the image
    np.testing.assert_allclose(out["boxes"].numpy(), ref_boxes, rtol=0, atol=1e-5)
    assert out["labels"].tolist() == [1, 2, 1] and out["scores"].tolist() == pytest.approx(
        [0.9, 0.8, 0.6])
    assert out["masks"].shape == (3, 1, *out_hw) and out["masks"].dtype == torch.bool
    for j, i in enumerate(np.nonzero(keep)[0]):
        ref = ref_paste_image(result["masks"][i, 0].numpy(), out["boxes"][j].numpy(), *out_hw)
        assert np.array_equal(out["masks"][j, 0].numpy(), ref >= 0.5)
    soft = detector_postprocess(result, in_hw, out_hw, mask_threshold=None)["masks"]
    assert soft.dtype == torch.float32 and torch.equal(soft >= 0.5, out["masks"])


def test_vectorised_reference_agrees_with_the_loop():
    masks = _maps(2, 5, seed=4).numpy()
    for mask, box in zip(masks, PASTE_BOXES[:2]):
        np.testing.assert_allclose(ref_paste_image(mask, np.array(box), 20, 24),
                                   ref_paste_one(mask, box, 20, 24), atol=1e-12)


# ---------------------------------------------------------------------------- end to end
def _tiny_detector(short: int) -> CocoDetector:
    torch.manual_seed(0)
    arch = get_variant("mvitv2_t_coco").arch.shallow(1)
    backbone = MViT(arch.replace(embed_dim=16, window_size=16, spatial_size=(224, 224)))
    return CocoDetector.build(
        backbone, 4, fpn={"out_channels": 32}, box_fc_dim=64, min_size=short, max_size=1333,
        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=30, box_detections_per_img=10,
        box_score_thresh=0.0).eval()


def _image(h: int = 480, w: int = 640) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    base = torch.stack([(x * 0.4) % 256, (y * 0.3) % 256, (x + y) % 256]).float()
    noise = torch.randint(-20, 21, (3, h, w), generator=g).float()
    return (base + noise).clamp(0, 255).to(torch.uint8)


def test_network_input_is_detectron2s_at_800():
    model = _tiny_detector(800)
    batch = model._preprocess([_image()])
    assert batch.image_sizes == [(800, 1067)]  # torchvision's transform makes 800 x 1066
    mean = torch.tensor([123.675, 116.28, 103.53])[:, None, None]  # detectron2's constants
    std = torch.tensor([58.395, 57.12, 57.375])[:, None, None]
    ref = (pil_resize(_image(), 800, 1067).float() - mean) / std
    torch.testing.assert_close(batch.tensors[0, :, :800, :1067], ref, rtol=0, atol=0)
    assert batch.tensors.shape[-2:] == (800, 1088) and batch.tensors[0, :, :, 1067:].eq(0).all()
    model.configure_inference(test_resize="torchvision")
    assert model._preprocess([_image()]).image_sizes == [(800, 1066)]


def test_end_to_end_outputs_are_in_original_pixels_and_match_the_resized_run():
    model = _tiny_detector(200)
    image = _image()
    with torch.no_grad():
        out = model({"images": [image]})[0]
        raw, sizes = model.detect([image])
        size = d2_output_shape(480, 640, 200, 1333)
        raw_resized, sizes_resized = model.detect([pil_resize(image, *size)])
    assert sizes == sizes_resized == [size] == [(200, 267)]
    for k in raw[0]:  # the model's resize is detectron2's: the resized run is the same run
        assert torch.equal(raw[0][k], raw_resized[0][k]), k
    d = out["boxes"].shape[0]
    assert d > 0 and out["masks"].shape == (d, 1, 480, 640) and out["masks"].dtype == torch.bool
    assert float(out["boxes"][:, 0::2].max()) <= 640 and float(out["boxes"][:, 1::2].max()) <= 480
    ref_boxes, keep = ref_postprocess(raw[0]["boxes"], size, (480, 640))
    np.testing.assert_allclose(out["boxes"].numpy(), ref_boxes, rtol=0, atol=1e-4)
    assert torch.equal(out["labels"], raw[0]["labels"][torch.from_numpy(keep)])
    probs = raw[0]["masks"][torch.from_numpy(keep), 0].numpy()
    for j in range(d):
        ref = ref_paste_image(probs[j], out["boxes"][j].numpy(), 480, 640) >= 0.5
        assert np.array_equal(out["masks"][j, 0].numpy(), ref), j
    # float input in [0, 1]: detectron2's float path (bilinear interpolate), same frame
    with torch.no_grad():
        out_f = model({"images": [image.float() / 255]})[0]
    assert out_f["masks"].shape[-2:] == (480, 640)


def test_torchvision_options_stay_available():
    model = _tiny_detector(200)
    model.configure_inference("torchvision", "torchvision", mask_threshold=None)
    image = _image().float() / 255
    with torch.no_grad():
        out = model.inference([image])[0]
        ref = model.detector([image])[0]  # torchvision's own resize + paste
    torch.testing.assert_close(out["boxes"], ref["boxes"], rtol=0, atol=1e-3)
    torch.testing.assert_close(out["masks"], ref["masks"], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="test resize"):
        model.configure_inference("pil")
    with pytest.raises(ValueError, match="mask paste"):
        model.configure_inference(mask_paste="nearest")


def test_task_keys_reach_the_model_and_test_images_stay_uint8(tmp_path):
    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.projects.coco_detection.task import CocoTask, build_detector

    demo = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "demo_shapes.yaml")
    opts = ["COCO.DATA_DIR", str(tmp_path), "COCO.DEMO_NUM_TRAIN", "2", "COCO.DEMO_NUM_VAL", "2",
            "COCO.DEMO_IMAGE_SIZE", "48", "MODEL.MVIT.EMBED_DIM", "8", "OUTPUT_DIR", str(tmp_path)]
    fns = [add_engine_config, CocoTask.add_config]
    cfg = load_config(demo, opts, extra_config_fns=fns)
    assert (cfg.COCO.INPUT.TEST_RESIZE, cfg.COCO.DETECTOR.MASK_PASTE) == ("detectron2",
                                                                          "detectron2")
    model = build_detector(cfg)
    assert (model.test_resize, model.mask_paste, model.mask_threshold) == (
        "detectron2", "detectron2", 0.5)
    image, target = CocoTask(cfg).build_dataset("val")[0]
    assert image.dtype == torch.uint8 and target["size"].tolist() == [48, 48]
    cfg = load_config(demo, opts + ["COCO.INPUT.TEST_RESIZE", "torchvision",
                                    "COCO.DETECTOR.MASK_PASTE", "torchvision"],
                      extra_config_fns=fns)
    assert (build_detector(cfg).test_resize, build_detector(cfg).mask_paste) == (
        "torchvision", "torchvision")
    cfg = load_config(demo, opts + ["COCO.INPUT.TEST_RESIZE", "cv2"], extra_config_fns=fns)
    with pytest.raises(ValueError, match="test resize"):
        build_detector(cfg)
