"""Moving Shapes: a small synthetic video classification dataset, written as real H.264 files.

Every clip shows one shape (square or disk, random colour and size) that moves left / right /
up / down, grows or shrinks, over a noisy background with static distractor shapes. The label is
the kind and direction of the motion, so a single frame says nothing about it and frame order
matters: ``move_left`` is ``move_right`` played backwards, ``shrink`` is ``grow`` played
backwards (the generator renders the forward clip and reverses it).

Layout under ``root`` (paths in the CSVs are relative to ``root``)::

    labels.txt                  one class name per line, line i = label i
    train.csv, val.csv          header ``path,label``; label is the integer class index
    train/<class>/<id>.mp4      libx264, yuv420p
    val/<class>/<id>.mp4
    meta.json                   generation parameters; written last (marks a complete dataset)

Clip ``(split, class, i)`` depends only on ``seed`` and those three numbers, so the rendered
frames are deterministic (the H.264 encoding may differ by a few pixel levels between runs) and
growing ``num_per_class_*`` keeps the existing clips.
"""
from __future__ import annotations

import colorsys
import csv
import json
import os
from typing import Any, Dict, List, Tuple

import numpy as np

from ..utils.fileio import atomic_write_text
from .video_io import write_video

CLASSES: Tuple[str, ...] = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink")
# class -> (forward motion to render, play it backwards?)
_MOTION = {
    "move_left": ("move_right", True),
    "move_right": ("move_right", False),
    "move_up": ("move_down", True),
    "move_down": ("move_down", False),
    "grow": ("grow", False),
    "shrink": ("grow", True),
}
_SPLITS = ("train", "val")
GENERATOR_VERSION = 1


def generate_moving_shapes(
    root: str,
    num_per_class_train: int,
    num_per_class_val: int,
    num_frames: int = 16,
    size: int = 64,
    fps: int = 16,
    seed: int = 0,
) -> Dict[str, Any]:
    """Write the Moving Shapes dataset under ``root`` (or reuse it if it is already there).

    Args:
        root: output folder (created if needed).
        num_per_class_train, num_per_class_val: clips per class in each split.
        num_frames: frames per clip.
        size: frame height and width in pixels (even, >= 16).
        fps: frame rate stored in the files.
        seed: base seed; the same arguments give the same clips.

    Returns:
        ``{"root", "classes", "num_train", "num_val", "reused"}``; ``reused`` is True when a
        complete dataset with the same parameters was found and nothing was written.
    """
    if size < 16 or size % 2:
        raise ValueError(f"size must be even and >= 16, got {size}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    params = dict(
        generator="moving_shapes", version=GENERATOR_VERSION, classes=list(CLASSES),
        num_per_class_train=num_per_class_train, num_per_class_val=num_per_class_val,
        num_frames=num_frames, size=size, fps=fps, seed=seed,
    )
    counts = {"num_train": num_per_class_train * len(CLASSES),
              "num_val": num_per_class_val * len(CLASSES)}
    result = {"root": root, "classes": list(CLASSES), **counts}
    if _is_complete(root, params):
        return {**result, "reused": True}

    meta_path = os.path.join(root, "meta.json")
    if os.path.exists(meta_path):  # a previous dataset with other parameters: drop its clips
        _remove_listed_clips(root)
        os.remove(meta_path)
    os.makedirs(root, exist_ok=True)
    per_split = (num_per_class_train, num_per_class_val)
    for split_id, (split, per_class) in enumerate(zip(_SPLITS, per_split)):
        rows: List[Tuple[str, int]] = []
        for label, name in enumerate(CLASSES):
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([seed, split_id, label, i])
                rel = f"{split}/{name}/{i:05d}.mp4"
                clip = render_clip(name, rng, num_frames, size)
                write_video(os.path.join(root, rel), clip, fps=fps)
                rows.append((rel, label))
        atomic_write_text(os.path.join(root, f"{split}.csv"),
                      "path,label\n" + "".join(f"{p},{y}\n" for p, y in rows))
    atomic_write_text(os.path.join(root, "labels.txt"), "".join(c + "\n" for c in CLASSES))
    atomic_write_text(meta_path, json.dumps({**params, **counts}, indent=2) + "\n")
    return {**result, "reused": False}


def read_manifest(root: str, split: str) -> List[Tuple[str, int]]:
    """``[(root/path, label), ...]`` from ``root/<split>.csv`` (header ``path,label``)."""
    with open(os.path.join(root, f"{split}.csv"), newline="") as f:
        return [(os.path.join(root, r["path"]), int(r["label"])) for r in csv.DictReader(f)]


def read_labels(root: str) -> List[str]:
    """Class names from ``root/labels.txt`` (line i = label i)."""
    with open(os.path.join(root, "labels.txt")) as f:
        return [line.strip() for line in f if line.strip()]


# ---------------------------------------------------------------------------------- rendering
def render_clip(label: str, rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    """Render one clip of class ``label``: ``T x size x size x 3`` uint8 RGB."""
    motion, backwards = _MOTION[label]
    s = float(size)

    # Background: dark base colour, static texture, a little temporal noise.
    base = rng.uniform(0, 90, size=3)
    texture = rng.normal(0, rng.uniform(4, 16), (size, size, 1)) + rng.normal(0, 4, (size, size, 3))
    background = np.clip(base + texture, 0, 255)
    frames = np.repeat(background[None], num_frames, axis=0)

    # Static distractors (0-2 shapes): only the motion tells the actor apart.
    for _ in range(rng.integers(0, 3)):
        r = rng.uniform(0.04, 0.09) * s
        cx, cy = rng.uniform(r + 1, s - 1 - r, size=2)
        _paint(frames, _colour(rng), rng.random() < 0.5, np.full(num_frames, cx),
               np.full(num_frames, cy), np.full(num_frames, r))

    # The actor.
    disk = rng.random() < 0.5
    x, y, r = actor_track(motion, rng, num_frames, size)
    _paint(frames, _colour(rng), disk, x, y, r)

    frames += rng.normal(0, 3, size=frames.shape)  # per-frame sensor noise
    clip = np.clip(frames, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(clip[::-1]) if backwards else clip


def actor_track(
    motion: str, rng: np.random.Generator, num_frames: int, size: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre ``x``, ``y`` and radius ``r`` (pixels, one value per frame) of the moving shape for
    a forward motion (``move_right``, ``move_down`` or ``grow``); the shape stays in the frame."""
    t = np.linspace(0.0, 1.0, num_frames)  # progress of the motion
    s = float(size)
    if motion == "grow":
        r0 = rng.uniform(0.04, 0.08) * s
        r1 = min(r0 * rng.uniform(2.0, 3.0), 0.25 * s)
        cx, cy = rng.uniform(r1 + 1, s - 1 - r1, size=2)
        return np.full(num_frames, cx), np.full(num_frames, cy), r0 + (r1 - r0) * t
    if motion not in ("move_right", "move_down"):
        raise ValueError(f"unknown forward motion {motion!r}")
    r = rng.uniform(0.07, 0.12) * s
    dist = rng.uniform(0.3, 0.6) * s  # total displacement over the clip
    along = rng.uniform(r + 1, s - 1 - r - dist) + dist * t
    across = np.full(num_frames, rng.uniform(r + 1, s - 1 - r))
    x, y = (along, across) if motion == "move_right" else (across, along)
    return x, y, np.full(num_frames, r)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated, bright RGB colour (0..255) that stands out from the dark background."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.5, 1.0), rng.uniform(0.75, 1.0))
    return np.array(rgb) * 255.0


def _paint(frames: np.ndarray, colour: np.ndarray, disk: bool, x: np.ndarray, y: np.ndarray,
           r: np.ndarray) -> None:
    """Alpha-blend a disk / square (centre ``x, y``, radius / half side ``r``, one value per
    frame) into ``frames`` (T x H x W x 3 float) in place, with a 1-pixel anti-aliased edge."""
    size = frames.shape[1]
    grid = np.arange(size, dtype=np.float64) + 0.5
    dx = np.abs(grid[None, None, :] - x[:, None, None])  # T x 1 x W
    dy = np.abs(grid[None, :, None] - y[:, None, None])  # T x H x 1
    dist = np.sqrt(dx**2 + dy**2) if disk else np.maximum(dx, dy)
    alpha = np.clip(r[:, None, None] - dist + 0.5, 0.0, 1.0)[..., None]  # T x H x W x 1
    frames *= 1.0 - alpha
    frames += alpha * colour


# ---------------------------------------------------------------------------------- bookkeeping
def _is_complete(root: str, params: Dict[str, Any]) -> bool:
    try:
        with open(os.path.join(root, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if any(meta.get(k) != v for k, v in params.items()):
        return False
    try:
        return all(os.path.isfile(p) for split in _SPLITS for p, _ in read_manifest(root, split))
    except (OSError, KeyError, ValueError):
        return False


def _remove_listed_clips(root: str) -> None:
    """Delete the clips listed in an earlier dataset's manifests (only files we wrote)."""
    for split in _SPLITS:
        try:
            entries = read_manifest(root, split)
        except (OSError, KeyError, ValueError):
            continue
        for path, _ in entries:
            if os.path.isfile(path):
                os.remove(path)
