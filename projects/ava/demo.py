"""AVA visualisation: person boxes and their top actions drawn on a video (mp4 + PNG keyframes).

Like PySlowFast's ``tools/demo_net.py`` with precomputed boxes
(``visualization/ava_demo_precomputed_boxes.py``): boxes come from an AVA-format CSV
(``video_id,timestamp,x1,y1,x2,y2,action_id,score``; the action column may be empty), the
model scores each keyframe's boxes on the clip centred there, and every frame shows the boxes
of its nearest keyframe with the ``--top-k`` actions above ``--thresh``.

``tools/demo.py --task ava --config-file CFG --weights W --video V.mp4 --boxes B.csv
--output DIR [--labelmap LM.pbtxt] [KEY VALUE ...]``
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence

import numpy as np

DEMO_NAME = "ava"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/demo.py --task ava", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", default="", help="checkpoint (default: MODEL.WEIGHTS)")
    p.add_argument("--video", required=True, help="segment video; frame 0 = AVA.SEGMENT_START_SEC")
    p.add_argument("--boxes", required=True, help="AVA-format person box CSV")
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    from mvit_tasks.config import load_config
    from mvit_tasks.data.video_io import read_frames, write_video
    from mvit_tasks.engine.defaults import add_engine_config

    from .collate import ava_collate
    from .converters.ava import read_ava_boxes
    from .dataset import AvaKeyframeDataset
    from .evaluation.io import read_labelmap
    from .task import AvaTask

    args = parse_args(argv)
    opts = list(args.opts)
    if args.weights:  # a trained AVA checkpoint: every key must match
        opts += ["MODEL.WEIGHTS", args.weights, "MODEL.WEIGHTS_ALLOW_MISSING", "[]",
                 "MODEL.WEIGHTS_ALLOW_UNEXPECTED", "[]"]
    cfg = load_config(args.config_file, opts,
                      extra_config_fns=[add_engine_config, AvaTask.add_config])
    task = AvaTask(cfg)
    model = task.build_model().eval()
    a = cfg.AVA
    lm = read_labelmap(args.labelmap or task._ann(a.LABEL_MAP_FILE))
    names = dict(zip(lm.ids, lm.names))
    vid = args.video_id or os.path.splitext(os.path.basename(args.video))[0]
    recs = [r for r in read_ava_boxes(args.boxes, allow_unlabelled=True,
                                      score_thresh=a.DETECTION_SCORE_THRESH).values()
            if r.video_id == vid and len(r.boxes)]
    if not recs:
        raise SystemExit(f"{args.boxes}: no boxes of video {vid!r} above "
                         f"{a.DETECTION_SCORE_THRESH}")
    ds = AvaKeyframeDataset(recs, {vid: args.video}, "test", cfg.DATA.NUM_FRAMES,
                            cfg.DATA.SAMPLING_RATE, cfg.MODEL.NUM_CLASSES, a.FPS,
                            a.SEGMENT_START_SEC, test_short_side=a.TEST_SHORT_SIDE
                            or cfg.DATA.TEST_CROP_SIZE, mean=tuple(cfg.DATA.MEAN),
                            std=tuple(cfg.DATA.STD))
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
    frames, _ = read_frames(args.video, lambda info: range(info.num_frames or 1))
    frames = frames.numpy()
    os.makedirs(args.output, exist_ok=True)
    stamps = np.asarray(sorted(captions))
    out = np.empty_like(frames)
    for t in range(len(frames)):
        sec = a.SEGMENT_START_SEC + t / a.FPS
        near = int(stamps[np.argmin(np.abs(stamps - sec))])
        out[t] = draw(frames[t], *captions[near]) if abs(near - sec) <= 0.5 else frames[t]
    from PIL import Image

    for ts, (boxes, texts) in captions.items():
        k = int(round((ts - a.SEGMENT_START_SEC) * a.FPS))
        if 0 <= k < len(frames):
            Image.fromarray(draw(frames[k], boxes, texts)).save(
                os.path.join(args.output, f"{vid}_{ts:04d}.png"))
    h, w = out.shape[1:3]
    write_video(os.path.join(args.output, "demo.mp4"), out[:, :h - h % 2, :w - w % 2],
                fps=a.FPS)
    return 0
