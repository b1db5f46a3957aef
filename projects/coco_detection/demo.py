"""``tools/demo.py --task coco``: a detector's boxes, labels and masks drawn on images or videos.

Like detectron2's ``demo/demo.py`` (``--config-file``, ``--input``, ``--output``, a score
threshold, here ``--score-threshold``, trailing ``KEY VALUE`` overrides), on this project's
``coco`` task config (:class:`~mvit_tasks.projects.coco_detection.predictor.CocoPredictor`)::

    python tools/demo.py --task coco \\
        --config-file projects/coco_detection/configs/demo_shapes.yaml \\
        --weights output/demo_coco_shapes/checkpoints/last.pth \\
        --input datasets/demo_coco_shapes/val/000000.png --output demo.png

``--input`` takes images, videos and folders of them; ``--output`` is a file for one input
(``.png`` / ``.jpg`` for an image, ``.mp4`` for a video) or a folder (``<input name>.png``,
``<input name>.mp4``). A video is read and written frame by frame, at its own frame times.
Drawing: masks blended at 45 % with their outline, one colour per class; each label ``name
score`` on a filled background, scaled with the image, inside it and never over another label
(:func:`mvit_tasks.utils.visualize.layout_labels`). Class names come from the config's val
json (``COCO.VAL_JSON``), else COCO's 80 names for an 81-class model, else ``class <i>``.
"""
from __future__ import annotations

import argparse
import logging
import os
from fractions import Fraction
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from mvit_tasks.utils.cli import (
    add_deprecated_alias,
    add_device_argument,
    parse_with_overrides,
    resolve_device,
)

DEMO_NAME = "coco"
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/demo.py --task coco", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--weights", default="", help="checkpoint (default: MODEL.WEIGHTS, else "
                   "OUTPUT_DIR/checkpoints/last.pth)")
    p.add_argument("--input", nargs="+", required=True, help="image(s), video(s), folder(s)")
    p.add_argument("--output", required=True,
                   help="a file (one input) or a folder (written as <input name>.png / .mp4)")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="lowest detection score drawn (default: %(default)s)")
    add_device_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_deprecated_alias(p, "--confidence-threshold", "--score-threshold")
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return parse_with_overrides(build_parser(), argv)  # --input a.mp4 KEY VALUE: the overrides are opts


def draw_detections(image: np.ndarray, det: Dict[str, torch.Tensor], names: Sequence[str],
                    threshold: float = 0.5) -> np.ndarray:
    """A copy of ``image`` (H x W x 3 uint8 RGB) with the detections scoring >= ``threshold``.

    Args:
        det: ``boxes`` (D x 4 xyxy pixels of this image), ``labels`` (D, 1..K-1), ``scores``
            (D) and optionally ``masks`` (D x H x W bool, or D x 1 x H x W, drawn at > 0.5).
        names: class names by label (index 0 = background).
    """
    import cv2

    from mvit_tasks.utils.visualize import draw_label_blocks, layout_labels, palette

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    colours = palette(max(len(names) - 1, 1))
    keep = torch.nonzero(det["scores"] >= threshold).flatten()
    keep = keep[torch.argsort(det["scores"][keep], descending=True)]  # best labelled first
    labels = det["labels"][keep].tolist()
    colour_of = [colours[(lab - 1) % len(colours)] for lab in labels]
    masks = det.get("masks")
    if masks is not None and len(keep):
        masks = masks[keep]
        binary = (masks[:, 0] if masks.ndim == 4 else masks).float().numpy() > 0.5
        for m, colour in zip(binary, colour_of):
            out[m] = (0.55 * out[m] + 0.45 * np.asarray(colour)).astype(np.uint8)
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour, 1, cv2.LINE_AA)
    thick = max(1, round(min(h, w) / 400))
    boxes = det["boxes"][keep].tolist()
    for (x1, y1, x2, y2), colour in zip(boxes, colour_of):
        cv2.rectangle(out, (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2))),
                      colour, thick)
    texts = [[f"{names[lab] if 0 <= lab < len(names) else f'class {lab}'} {s:.2f}"]
             for lab, s in zip(labels, det["scores"][keep].tolist())]
    return draw_label_blocks(out, layout_labels(boxes, texts, h, w), colour_of)


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """The files of ``inputs``: files as given, folders as their images and videos (sorted)."""
    from mvit_tasks.data.frames import IMAGE_EXTENSIONS

    out: List[str] = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f"{path}: no image or video in this folder")
            out += found
        elif os.path.isfile(path):
            out.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return out


def output_path(path: str, output: str, single: bool) -> str:
    """Where ``path``'s drawing goes: ``output`` itself for a single input given a file name,
    else ``output/<stem>.png`` (images) or ``.mp4`` (videos)."""
    video = path.lower().endswith(VIDEO_EXTENSIONS)
    if single and not os.path.isdir(output) and os.path.splitext(output)[1]:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        return output
    os.makedirs(output, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(output, stem + (".mp4" if video else ".png"))


def run_image(predictor, path: str, out_path: str, threshold: float) -> int:
    """Draw the detections of one image into ``out_path``; returns how many were drawn."""
    from PIL import Image

    from mvit_tasks.data.frames import read_image

    rgb = read_image(path).numpy()
    det = predictor(rgb)
    Image.fromarray(draw_detections(rgb, det, predictor.class_names, threshold)).save(out_path)
    return int((det["scores"] >= threshold).sum())


def run_video(predictor, path: str, out_path: str, threshold: float) -> Tuple[int, int]:
    """Draw every frame of a video into the mp4 ``out_path`` (one frame in memory, frames at
    their own times); returns ``(frames, detections drawn)``."""
    from mvit_tasks.data.video_io import VideoWriter, iter_frames, probe_video

    frames = found = 0
    with VideoWriter(out_path, probe_video(path).fps or 30.0,
                     time_base=Fraction(1, 90000)) as writer:
        for t, rgb in iter_frames(path):
            det = predictor(rgb)
            shown = draw_detections(rgb, det, predictor.class_names, threshold)
            h, w = shown.shape[:2]
            writer.write(np.ascontiguousarray(shown[:h - h % 2, :w - w % 2]), time_sec=t)
            frames += 1
            found += int((det["scores"] >= threshold).sum())
    return frames, found


def main(argv: Sequence[str]) -> int:
    """Run the demo; returns the exit status (0 = every input written)."""
    from mvit_tasks.data.video_io import VideoDecodeError
    from mvit_tasks.utils.cli import UserError

    from .predictor import CocoPredictor

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = expand_inputs(args.input)  # before building the model
    device = resolve_device(args.device)
    predictor = CocoPredictor.from_config(args.config_file, args.weights, args.opts, device)
    for path in paths:
        out_path = output_path(path, args.output, len(paths) == 1)
        try:
            if path.lower().endswith(VIDEO_EXTENSIONS):
                frames, n = run_video(predictor, path, out_path, args.score_threshold)
                logger.info("%s: %d frames, %d detections >= %.2f -> %s", path, frames, n,
                            args.score_threshold, out_path)
            else:
                n = run_image(predictor, path, out_path, args.score_threshold)
                logger.info("%s: %d detections >= %.2f -> %s", path, n,
                            args.score_threshold, out_path)
        except VideoDecodeError as e:  # the user's file: one line
            raise UserError(str(e)) from None
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
