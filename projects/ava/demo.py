"""AVA visualisation: person boxes and their top actions drawn on a video (mp4 + PNG keyframes).

Like PySlowFast's ``tools/demo_net.py``: person boxes come from an AVA-format CSV
(``--boxes``, as ``visualization/ava_demo_precomputed_boxes.py``:
``video_id,timestamp,x1,y1,x2,y2,action_id,score``; the action column may be empty) or, without
one, from a person detector run on each keyframe (as its detectron2 predictor): the COCO
project's detector (``--detector-config CFG --detector-weights W``, e.g. a converted detectron2
MViTv2 checkpoint) or torchvision's Faster R-CNN (``--detector torchvision --detector-weights
W [--detector-arch fasterrcnn_resnet50_fpn]``), person class only, kept at
``--person-score-threshold`` (default ``AVA.DETECTION_SCORE_THRESH``, 0.8); nothing is downloaded. Detected boxes are saved
as ``OUTPUT/person_boxes.csv``, which ``--boxes`` reads back. Keyframes are every
``--keyframe-step`` seconds of the video (frame 0 = ``AVA.SEGMENT_START_SEC``; pass
``AVA.SEGMENT_START_SEC 0`` for a video of your own).

The model scores each keyframe's boxes on the clip centred there
(:class:`~mvit_tasks.projects.ava.predictor.AvaPredictor`: the test protocol, each clip read by seeking
to its window). The output is written in one streaming pass over the file's own frames at
their own times: a frame shows the boxes of the nearest keyframe within +-0.5 s, with the
``--top-k`` actions above ``--score-threshold``; each keyframe's PNG is the frame nearest to it. Memory
is bounded by a clip, not by the video. Captions stay legible at any size: the font scales
with the frame, lines are stacked by their measured height on a filled background, and each
label block is shifted inside the frame and away from the others
(:func:`mvit_tasks.utils.visualize.layout_labels`).

``--boxes`` takes detection CSVs (``ava_val_predicted_boxes.csv``, our
``ava_detections.csv``: 8th column a score, thresholded at ``AVA.DETECTION_SCORE_THRESH``) and
ground-truth CSVs (``ava_val_v2.2.csv``: 8th column a person id, every box kept); which one is
told from the file (an integer 8th column and an action id on every row: ground truth) or by
``--boxes-kind``.

``tools/demo.py --task ava --config-file CFG --weights W --input V.mp4 (--boxes B.csv |
--detector-weights D [--detector-config DCFG]) --output DIR [--labelmap LM.pbtxt] [KEY VALUE]``
"""
from __future__ import annotations

import argparse
import os
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mvit_tasks.utils.cli import (
    add_aliases,
    add_device_argument,
    parse_flags_and_overrides,
    resolve_device,
)

DEMO_NAME = "ava"
BOX_COLOUR = (0, 255, 0)
Captions = Dict[int, Tuple[np.ndarray, List[List[str]]]]  # second -> (boxes, lines per box)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/demo.py --task ava", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--weights", default="", help="checkpoint (default: MODEL.WEIGHTS)")
    p.add_argument("--random-weights", action="store_true",
                   help="run without weights on purpose (random scores; otherwise an error)")
    p.add_argument("--input", required=True, metavar="VIDEO",
                   help="segment video; frame 0 = AVA.SEGMENT_START_SEC")
    p.add_argument("--boxes", default="",
                   help="AVA-format person box CSV: detections (8th column a score, kept at "
                        ">= AVA.DETECTION_SCORE_THRESH) or ground truth (8th column a person "
                        "id, every box kept); without it a person detector finds the boxes")
    p.add_argument("--boxes-kind", choices=("auto", "detections", "groundtruth"),
                   default="auto", help="what --boxes holds (auto: an integer 8th column with "
                                        "an action id on every row is ground truth)")
    d = p.add_argument_group("person detector (without --boxes)")
    d.add_argument("--detector", choices=("auto", "coco", "torchvision"), default="auto",
                   help="coco: the COCO project's detector (--detector-config); torchvision: "
                        "its Faster R-CNN (auto: coco with --detector-config)")
    d.add_argument("--detector-config", default="", help="coco task config of the detector")
    d.add_argument("--detector-weights", default="", help="detector weights file")
    d.add_argument("--detector-arch", default="fasterrcnn_resnet50_fpn",
                   help="torchvision builder (fasterrcnn_resnet50_fpn, ..._v2, "
                        "fasterrcnn_mobilenet_v3_large_fpn, maskrcnn_resnet50_fpn, ...)")
    d.add_argument("--person-score-threshold", type=float, default=None,
                   help="lowest person score kept (default AVA.DETECTION_SCORE_THRESH)")
    d.add_argument("--person-label", type=int, default=None,
                   help="the detector's person label (default: the class named 'person')")
    d.add_argument("--keyframe-step", type=int, default=1, help="seconds between keyframes")
    p.add_argument("--video-id", default="", help="rows of this id (default: the video's stem)")
    p.add_argument("--labelmap", default="", help="class names (default: AVA.LABEL_MAP_FILE "
                                                  "if it exists, else the shipped AVA names)")
    p.add_argument("--output", required=True, help="folder for demo.mp4 and keyframe PNGs")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--score-threshold", type=float, default=0.3,
                   help="lowest action score shown (default: %(default)s)")
    add_device_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    add_aliases(p, [("--video", "--input"), ("--thresh", "--score-threshold"),
                    ("--person-thresh", "--person-score-threshold")])
    return p


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    return parse_flags_and_overrides(build_parser(), argv)


def draw(frame: np.ndarray, boxes: np.ndarray, texts: Sequence[Sequence[str]],
         blocks: Optional[list] = None) -> np.ndarray:
    """A copy of ``frame`` (H x W x 3 uint8) with the normalised ``boxes`` (N, 4) and each
    box's caption lines; ``blocks`` is their layout (computed when not given)."""
    import cv2

    from mvit_tasks.utils.visualize import draw_label_blocks

    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 400))
    for b in boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in (b[0] * w, b[1] * h, b[2] * w, b[3] * h))
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thick)
    if blocks is None:
        blocks = caption_layout(boxes, texts, h, w)
    return draw_label_blocks(out, blocks, [BOX_COLOUR] * len(blocks))


def caption_layout(boxes: np.ndarray, texts: Sequence[Sequence[str]], height: int,
                   width: int) -> list:
    """Label blocks of the captions (:func:`mvit_tasks.utils.visualize.layout_labels`) for
    normalised ``boxes`` on a ``height x width`` frame."""
    from mvit_tasks.utils.visualize import layout_labels

    px = [(b[0] * width, b[1] * height, b[2] * width, b[3] * height) for b in boxes]
    return layout_labels(px, texts, height, width)


def render(video: str, output: str, video_id: str, captions: Captions, start_sec: float,
           window_sec: float = 0.5, thread_type: Optional[str] = None) -> int:
    """Write ``output/demo.mp4`` and ``output/<video_id>_<s>.png`` in one pass over ``video``.

    Each decoded frame is drawn with the boxes of the nearest keyframe (``start_sec`` + its
    presentation time) when one is within ``window_sec``, and written at its own time; the
    PNG of keyframe ``s`` is the frame nearest to it (none if no frame is within
    ``window_sec``). Holds one frame at a time; each keyframe's caption layout is computed
    once. Returns the number of frames written.
    """
    from PIL import Image

    from mvit_tasks.data.video_io import NearestPicker, VideoWriter, iter_frames, probe_video

    stamps = np.asarray(sorted(captions), dtype=np.float64)
    picker = NearestPicker(stamps - start_sec)
    layouts: Dict[int, list] = {}

    def shown(frame: np.ndarray, ts: int) -> np.ndarray:
        boxes, texts = captions[ts]
        if ts not in layouts:
            layouts[ts] = caption_layout(boxes, texts, *frame.shape[:2])
        return draw(frame, boxes, texts, layouts[ts])

    def save_keyframes(won) -> None:
        for k, (t, frame) in won:
            ts = int(stamps[k])
            if abs(start_sec + t - ts) <= window_sec:
                Image.fromarray(shown(frame, ts)).save(
                    os.path.join(output, f"{video_id}_{ts:04d}.png"))

    count = 0
    with VideoWriter(os.path.join(output, "demo.mp4"), probe_video(video).fps or 30.0,
                     time_base=Fraction(1, 90000)) as writer:
        for t, frame in iter_frames(video, thread_type=thread_type):
            sec = start_sec + t
            near = int(stamps[np.argmin(np.abs(stamps - sec))])
            image = shown(frame, near) if abs(near - sec) <= window_sec else frame
            h, w = image.shape[:2]
            writer.write(image[:h - h % 2, :w - w % 2], time_sec=t)
            save_keyframes(picker.push(t, frame))
            count += 1
        save_keyframes(picker.finish())
    return count


def write_person_boxes(path: str, records) -> None:
    """Detected boxes as an AVA detection CSV (empty action id, 8th column the score)."""
    with open(path, "w") as f:
        for r in records:
            for (x1, y1, x2, y2), s in zip(r.boxes, r.scores):
                f.write(f"{r.video_id},{r.timestamp:04d},{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},,"
                        f"{s:.6f}\n")


def build_person_detector(args: argparse.Namespace, thresh: float, device):
    """The person detector the arguments name (see the module docstring)."""
    from .person_detector import CocoPersonDetector, torchvision_person_detector

    kind = args.detector if args.detector != "auto" else (
        "coco" if args.detector_config else "torchvision")
    if not args.detector_weights and not (kind == "coco" and args.detector_config):
        raise ValueError("no --boxes and no person detector: pass --boxes B.csv, or "
                         "--detector-weights W (torchvision Faster R-CNN) / --detector-config "
                         "CFG --detector-weights W (the COCO project's detector)")
    if kind == "coco":
        if not args.detector_config:
            raise ValueError("--detector coco needs --detector-config (a coco task config)")
        return CocoPersonDetector.from_config(args.detector_config, args.detector_weights,
                                              score_thresh=thresh,
                                              person_label=args.person_label, device=device)
    return torchvision_person_detector(args.detector_weights, args.detector_arch, thresh,
                                       1 if args.person_label is None else args.person_label,
                                       device)


def read_box_records(args: argparse.Namespace, cfg, vid: str) -> list:
    """The records of video ``vid`` in ``--boxes`` (detections thresholded, ground truth kept)."""
    from .converters.ava import read_ava_boxes
    from .evaluation.io import sniff_box_kind

    a = cfg.AVA
    kind = sniff_box_kind(args.boxes) if args.boxes_kind == "auto" else args.boxes_kind
    det = kind == "detections"  # ground truth: column 8 is a person id, not a score
    recs = [r for r in read_ava_boxes(args.boxes, allow_unlabelled=det,
                                      score_thresh=a.DETECTION_SCORE_THRESH if det else None,
                                      strict=a.STRICT_INPUT).values()
            if r.video_id == vid and len(r.boxes)]
    print(f"[demo] {args.boxes}: {kind} ({args.boxes_kind}), {len(recs)} keyframes of {vid!r}")
    if not recs:
        above = f" above {a.DETECTION_SCORE_THRESH}" if det else ""
        raise SystemExit(f"{args.boxes}: no boxes of video {vid!r}{above} ({kind})")
    return recs


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mvit_tasks.data.video_io import VideoDecodeError

    from .predictor import AvaPredictor, action_names, load_ava_config, top_actions

    args = parse_args(argv)
    cfg = load_ava_config(args.config_file, args.opts, args.weights)
    if not cfg.MODEL.WEIGHTS and not args.random_weights:
        raise SystemExit("demo --task ava: no weights (--weights or MODEL.WEIGHTS): the "
                         "actions shown would be random; pass --random-weights to run so")
    for path in (args.input, args.boxes, args.detector_weights):
        if path and not os.path.isfile(path):  # before building the models
            raise FileNotFoundError(f"file not found: {path}")
    device = resolve_device(args.device)
    predictor = AvaPredictor.from_cfg(cfg, device)
    a = cfg.AVA
    names = action_names(cfg, args.labelmap)
    vid = args.video_id or os.path.splitext(os.path.basename(args.input))[0]
    os.makedirs(args.output, exist_ok=True)
    if args.boxes:
        recs = read_box_records(args, cfg, vid)
    else:
        thresh = (a.DETECTION_SCORE_THRESH if args.person_score_threshold is None
                  else args.person_score_threshold)
        detector = build_person_detector(args, thresh, device)
        seconds = predictor.keyframe_seconds(args.input, args.keyframe_step)
        recs = predictor.detect_persons(args.input, vid, detector, seconds)
        write_person_boxes(os.path.join(args.output, "person_boxes.csv"), recs)
        print(f"[demo] person detector: {sum(len(r.boxes) for r in recs)} persons >= "
              f"{thresh:g} on {len(recs)} of {len(seconds)} keyframes of {vid!r} -> "
              f"{os.path.join(args.output, 'person_boxes.csv')}")
        if not recs:
            raise SystemExit(f"{args.input}: no person scored >= {thresh:g} on any keyframe "
                             "(lower --person-score-threshold, or give --boxes)")
    try:
        scores = predictor.predict(args.input, recs)
    except VideoDecodeError as e:
        raise SystemExit(f"cannot read {args.input}: {e.reason}") from None
    captions = {ts: (boxes, top_actions(s, names, args.top_k, args.score_threshold))
                for ts, (boxes, s) in scores.items()}
    render(args.input, args.output, vid, captions, a.SEGMENT_START_SEC,
           thread_type=predictor.decode_threads)
    return 0
