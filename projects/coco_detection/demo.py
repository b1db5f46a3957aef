"""``tools/demo.py --task coco``: draw a trained detector's boxes, labels and masks on images.

Like detectron2's ``demo/demo.py`` (``--config-file``, ``--input``, ``--output``,
``--confidence-threshold``, trailing ``KEY VALUE`` overrides), on this project's ``coco`` task
config; drawing is plain OpenCV (masks blended at 50 %, one colour per class)::

    python tools/demo.py --task coco \\
        --config-file projects/coco_detection/configs/demo_shapes.yaml \\
        --weights output/demo_coco_shapes/checkpoints/last.pth \\
        --input datasets/demo_coco_shapes/val/000000.png --output demo.png
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Dict, List, Sequence

import cv2
import numpy as np
import torch

DEMO_NAME = "coco"
logger = logging.getLogger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/demo.py --task coco",
                                description="Detections of a coco-task model drawn on images.")
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--weights", default="", help="checkpoint (default: MODEL.WEIGHTS, else "
                   "OUTPUT_DIR/checkpoints/last.pth)")
    p.add_argument("--input", nargs="+", required=True, help="image file(s)")
    p.add_argument("--output", required=True,
                   help="PNG file (one input) or folder (written as <input name>.png)")
    p.add_argument("--confidence-threshold", type=float, default=0.5)
    p.add_argument("--cpu", action="store_true", help="do not use CUDA even if available")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(list(argv))


def _colours(n: int) -> np.ndarray:
    """``n x 3`` uint8 BGR colours, evenly spaced hues."""
    hsv = np.stack([np.linspace(0, 179, n, endpoint=False), np.full(n, 220), np.full(n, 255)],
                   axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def draw_detections(image_bgr: np.ndarray, det: Dict[str, torch.Tensor], names: List[str],
                    threshold: float = 0.5) -> np.ndarray:
    """A copy of ``image_bgr`` (H x W x 3 uint8) with the detections scoring >= ``threshold``.

    Args:
        det: ``boxes`` (D x 4 xyxy pixels of this image), ``labels`` (D, 1..K), ``scores``
            (D) and optionally ``masks`` (D x 1 x H x W probabilities, drawn at > 0.5).
        names: class names by label (index 0 = background).
    """
    out = image_bgr.copy()
    colours = _colours(max(len(names), 2))
    keep = det["scores"] >= threshold
    boxes = det["boxes"][keep].round().int().tolist()
    labels = det["labels"][keep].tolist()
    scores = det["scores"][keep].tolist()
    masks = det.get("masks")
    if masks is not None:
        binary = (masks[keep][:, 0] > 0.5).cpu().numpy()
        for m, lab in zip(binary, labels):
            out[m] = (0.5 * out[m] + 0.5 * colours[lab % len(colours)]).astype(np.uint8)
    for (x1, y1, x2, y2), lab, score in zip(boxes, labels, scores):
        colour = tuple(int(c) for c in colours[lab % len(colours)])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1)
        name = names[lab] if 0 <= lab < len(names) else f"class {lab}"
        cv2.putText(out, f"{name} {score:.2f}", (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.3, colour, 1, cv2.LINE_AA)
    return out


def main(argv: Sequence[str]) -> int:
    """Run the demo; returns the exit status (0 = every image written)."""
    args = parse_args(argv)
    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config

    from .task import CocoTask, build_detector

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config_file, args.opts,
                      extra_config_fns=[add_engine_config, CocoTask.add_config], freeze=False)
    weights = args.weights or cfg.MODEL.WEIGHTS or os.path.join(cfg.OUTPUT_DIR, "checkpoints",
                                                                 "last.pth")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"checkpoint {weights} not found (train first, or --weights)")
    cfg.MODEL.WEIGHTS = weights
    cfg.COCO.BACKBONE_WEIGHTS = ""
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    model = build_detector(cfg).to(device).eval()
    task = CocoTask.__new__(CocoTask)  # names only: no demo-data generation
    task.cfg = cfg
    names = _names(task, cfg.MODEL.NUM_CLASSES)
    single = len(args.input) == 1 and not os.path.isdir(args.output)
    if not single:
        os.makedirs(args.output, exist_ok=True)
    for path in args.input:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)
        with torch.no_grad():
            # uint8 in: the model resizes it as detectron2's DefaultPredictor (PIL bilinear)
            det = model({"images": [rgb.to(device)]})[0]
        det = {k: v.cpu() for k, v in det.items()}
        out_path = args.output if single else os.path.join(
            args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
        if not cv2.imwrite(out_path, draw_detections(bgr, det, names,
                                                     args.confidence_threshold)):
            raise OSError(f"cannot write {out_path}")
        n = int((det["scores"] >= args.confidence_threshold).sum())
        logger.info("%s: %d detections >= %.2f -> %s", path, n, args.confidence_threshold,
                    out_path)
    return 0


def _names(task: object, num_classes: int) -> List[str]:
    """Class names from the config's val json if readable, else ``class <i>``."""
    try:
        names = task.class_names("val")  # type: ignore[attr-defined]
    except (OSError, ValueError, KeyError):
        names = []
    if len(names) != num_classes:
        names = ["__background__"] + [f"class {i}" for i in range(1, num_classes)]
    return names


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
