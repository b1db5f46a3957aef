"""``--mode ava_eval``: time reading + evaluating an AVA detection CSV of ~1,000,000 rows.

A synthetic AVA-like case is generated first (not timed): ``--ava-frames`` keyframes over 64
videos (1-6 persons per frame, one pose action each plus a long tail of others, ids from all
80 classes), a 60-class label map, 1% of the frames excluded, and ``--ava-rows-per-frame``
detection rows per frame (the top-scoring (box, class) pairs of jittered person boxes and one
false box per frame, scores with 6 decimals, 2% of rows with ids outside the label map). Then
the files are read and evaluated as ``tools/eval_ava.py`` does, once per protocol, and each
stage is timed.
The load average is recorded because the number depends on what else the machine is doing.

The module also offers ``--mode ava_demo_memory`` (:class:`DemoMemoryMode`, in
``EXTRA_MODES``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

MODE_NAME = "ava_eval"
# a 60-of-80 id subset with AVA's structure (1-14 pose, 15-63 objects, 64-80 persons)
EVAL_IDS = [i for i in range(1, 81) if i not in (2, 16, 18, 19, 21, 23, 25, 31, 32, 33, 35, 39,
                                                  40, 42, 44, 50, 53, 55, 71, 75)]


def add_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("ava_eval (projects/ava/benchmark.py)")
    g.add_argument("--ava-frames", type=int, default=20000, help="keyframes (default 20000)")
    g.add_argument("--ava-rows-per-frame", type=int, default=50,
                   help="detection rows per keyframe (default 50: 1,000,000 rows)")
    g.add_argument("--ava-protocols", nargs="+", default=["activitynet", "mmaction2"],
                   choices=["activitynet", "mmaction2"], help="protocols to time")
    g.add_argument("--ava-seed", type=int, default=0)
    g.add_argument("--ava-workdir", help="where to write the files (default: a temp dir)")
    g.add_argument("--ava-keep", action="store_true", help="keep the generated files")


def _write(path: str, lines: List[str]) -> None:
    with open(path, "w") as f:
        f.writelines(lines)


def generate(workdir: str, frames: int, rows_per_frame: int, seed: int = 0) -> Dict[str, Any]:
    """Write ``gt.csv``, ``det.csv``, ``labelmap.pbtxt``, ``excluded.csv``; returns paths/sizes."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))
    videos = ["".join(rng.choice(alphabet, 11)) for _ in range(64)]
    f_vid = np.arange(frames) % 64
    f_ts = 902 + np.arange(frames) // 64
    n_per = np.clip(1 + rng.poisson(1.4, frames), 1, 6)
    p_frame = np.repeat(np.arange(frames), n_per)
    n_p = p_frame.size
    xy = rng.random((n_p, 2)) * [0.7, 0.4]
    wh = 0.1 + rng.random((n_p, 2)) * [0.2, 0.5]
    p_box = np.round(np.concatenate([xy, np.minimum(xy + wh, 1.0)], 1), 3)
    pose = rng.choice([1, 3, 8, 10, 11, 12, 14], n_p, p=[.03, .05, .07, .03, .3, .42, .1])
    n_extra = rng.poisson(1.2, n_p)
    tail = np.arange(15, 81)
    w = 1.0 / np.arange(1, tail.size + 1) ** 1.1
    e_person = np.repeat(np.arange(n_p), n_extra)
    e_act = rng.choice(tail, e_person.size, p=w / w.sum())
    g_person = np.r_[np.arange(n_p), e_person]
    g_act = np.r_[pose, e_act]
    o = np.argsort(g_person, kind="stable")
    g_person, g_act = g_person[o], g_act[o]
    pid = np.arange(n_p) - np.repeat(np.r_[0, np.cumsum(n_per)[:-1]], n_per)
    fmt = "%s,%04d,%.3f,%.3f,%.3f,%.3f,%d,%d\n"
    gt_lines = [fmt % (videos[f_vid[p_frame[p]]], f_ts[p_frame[p]], *p_box[p], a, pid[p])
                for p, a in zip(g_person.tolist(), g_act.tolist())]

    # detected boxes: jittered persons (90%) and false boxes
    keep = rng.random(n_p) < 0.9
    d_frame = np.r_[p_frame[keep], np.arange(frames)]  # + one false box per frame
    d_person = np.r_[np.flatnonzero(keep), np.full(frames, -1)]
    jit = np.clip(p_box[np.maximum(d_person, 0)] + rng.normal(0, 0.03, (d_person.size, 4)), 0, 1)
    fb = rng.random((d_person.size, 2)) * 0.7
    fbox = np.concatenate([fb, fb + 0.1 + rng.random((d_person.size, 2)) * 0.2], 1)
    d_box = np.where((d_person >= 0)[:, None], jit, fbox)
    d_box = np.round(np.concatenate([np.minimum(d_box[:, :2], d_box[:, 2:]),
                                     np.maximum(d_box[:, :2], d_box[:, 2:])], 1), 3)
    ids = np.asarray(EVAL_IDS)
    c_det = np.repeat(np.arange(d_person.size), ids.size)
    c_act = np.tile(ids, d_person.size)
    pos_pairs = set(zip(g_person.tolist(), g_act.tolist()))
    hit = np.fromiter(((int(p), int(a)) in pos_pairs for p, a in
                       zip(d_person[c_det].tolist(), c_act.tolist())), bool, c_det.size)
    score = np.where(hit, rng.beta(2, 3, c_det.size), rng.beta(1, 8, c_det.size))
    o = np.lexsort((-score, d_frame[c_det]))
    fr_sorted = d_frame[c_det][o]
    starts = np.flatnonzero(np.r_[True, fr_sorted[1:] != fr_sorted[:-1]])
    rank = np.arange(o.size) - np.repeat(starts, np.diff(np.r_[starts, o.size]))
    sel = o[rank < rows_per_frame]
    sel = sel[np.lexsort((rng.random(sel.size), d_frame[c_det][sel]))]  # shuffled per frame
    act = c_act[sel].copy()
    out_of_map = rng.random(sel.size) < 0.02
    act[out_of_map] = rng.choice([i for i in range(1, 81) if i not in EVAL_IDS],
                                 int(out_of_map.sum()))
    fr, bx = d_frame[c_det][sel], d_box[c_det][sel]
    fmt = "%s,%04d,%.3f,%.3f,%.3f,%.3f,%d,%.6f\n"
    det_lines = [fmt % (videos[f_vid[f]], f_ts[f], b[0], b[1], b[2], b[3], a, s) for f, b, a, s
                 in zip(fr.tolist(), bx.tolist(), act.tolist(), score[sel].tolist())]
    excl = rng.choice(frames, frames // 100, replace=False)
    paths = {k: os.path.join(workdir, n) for k, n in (("gt", "gt.csv"), ("det", "det.csv"),
                                                       ("lm", "labelmap.pbtxt"),
                                                       ("ex", "excluded.csv"))}
    _write(paths["gt"], gt_lines)
    _write(paths["det"], det_lines)
    _write(paths["ex"], [f"{videos[f_vid[f]]},{f_ts[f]:04d}\n" for f in excl.tolist()])
    kinds = ["PERSON_MOVEMENT" if i <= 14 else "OBJECT_MANIPULATION" if i < 64
             else "PERSON_INTERACTION" for i in EVAL_IDS]
    _write(paths["lm"], [f'label {{\n  name: "action_{i}"\n  label_id: {i}\n  label_type: {k}\n}}\n'
                         for i, k in zip(EVAL_IDS, kinds)])
    return {"paths": paths, "gt_rows": len(gt_lines), "det_rows": len(det_lines)}


def run(args: argparse.Namespace) -> Dict[str, Any]:
    from mvit_tasks.projects.ava.evaluation import evaluate, read_box_csv, read_exclusions, read_labelmap

    workdir = args.ava_workdir or tempfile.mkdtemp(prefix="ava_bench_")
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    case = generate(workdir, args.ava_frames, args.ava_rows_per_frame, args.ava_seed)
    gen_s = time.perf_counter() - t0
    p = case["paths"]
    results: List[Dict[str, Any]] = []
    try:
        for protocol in args.ava_protocols:
            load_before = os.getloadavg()
            t = {}
            s = time.perf_counter()
            lm, ex = read_labelmap(p["lm"]), read_exclusions(p["ex"])
            t["read_labelmap_exclusions"] = time.perf_counter() - s
            s = time.perf_counter()
            gt = read_box_csv(p["gt"])
            t["read_groundtruth"] = time.perf_counter() - s
            s = time.perf_counter()
            det = read_box_csv(p["det"])
            t["read_detections"] = time.perf_counter() - s
            s = time.perf_counter()
            res = evaluate(gt, det, lm, ex, protocol=protocol, breakdown=True)
            t["evaluate"] = time.perf_counter() - s
            results.append({"protocol": protocol, "det_rows": case["det_rows"],
                            "gt_rows": case["gt_rows"], "frames": args.ava_frames,
                            "seconds": t, "total_s": sum(t.values()), "mAP": res.mean_ap,
                            "groups": res.groups, "generate_s": gen_s,
                            "loadavg_before": load_before, "loadavg_after": os.getloadavg()})
    finally:
        if not args.ava_keep and not args.ava_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"results": results}


def table(results: List[Dict[str, Any]]) -> List[str]:
    lines = [f"{'protocol':<12} {'det rows':>9} {'gt rows':>8} {'read gt':>8} {'read det':>9} "
             f"{'evaluate':>9} {'total':>7} {'mAP':>7}  load (1 min) before/after"]
    for r in results:
        t = r["seconds"]
        lines.append(
            f"{r['protocol']:<12} {r['det_rows']:>9} {r['gt_rows']:>8} "
            f"{t['read_groundtruth']:>7.2f}s {t['read_detections']:>8.2f}s {t['evaluate']:>8.2f}s "
            f"{r['total_s']:>6.2f}s {r['mAP']:>7.4f}  {r['loadavg_before'][0]:.2f}/"
            f"{r['loadavg_after'][0]:.2f}")
    return lines


# ------------------------------------------------------------------ --mode ava_demo_memory
DEMO_MODE_NAME = "ava_demo_memory"
DEMO_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                           "demo_synthetic.yaml")


def add_demo_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("ava_demo_memory (projects/ava/benchmark.py)")
    g.add_argument("--ava-demo-seconds", type=float, nargs="+", default=[60.0, 240.0],
                   help="segment lengths to run the demo on (default 60 240)")
    g.add_argument("--ava-demo-fps", type=float, default=25.0, help="segment frame rate")
    g.add_argument("--ava-demo-size", type=int, nargs=2, default=[128, 72], metavar=("W", "H"))
    g.add_argument("--ava-demo-keyframe-step", type=int, default=1,
                   help="seconds between keyframes with boxes (default 1, as AVA)")
    g.add_argument("--ava-demo-config", default=DEMO_CONFIG, help="demo model config")
    g.add_argument("--ava-demo-workdir", help="where to write the files (default: a temp dir)")
    g.add_argument("--ava-demo-keep", action="store_true", help="keep the generated files")


def write_segment(path: str, seconds: float, fps: float, size: Sequence[int]) -> int:
    """Write a ``seconds``-long ``W x H`` segment (a bright box moving over a drifting
    gradient) one frame at a time through :class:`VideoWriter`; returns the frame count."""
    from mvit_tasks.data.video_io import VideoWriter

    w, h = size
    n = int(round(seconds * fps))
    base = ((np.arange(w)[None, :, None] + np.arange(h)[:, None, None]) // 2
            + np.array([0, 32, 64])).astype(np.uint8)
    with VideoWriter(path, fps, crf=23, options={"g": str(int(round(2 * fps)))}) as writer:
        for i in range(n):
            img = base + np.uint8(i % 128)  # uint8 arithmetic wraps around
            left = (2 * i) % max(1, w - w // 4)
            img[h // 4:h // 4 + h // 2, left:left + w // 4] = 230
            writer.write(img)
    return n


def write_demo_inputs(workdir: str, video_id: str, seconds: float,
                      step: int) -> Tuple[str, str]:
    """A box CSV (one person every ``step`` s from 901 s) and a 4-class label map."""
    boxes, labelmap = os.path.join(workdir, "boxes.csv"), os.path.join(workdir, "labelmap.pbtxt")
    _write(boxes, [f"{video_id},{s},0.200,0.250,0.450,0.750,,0.950\n"
                   for s in range(901, 900 + int(seconds), step)])
    _write(labelmap, [f'label {{\n  name: "action_{i}"\n  label_id: {i}\n  '
                      f'label_type: PERSON_MOVEMENT\n}}\n' for i in range(1, 5)])
    return boxes, labelmap


# Runs argv[1:] and prints its peak RSS. The demo is started from this small process, not from
# the benchmark: Linux counts the memory of the process that forks into the child's ru_maxrss.
_PEAK_RSS = ("import resource, subprocess, sys\n"
             "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
             "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def run_child(cmd: List[str]) -> Tuple[int, float]:
    """Run ``cmd`` from a small wrapper process; returns ``(peak RSS in bytes, seconds)`` of
    ``cmd`` alone (the wrapper's ``getrusage(RUSAGE_CHILDREN).ru_maxrss``)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, *cmd], capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    fields = proc.stdout.split()
    if proc.returncode or len(fields) != 2 or fields[0] != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.stdout.strip()}):\n"
                           f"{proc.stderr[-4000:]}")
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return int(fields[1]) * unit, seconds


def run_demo_memory(args: argparse.Namespace) -> Dict[str, Any]:
    from mvit_tasks.config import load_config
    from mvit_tasks.data.video_io import probe_video
    from mvit_tasks.engine.defaults import add_engine_config
    from mvit_tasks.projects.ava.task import AvaTask

    cfg = load_config(args.ava_demo_config, [],
                      extra_config_fns=[add_engine_config, AvaTask.add_config])
    root = args.ava_demo_workdir or tempfile.mkdtemp(prefix="ava_demo_bench_")
    w, h = args.ava_demo_size
    results: List[Dict[str, Any]] = []
    try:
        for seconds in args.ava_demo_seconds:
            workdir = os.path.join(root, f"{seconds:g}s")
            os.makedirs(workdir, exist_ok=True)
            video = os.path.join(workdir, "segment.mp4")
            t0 = time.perf_counter()
            frames = write_segment(video, seconds, args.ava_demo_fps, (w, h))
            gen_s = time.perf_counter() - t0
            boxes, labelmap = write_demo_inputs(workdir, "segment", seconds,
                                                args.ava_demo_keyframe_step)
            out = os.path.join(workdir, "vis")
            cmd = [sys.executable, "-m", "mvit_tasks.cli.demo", "--task", "ava",
                   "--config-file", args.ava_demo_config, "--random-weights", "--input", video,
                   "--boxes", boxes,
                   "--labelmap", labelmap, "--output", out, "--score-threshold", "0",
                   "AVA.DEMO_DATA", "False", "AVA.FPS", "30", "OUTPUT_DIR", out]
            rss, demo_s = run_child(cmd)
            frame_bytes = w * h * 3
            results.append({
                "seconds": seconds, "fps": args.ava_demo_fps, "width": w, "height": h,
                "frames": frames, "keyframes": len(open(boxes).readlines()),
                "frame_mb": frame_bytes / 2**20, "video_raw_mb": frames * frame_bytes / 2**20,
                "clip_frames": cfg.DATA.NUM_FRAMES,
                "clip_mb": cfg.DATA.NUM_FRAMES * frame_bytes / 2**20,
                "peak_rss_mb": rss / 2**20, "demo_s": demo_s, "generate_s": gen_s,
                "output_frames": probe_video(os.path.join(out, "demo.mp4")).num_frames,
                "loadavg": os.getloadavg()})
    finally:
        if not args.ava_demo_keep and not args.ava_demo_workdir:
            shutil.rmtree(root, ignore_errors=True)
    growth = results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"] if results else 0.0
    return {"results": results, "rss_growth_mb": growth}


def demo_table(results: List[Dict[str, Any]]) -> List[str]:
    lines = [f"{'seconds':>8} {'frames':>7} {'size':>8} {'keyfr':>6} {'raw video':>10} "
             f"{'clip':>8} {'peak RSS':>9} {'demo':>7} {'out frames':>10}"]
    for r in results:
        lines.append(
            f"{r['seconds']:>8g} {r['frames']:>7} {r['width']:>4}x{r['height']:<3} "
            f"{r['keyframes']:>6} {r['video_raw_mb']:>7.1f} MB {r['clip_mb']:>5.2f} MB "
            f"{r['peak_rss_mb']:>6.0f} MB {r['demo_s']:>6.1f}s {r['output_frames']:>10}")
    return lines


class DemoMemoryMode:
    """``--mode ava_demo_memory``: peak memory of ``tools/demo.py --task ava`` vs video length.

    For each ``--ava-demo-seconds`` a ``--ava-demo-size`` segment at ``--ava-demo-fps`` is
    generated (frame by frame, streaming), with one person box every ``--ava-demo-keyframe-step``
    seconds; the demo (``--ava-demo-config``, random weights, ``AVA.FPS`` 30) runs in a child
    process, whose peak RSS (``ru_maxrss``) is recorded next to the raw size of the video
    and of one clip: a demo that streams grows with neither the length nor the frame count.
    """

    add_args = staticmethod(add_demo_args)
    run = staticmethod(run_demo_memory)
    table = staticmethod(demo_table)


# further modes of this project, registered by tools/benchmark.py next to MODE_NAME
EXTRA_MODES = {DEMO_MODE_NAME: DemoMemoryMode}
