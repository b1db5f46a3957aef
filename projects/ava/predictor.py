"""Action scores of the persons in a video: an AVA model on keyframes, boxes given or detected.

Clips follow the task's test protocol (:class:`~mvit_tasks.projects.ava.dataset.AvaKeyframeDataset` in
test mode: ``T x tau`` frames of the ``AVA.FPS`` time grid centred on the keyframe, nearest
frame by presentation time, short side ``AVA.TEST_SHORT_SIDE``, full frame), each read by
seeking to its window. Without a box file, :meth:`AvaPredictor.detect_persons` runs a person
detector (:mod:`mvit_tasks.projects.ava.person_detector`) on each keyframe's frame in one streaming pass
over the video (one frame held). Memory is bounded by a clip, not by the video::

    p = AvaPredictor.from_config(cfg_file, weights="ava.pyth")
    records = p.detect_persons("v.mp4", "v", detector, p.keyframe_seconds("v.mp4"))
    scores = p.predict("v.mp4", records)  # {second: (boxes (N, 4), scores (N, C))}
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mvit_tasks.config import CfgNode

from .collate import ava_collate
from .converters.ava import KeyframeRecord, keyframe_frame_index
from .dataset import AvaKeyframeDataset
from .person_detector import PersonDetector

Scores = Dict[int, Tuple[np.ndarray, np.ndarray]]  # second -> (boxes (N, 4), scores (N, C))


class AvaPredictor:
    """Runs an :class:`~mvit_tasks.projects.ava.model.AvaDetector` on keyframe clips.

    Args:
        model: ``model.forward_logits(B x 3 x T x H x W, rois (K, 5)) -> (K, C)`` logits.
        cfg: the AVA task config (``DATA.*`` clip and normalisation, ``AVA.*`` time grid).
        device: where the model runs.
    """

    def __init__(self, model: torch.nn.Module, cfg: CfgNode,
                 device: Optional[torch.device] = None) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        a = cfg.AVA
        self.fps, self.start_sec = float(a.FPS), float(a.SEGMENT_START_SEC)
        self.decode_threads = None if a.DECODE_THREADS == "NONE" else a.DECODE_THREADS

    @classmethod
    def from_config(cls, config_file: str, weights: str = "", opts: Sequence[str] = (),
                    allow_random: bool = False,
                    device: Optional[torch.device] = None) -> "AvaPredictor":
        """The AVA model of ``config_file`` with ``weights`` (default ``MODEL.WEIGHTS``) loaded
        strictly; ``allow_random`` runs without weights (random scores)."""
        cfg = load_ava_config(config_file, opts, weights)
        if not cfg.MODEL.WEIGHTS and not allow_random:
            raise ValueError("no weights (weights= or MODEL.WEIGHTS): the actions would be "
                             "random; pass allow_random=True to run so")
        return cls.from_cfg(cfg, device)

    @classmethod
    def from_cfg(cls, cfg: CfgNode, device: Optional[torch.device] = None) -> "AvaPredictor":
        """The model of an AVA config (``AvaTask.build_model``: ``MODEL.WEIGHTS`` loaded)."""
        return cls(config_task(cfg).build_model(), cfg, device)

    # ---------------------------------------------------------------------- keyframes
    def keyframe_seconds(self, video: str, step: int = 1) -> List[int]:
        """Every ``step``-th whole second of the video's span: ``s`` with ``start_sec <= s <=
        start_sec + duration`` (frame 0 at ``AVA.SEGMENT_START_SEC``)."""
        from mvit_tasks.data.video_io import iter_frames, probe_video

        duration = probe_video(video).duration_sec
        if duration is None:  # no length in the header: the last frame's time
            duration = 0.0
            for duration, _ in iter_frames(video, thread_type=self.decode_threads):
                pass
        first = int(math.ceil(self.start_sec - 1e-9))
        last = int(math.floor(self.start_sec + duration + 1e-9))
        return list(range(first, last + 1, max(1, int(step))))

    def keyframe_time(self, second: int) -> float:
        """Presentation time (s from the stream start) of keyframe ``second``: its frame of the
        ``AVA.FPS`` grid, as the dataset centres the clip."""
        return keyframe_frame_index(second, self.fps, self.start_sec) / self.fps

    def detect_persons(self, video: str, video_id: str, detector: PersonDetector,
                       seconds: Sequence[int]) -> List[KeyframeRecord]:
        """One record per keyframe second with at least one person: the ``detector``'s boxes
        on the frame nearest to the keyframe (one streaming pass; one frame held)."""
        from mvit_tasks.data.video_io import NearestPicker, iter_frames

        seconds = sorted(seconds)
        picker = NearestPicker([max(0.0, self.keyframe_time(s)) for s in seconds])
        records: List[KeyframeRecord] = []

        def run(won) -> None:
            for k, (_, frame) in won:
                boxes, scores = detector(frame)
                if len(boxes):
                    records.append(KeyframeRecord(
                        video_id, int(seconds[k]), boxes, [[] for _ in boxes], scores,
                        f"detector@{seconds[k]}"))

        frames = iter_frames(video, thread_type=self.decode_threads)
        try:
            for t, frame in frames:
                run(picker.push(t, frame))
                if picker.done:
                    break
        finally:
            frames.close()
        run(picker.finish())
        return records

    # ---------------------------------------------------------------------- inference
    def dataset(self, video: str, records: Sequence[KeyframeRecord]) -> AvaKeyframeDataset:
        """The task's test dataset over ``records`` of one video."""
        cfg, a = self.cfg, self.cfg.AVA
        ids = {r.video_id for r in records}
        return AvaKeyframeDataset(
            records, {vid: video for vid in ids}, "test", cfg.DATA.NUM_FRAMES,
            cfg.DATA.SAMPLING_RATE, cfg.MODEL.NUM_CLASSES, a.FPS, a.SEGMENT_START_SEC,
            test_short_side=a.TEST_SHORT_SIDE or cfg.DATA.TEST_CROP_SIZE,
            mean=tuple(cfg.DATA.MEAN), std=tuple(cfg.DATA.STD),
            decode_threads=self.decode_threads)

    @torch.no_grad()
    def predict(self, video: str, records: Sequence[KeyframeRecord]) -> Scores:
        """``{second: (boxes (N, 4) normalised, scores (N, C) sigmoid)}`` for each record; one
        clip decoded at a time. Raises ``VideoDecodeError`` for an unreadable clip."""
        from mvit_tasks.data.video_io import VideoDecodeError

        ds = self.dataset(video, records)
        out: Scores = {}
        for i, rec in enumerate(ds.records):
            batch = ava_collate([ds[i]])
            if not batch["num_samples"]:
                raise VideoDecodeError(video, str(batch["skipped"][0][1]))
            logits = self.model.forward_logits(batch["video"].to(self.device),
                                               batch["boxes"].to(self.device))
            out[rec.timestamp] = (rec.boxes, torch.sigmoid(logits.float()).cpu().numpy())
        return out


def load_ava_config(config_file: str, opts: Sequence[str] = (), weights: str = "") -> CfgNode:
    """The AVA task config; ``weights`` (when given) become ``MODEL.WEIGHTS``, loaded strictly
    (a demo must not show a random head)."""
    from mvit_tasks.config import load_config
    from mvit_tasks.engine.defaults import add_engine_config

    from .task import AvaTask

    extra = ["MODEL.WEIGHTS", weights, "MODEL.WEIGHTS_ALLOW_MISSING", "[]",
             "MODEL.WEIGHTS_ALLOW_UNEXPECTED", "[]"] if weights else []
    return load_config(config_file, [*opts, *extra],
                       extra_config_fns=[add_engine_config, AvaTask.add_config])


def config_task(cfg: CfgNode):
    """An :class:`AvaTask` of ``cfg`` for its model and paths only (no demo data generated)."""
    from .task import AvaTask

    task = AvaTask.__new__(AvaTask)
    task.cfg = cfg
    return task


def action_names(cfg: CfgNode, labelmap: str = "") -> Dict[int, str]:
    """``{action id: name}``: ``labelmap``, else ``AVA.LABEL_MAP_FILE`` when that file exists,
    else the shipped AVA list (:mod:`mvit_tasks.data.classnames` ``ava80``: the 60 evaluated
    actions named), else ``{}`` (ids are shown)."""
    import os

    from .evaluation.io import read_labelmap

    path = labelmap or config_task(cfg)._ann(cfg.AVA.LABEL_MAP_FILE)
    if labelmap or os.path.isfile(path):
        lm = read_labelmap(path)
        return dict(zip(lm.ids, lm.names))
    try:
        from mvit_tasks.data.classnames import load_class_names
    except ImportError:
        return {}
    return {i: n for i, n in enumerate(load_class_names("ava80"), start=1) if n}


def top_actions(scores: np.ndarray, names: Dict[int, str], top_k: int = 3,
                thresh: float = 0.3) -> List[List[str]]:
    """Per box, the ``top_k`` actions scoring >= ``thresh`` as ``"name 0.87"`` lines (action
    id ``j + 1`` for column ``j``)."""
    lines = []
    for s in scores:
        top = [j for j in np.argsort(-s, kind="stable")[:top_k] if s[j] >= thresh]
        lines.append([f"{names.get(j + 1, j + 1)} {s[j]:.2f}" for j in top])
    return lines
