"""A tiny AVA-format demo dataset: moving coloured rectangles ("persons") in real mp4 segments.

Everything is in AVA's own formats (https://research.google.com/ava/download.html), so the
same task code reads it as it reads AVA v2.2:

- ``videos/<video_id>.mp4``: H.264 "segments" that start at second ``START_SEC`` (900, as AVA's
  15-min segments), ``fps`` frames per second;
- ``annotations/ava_{train,val}_v2.2.csv``: ground truth at 1 Hz keyframes
  (``video_id,timestamp,x1,y1,x2,y2,action_id,person_id``, normalised boxes, one row per
  action of a person);
- ``annotations/ava_{train,val}_predicted_boxes.csv``: noisy "detector" boxes with scores and an
  empty action column (as ``ava_val_predicted_boxes.csv``), plus low-score false positives;
- ``annotations/ava_action_list_demo.pbtxt``: the label map; ``ava_val_excluded_timestamps.csv``:
  one excluded keyframe.

Actions are only visible over time: per keyframe each person walks left, walks right or stands
(one of ids 1-3), and may additionally "wave" (id 4, its width pulses), so labels are
multi-label. The window ``[s - 0.5, s + 0.5)`` s around keyframe ``s`` shows that keyframe's
actions. Output is deterministic from ``seed``; a ``.complete`` marker makes a finished folder
reusable.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np

START_SEC = 900
CLASSES: List[Tuple[int, str]] = [(1, "walk_left"), (2, "walk_right"), (3, "stand"),
                                  (4, "wave")]
_SPEED = 1.5  # pixels per frame
_MARKER = ".complete"


def _labelmap_text() -> str:
    return "".join(f'label {{\n  name: "{n}"\n  label_id: {i}\n  label_type: PERSON_MOVEMENT\n}}\n'
                   for i, n in CLASSES)


def _render_video(rng: np.random.Generator, num_keyframes: int, size: Tuple[int, int],
                  fps: int) -> Tuple[np.ndarray, List[Dict]]:
    """Frames ``T x H x W x 3`` and per-person per-keyframe ``{"box", "actions"}``."""
    h, w = size
    seconds = num_keyframes + 3  # keyframes 902 .. 902 + K - 1, one second of margin at the end
    t_total = seconds * fps
    bg = rng.integers(10, 70, size=(h, w, 3), dtype=np.uint8)
    frames = np.repeat(bg[None], t_total, axis=0).copy()
    n_persons = int(rng.integers(1, 3))
    bands = [h * 0.3, h * 0.7] if n_persons == 2 else [h * (0.35 + 0.3 * rng.random())]
    people: List[Dict] = []
    for p in range(n_persons):
        color = rng.integers(150, 256, size=3).astype(np.uint8)
        bw, bh = float(rng.uniform(0.10, 0.16) * w), float(rng.uniform(0.28, 0.36) * h)
        x0 = x = float(rng.uniform(0.2, 0.8) * w)
        cy = bands[p]
        phase = float(rng.uniform(0, 2 * math.pi))
        acts: List[Tuple[int, bool]] = []
        per_kf: List[Dict] = []
        span = _SPEED * fps
        for k in range(num_keyframes + 3):  # seconds 900 .. 900 + seconds - 1
            choices = [3]
            if x - span > bw:
                choices.append(1)
            if x + span < w - bw:
                choices.append(2)
            move = int(rng.choice(choices))
            wave = bool(rng.random() < 0.4)
            acts.append((move, wave))
            x += {1: -span, 2: span, 3: 0.0}[move]
        x = x0  # the loop above only planned feasible moves; now render them frame by frame
        boxes_per_frame = []
        for t in range(t_total):
            sec = int(math.floor(t / fps + 0.5))  # window [s - 0.5, s + 0.5) of second s
            move, wave = acts[min(sec, len(acts) - 1)]
            if t > 0:
                prev_move = acts[min(int(math.floor((t - 1) / fps + 0.5)), len(acts) - 1)][0]
                x += {1: -_SPEED, 2: _SPEED, 3: 0.0}[prev_move]
            cur_w = bw * (1.0 + 0.45 * math.sin(2 * math.pi * t / 5 + phase)) if wave else bw
            x1, x2 = max(0.0, x - cur_w / 2), min(float(w), x + cur_w / 2)
            y1, y2 = max(0.0, cy - bh / 2), min(float(h), cy + bh / 2)
            frames[t, int(round(y1)):int(round(y2)), int(round(x1)):int(round(x2))] = color
            boxes_per_frame.append((x1 / w, y1 / h, x2 / w, y2 / h))
        for k in range(num_keyframes):
            sec = 2 + k
            move, wave = acts[sec]
            per_kf.append({"box": boxes_per_frame[sec * fps],
                           "actions": [move] + ([4] if wave else [])})
        people.append({"keyframes": per_kf})
    return frames, people


def generate_demo_ava(root: str, num_train_videos: int = 24, num_val_videos: int = 8,
                      num_keyframes: int = 8, size: Tuple[int, int] = (64, 96), fps: int = 10,
                      seed: int = 0) -> Dict[str, str]:
    """Write the demo dataset into ``root`` (skipped when ``root/.complete`` matches).

    Args:
        root: output folder.
        num_train_videos / num_val_videos: segments per split.
        num_keyframes: annotated keyframes per segment (seconds 902, 903, ...).
        size: frame ``(H, W)`` (even).
        fps: frame rate of the segments (the task's ``AVA.FPS`` must match).
        seed: everything is a function of it.

    Returns:
        ``{name: path}`` of the written files (``videos`` is the folder).
    """
    from mvit_tasks.data.video_io import write_video

    params = dict(num_train_videos=num_train_videos, num_val_videos=num_val_videos,
                  num_keyframes=num_keyframes, size=list(size), fps=fps, seed=seed)
    ann = os.path.join(root, "annotations")
    paths = {"videos": os.path.join(root, "videos"),
             "labelmap": os.path.join(ann, "ava_action_list_demo.pbtxt"),
             "exclusions": os.path.join(ann, "ava_val_excluded_timestamps.csv")}
    for split in ("train", "val"):
        paths[f"{split}_gt"] = os.path.join(ann, f"ava_{split}_v2.2.csv")
        paths[f"{split}_boxes"] = os.path.join(ann, f"ava_{split}_predicted_boxes.csv")
    marker = os.path.join(root, _MARKER)
    if os.path.isfile(marker):
        with open(marker) as f:
            if json.load(f) == params:
                return paths
    os.makedirs(paths["videos"], exist_ok=True)
    os.makedirs(ann, exist_ok=True)
    rng = np.random.default_rng(seed)
    fmt = "%s,%04d,%.3f,%.3f,%.3f,%.3f,%s,%s\n"
    for split, n_videos in (("train", num_train_videos), ("val", num_val_videos)):
        gt_rows: List[str] = []
        det_rows: List[str] = []
        for v in range(n_videos):
            vid = f"demo_{split}_{v:03d}"
            frames, people = _render_video(rng, num_keyframes, size, fps)
            write_video(os.path.join(paths["videos"], vid + ".mp4"), frames, fps=fps,
                        options={"g": str(fps)})
            for k in range(num_keyframes):
                ts = START_SEC + 2 + k
                for pid, person in enumerate(people):
                    kf = person["keyframes"][k]
                    for a in kf["actions"]:
                        gt_rows.append(fmt % (vid, ts, *kf["box"], a, pid))
                    noisy = np.clip(np.asarray(kf["box"]) + rng.normal(0, 0.012, 4), 0, 1)
                    noisy[2:] = np.maximum(noisy[2:], noisy[:2])
                    det_rows.append(fmt % (vid, ts, *noisy, "", f"{rng.uniform(0.82, 0.99):.4f}"))
                if rng.random() < 0.3:  # a false positive; most fall under the 0.8 threshold
                    x1, y1 = rng.uniform(0, 0.7, 2)
                    box = (x1, y1, x1 + rng.uniform(0.1, 0.3), y1 + rng.uniform(0.1, 0.3))
                    det_rows.append(fmt % (vid, ts, *box, "", f"{rng.uniform(0.3, 0.9):.4f}"))
        with open(paths[f"{split}_gt"], "w") as f:
            f.writelines(gt_rows)
        with open(paths[f"{split}_boxes"], "w") as f:
            f.writelines(det_rows)
    with open(paths["labelmap"], "w") as f:
        f.write(_labelmap_text())
    with open(paths["exclusions"], "w") as f:
        f.write(f"demo_val_000,{START_SEC + 5:04d}\n" if num_val_videos else "")
    with open(marker, "w") as f:
        json.dump(params, f)
    return paths


def random_score_map(groundtruth: str, boxes: str, labelmap: str, exclusions: str,
                     num_classes: int, score_thresh: float = 0.8, seeds: int = 10) -> float:
    """Mean frame-mAP (percent) of uniform random scores on the detected ``boxes`` kept at
    ``score_thresh``: the chance level a trained model must beat on the same boxes."""
    from .converters.ava import read_ava_boxes
    from .evaluation.evaluator import AvaEvaluator

    recs = read_ava_boxes(boxes, allow_unlabelled=True, score_thresh=score_thresh)
    maps = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ev = AvaEvaluator(groundtruth, labelmap, exclusions,
                          class_ids=list(range(1, num_classes + 1)))
        ev.process(None, [{"video_id": r.video_id, "timestamp": r.timestamp, "boxes": r.boxes,
                           "scores": rng.random((len(r.boxes), num_classes))}
                          for r in recs.values()])
        maps.append(ev.evaluate()["ava"]["mAP"])
    return float(np.mean(maps))
