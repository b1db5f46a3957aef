"""AVA visualisation: person boxes and their top actions drawn on a video (mp4 + PNG keyframes).

Like PySlowFast's ``tools/demo_net.py`` with precomputed boxes
(``visualization/ava_demo_precomputed_boxes.py``): boxes come from an AVA-format CSV
(``video_id,timestamp,x1,y1,x2,y2,action_id,score``; the action column may be empty), the
model scores each keyframe's boxes on the clip centred there, and every frame shows the boxes
of its nearest keyframe with the ``--top-k`` actions above ``--thresh``.

Clips are sampled as in training (:class:`projects.ava.dataset.AvaKeyframeDataset`: the
``AVA.FPS`` time grid, nearest frame by presentation time), each read by seeking to its
window. The output is then written in one streaming pass over the file's own frames, at their
own times (so at the file's rate, variable rates included): a frame shows the boxes of the
nearest keyframe within +-0.5 s of its presentation time; each keyframe's PNG is the frame
nearest to it. Memory is bounded by a clip, not by the video.

``--boxes`` takes detection CSVs (``ava_val_predicted_boxes.csv``, our
``ava_detections.csv``: 8th column a score, thresholded at ``AVA.DETECTION_SCORE_THRESH``) and
ground-truth CSVs (``ava_val_v2.2.csv``: 8th column a person id, every box kept); which one is
told from the file (an integer 8th column and an action id on every row: ground truth) or by
``--boxes-kind``.

``tools/demo.py --task ava --config-file CFG --weights W --video V.mp4 --boxes B.csv
--output DIR [--labelmap LM.pbtxt] [--boxes-kind auto|detections|groundtruth] [KEY VALUE ...]``
"""
from __future__ import annotations

import argparse
import os
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

DEMO_NAME = "ava"
Captions = Dict[int, Tuple[np.ndarray, List[str]]]  # keyframe second -> (boxes, texts)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/demo.py --task ava", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", default="", help="checkpoint (default: MODEL.WEIGHTS)")
    p.add_argument("--random-weights", action="store_true",
                   help="run without weights on purpose (random scores; otherwise an error)")
    p.add_argument("--video", required=True, help="segment video; frame 0 = AVA.SEGMENT_START_SEC")
    p.add_argument("--boxes", required=True,
                   help="AVA-format person box CSV: detections (8th column a score, kept at "
                        ">= AVA.DETECTION_SCORE_THRESH) or ground truth (8th column a person "
                        "id, every box kept)")
    p.add_argument("--boxes-kind", choices=("auto", "detections", "groundtruth"),
                   default="auto", help="what --boxes holds (auto: an integer 8th column with "
                                        "an action id on every row is ground truth)")
    p.add_argument("--video-id", default="", help="rows of this id (default: the video's stem)")
    p.add_argument("--labelmap", default="", help="class names (default: AVA.LABEL_MAP_FILE)")
    p.add_argument("--output", required=True, help="folder for demo.mp4 and keyframe PNGs")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--thresh", type=float, default=0.3, help="lowest action score shown")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(argv)


def draw(frame: np.ndarray, boxes: np.ndarray, texts: List[str]) -> np.ndarray:
    """Draw normalised ``boxes`` (N, 4) and one caption each on an ``H x W x 3`` uint8 frame."""
    import cv2

    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    scale = max(0.3, min(h, w) / 600)
    for b, text in zip(boxes, texts):
        x1, y1, x2, y2 = (int(round(v)) for v in (b[0] * w, b[1] * h, b[2] * w, b[3] * h))
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 1)
        for j, line in enumerate(text.split("\n")):
            cv2.putText(out, line, (x1 + 1, max(8, y1 + int(10 * scale) * (j + 1))),
                        cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def render(video: str, output: str, video_id: str, captions: Captions, start_sec: float,
           window_sec: float = 0.5, thread_type: Optional[str] = None) -> int:
    """Write ``output/demo.mp4`` and ``output/<video_id>_<s>.png`` in one pass over ``video``.

    Each decoded frame is drawn with the boxes of the nearest keyframe (``start_sec`` + its
    presentation time) when one is within ``window_sec``, and written at its own time; the
    PNG of keyframe ``s`` is the frame nearest to it (none if no frame is within
    ``window_sec``). Holds one frame at a time. Returns the number of frames written.
    """
    from PIL import Image

    from mvit_tasks.data.video_io import NearestPicker, VideoWriter, iter_frames, probe_video

    stamps = np.asarray(sorted(captions), dtype=np.float64)
    picker = NearestPicker(stamps - start_sec)

    def save_keyframes(won) -> None:
        for k, (t, frame) in won:
            ts = int(stamps[k])
            if abs(start_sec + t - ts) <= window_sec:
                Image.fromarray(draw(frame, *captions[ts])).save(
                    os.path.join(output, f"{video_id}_{ts:04d}.png"))

    count = 0
    with VideoWriter(os.path.join(output, "demo.mp4"), probe_video(video).fps or 30.0,
                     time_base=Fraction(1, 90000)) as writer:
        for t, frame in iter_frames(video, thread_type=thread_type):
            sec = start_sec + t
            near = int(stamps[np.argmin(np.abs(stamps - sec))])
            shown = draw(frame, *captions[near]) if abs(near - sec) <= window_sec else frame
            h, w = shown.shape[:2]
            writer.write(shown[:h - h % 2, :w - w % 2], time_sec=t)
            save_keyframes(picker.push(t, frame))
            count += 1
        save_keyframes(picker.finish())
    return count


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config

    from .collate import ava_collate
    from .converters.ava import read_ava_boxes
    from .dataset import AvaKeyframeDataset
    from .evaluation.io import read_labelmap, sniff_box_kind
    from .task import AvaTask

    args = parse_args(argv)
    opts = list(args.opts)
    if args.weights:  # a trained AVA checkpoint: every key must match
        opts += ["MODEL.WEIGHTS", args.weights, "MODEL.WEIGHTS_ALLOW_MISSING", "[]",
                 "MODEL.WEIGHTS_ALLOW_UNEXPECTED", "[]"]
    cfg = load_config(args.config_file, opts,
                      extra_config_fns=[add_engine_config, AvaTask.add_config])
    if not cfg.MODEL.WEIGHTS and not args.random_weights:
        raise SystemExit("demo --task ava: no weights (--weights or MODEL.WEIGHTS): the "
                         "actions shown would be random; pass --random-weights to run so")
    task = AvaTask(cfg)
    model = task.build_model().eval()
    a = cfg.AVA
    lm = read_labelmap(args.labelmap or task._ann(a.LABEL_MAP_FILE))
    names = dict(zip(lm.ids, lm.names))
    vid = args.video_id or os.path.splitext(os.path.basename(args.video))[0]
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
    threads = None if a.DECODE_THREADS == "NONE" else a.DECODE_THREADS
    ds = AvaKeyframeDataset(recs, {vid: args.video}, "test", cfg.DATA.NUM_FRAMES,
                            cfg.DATA.SAMPLING_RATE, cfg.MODEL.NUM_CLASSES, a.FPS,
                            a.SEGMENT_START_SEC, test_short_side=a.TEST_SHORT_SIDE
                            or cfg.DATA.TEST_CROP_SIZE, mean=tuple(cfg.DATA.MEAN),
                            std=tuple(cfg.DATA.STD), decode_threads=threads)
    captions = {}
    with torch.no_grad():
        for i, rec in enumerate(recs):
            batch = ava_collate([ds[i]])
            if not batch["num_samples"]:
                raise SystemExit(f"cannot read {args.video}: {batch['skipped']}")
            scores = model(batch)[0]["scores"].numpy()
            texts = []
            for s in scores:
                top = [j for j in np.argsort(-s)[:args.top_k] if s[j] >= args.thresh]
                texts.append("\n".join(f"{names.get(j + 1, j + 1)} {s[j]:.2f}" for j in top))
            captions[rec.timestamp] = (rec.boxes, texts)
    os.makedirs(args.output, exist_ok=True)
    render(args.video, args.output, vid, captions, a.SEGMENT_START_SEC, thread_type=threads)
    return 0
