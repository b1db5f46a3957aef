#!/usr/bin/env python
"""Demos of mvit-tasks; one mode per flag.

``--quickstart`` (``make demo``): a tiny MViTv2 (MViTArch + ``Classifier.from_arch``) learns the
generated Moving Shapes dataset (``mvit_tasks.data.synthetic``: a shape moving left / right /
up / down, growing or shrinking; real H.264 files decoded with PyAV) on the CPU in a few
minutes, and reports held-out top-1 against chance:

1. generate the clips under ``--data`` (default ``datasets/demo_clips``), or reuse them;
2. decode every clip once into memory (uint8; the dataset is small);
3. train with AdamW, warm-up + cosine LR and label smoothing on random crops (no horizontal
   flip: it would turn ``move_left`` into ``move_right``) and a random temporal offset;
4. evaluate top-1 on the validation split after every epoch (centre crop);
5. write ``metrics.json`` and ``model_final.pth`` (``{"model", "arch", "classes", ...}``) to
   ``--out`` (default ``output/quickstart``) and print a JSON summary.

With the defaults (600 training clips, 20 epochs) this takes about 2 minutes on 2 CPU cores and
ends at 98-100 % validation top-1 (chance: 16.7 %).

``--seconds`` caps the training time: the LR schedule then runs on elapsed time (whichever of
steps and time is further along), so a slow machine still ends with an annealed model.

Examples::

    python tools/demo.py --quickstart
    python tools/demo.py --quickstart --epochs 5 --out /tmp/qs

``--task ava|coco|classification``: reserved for the task demos (not available yet, exit 2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

# OpenMP threads that spin while waiting make 2-thread training 5-30x slower as soon as another
# process competes for the cores (shared CI machines); passive waiting costs little when idle.
# Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mvit_tasks.checkpoint.io import save_checkpoint  # noqa: E402
from mvit_tasks.data.synthetic import (  # noqa: E402
    generate_moving_shapes,
    read_labels,
    read_manifest,
)
from mvit_tasks.data.video_io import read_clip  # noqa: E402
from mvit_tasks.modeling.backbone.arch import MViTArch  # noqa: E402
from mvit_tasks.modeling.meta_arch.classifier import Classifier  # noqa: E402

# Clip geometry: the files hold 16 frames of 36 x 36; the model sees 8 frames (every 2nd, random
# offset) of a 32 x 32 crop.
CLIP_FRAMES, CLIP_SIZE = 16, 36
NUM_FRAMES, SAMPLING_RATE, CROP = 8, 2, 32
MEAN, STD = 0.45, 0.225  # Kinetics normalisation (per channel values are all close to these)


def quickstart_arch() -> MViTArch:
    """Tiny MViTv2 (rel-pos, residual pooling, cls token): 4 blocks, 3 stages, 0.3 M params."""
    return MViTArch(
        video=True, num_frames=NUM_FRAMES, spatial_size=(CROP, CROP),
        patch_kernel=(3, 5, 5), patch_stride=(2, 4, 4), patch_padding=(1, 2, 2),
        embed_dim=32, num_heads=1, depth=4,
        dim_mul=[[1, 2.0], [3, 2.0]], head_mul=[[1, 2.0], [3, 2.0]],
        pool_q_stride=[[0, 1, 1, 1], [1, 1, 2, 2], [2, 1, 1, 1], [3, 1, 2, 2]],
        pool_kv_stride_adaptive=(1, 4, 4), pool_kvq_kernel=(3, 3, 3),
    )


# ------------------------------------------------------------------------------------- data
def decode_split(root: str, split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """All clips of a split: ``N x T x H x W x 3`` uint8 and ``N`` int64 labels."""
    entries = read_manifest(root, split)
    # Tiny clips: single-threaded decoding is faster than starting decoder threads per file.
    clips = [read_clip(path, CLIP_FRAMES, thread_type=None) for path, _ in entries]
    return torch.stack(clips), torch.tensor([y for _, y in entries])


def make_batch(
    clips: torch.Tensor, train: bool, gen: Optional[torch.Generator] = None
) -> torch.Tensor:
    """``B x T x H x W x 3`` uint8 clips -> normalised ``B x 3 x NUM_FRAMES x CROP x CROP``.

    Train: random temporal offset and random spatial crop per clip; eval: first offset, centre
    crop. Never flipped (left / right are classes).
    """
    b, t, h, w, _ = clips.shape
    span = (NUM_FRAMES - 1) * SAMPLING_RATE + 1
    if train:
        t0 = torch.randint(0, t - span + 1, (b,), generator=gen)
        y0 = torch.randint(0, h - CROP + 1, (b,), generator=gen)
        x0 = torch.randint(0, w - CROP + 1, (b,), generator=gen)
    else:
        t0 = torch.zeros(b, dtype=torch.long)
        y0 = torch.full((b,), (h - CROP) // 2)
        x0 = torch.full((b,), (w - CROP) // 2)
    out = torch.stack([
        clips[i, t0[i]: t0[i] + span: SAMPLING_RATE, y0[i]: y0[i] + CROP, x0[i]: x0[i] + CROP]
        for i in range(b)
    ])
    out = out.permute(0, 4, 1, 2, 3).float().div_(255.0)  # B x 3 x T x H x W
    return out.sub_(MEAN).div_(STD)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> float:
    """Top-1 accuracy (%) on centre crops."""
    model.eval()
    correct = 0
    for i in range(0, len(clips), batch_size):
        logits = model(make_batch(clips[i: i + batch_size], train=False))
        correct += int((logits.argmax(1) == labels[i: i + batch_size]).sum())
    return 100.0 * correct / max(len(clips), 1)


def lr_factor(progress: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 0; ``progress`` in [0, 1]."""
    if progress < warmup:
        return progress / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warmup) / (1.0 - warmup))))


def build_optimizer(model: Classifier, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms, the cls token and position tables."""
    no_decay = {f"backbone.{n}" for n in model.backbone.no_weight_decay()}
    decay, plain = [], []
    for name, p in model.named_parameters():
        (plain if p.ndim <= 1 or name in no_decay else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": plain, "weight_decay": 0.0}], lr=lr)


# ------------------------------------------------------------------------------------- modes
def run_quickstart(args: argparse.Namespace) -> Dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_start = time.perf_counter()

    info = generate_moving_shapes(
        args.data, args.train_per_class, args.val_per_class,
        num_frames=CLIP_FRAMES, size=CLIP_SIZE, seed=args.data_seed,
    )
    t_data = time.perf_counter()
    print(f"[demo] dataset {args.data}: {info['num_train']} train / {info['num_val']} val clips, "
          f"{len(info['classes'])} classes ({'reused' if info['reused'] else 'generated'}, "
          f"{t_data - t_start:.1f}s)", flush=True)
    classes = read_labels(args.data)
    train_x, train_y = decode_split(args.data, "train")
    val_x, val_y = decode_split(args.data, "val")
    t_decode = time.perf_counter()
    print(f"[demo] decoded {len(train_x) + len(val_x)} clips of {tuple(train_x.shape[1:])} "
          f"with PyAV ({t_decode - t_data:.1f}s)", flush=True)

    arch = quickstart_arch()
    model = Classifier.from_arch(arch, num_classes=len(classes), dropout=0.0)
    opt = build_optimizer(model, args.lr, args.weight_decay)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"[demo] model: tiny MViTv2, {params:.2f} M params, input 3 x {NUM_FRAMES} x {CROP} x "
          f"{CROP}; {args.epochs} epochs, batch {args.batch_size}", flush=True)

    gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = max(1, len(train_x) // args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    history: List[Dict[str, Any]] = []
    step, seen, step_time, val_top1 = 0, 0, 0.0, 0.0
    t_train = time.perf_counter()
    done = False
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        loss_sum, correct, count = 0.0, 0, 0
        for i in range(steps_per_epoch):
            elapsed = time.perf_counter() - t_train
            progress = max(step / total_steps, elapsed / args.seconds if args.seconds else 0.0)
            if progress >= 1.0:
                done = True
                break
            for group in opt.param_groups:
                group["lr"] = args.lr * lr_factor(progress)
            idx = order[i * args.batch_size: (i + 1) * args.batch_size]
            t_step = time.perf_counter()
            logits = model(make_batch(train_x[idx], train=True, gen=gen))
            loss = F.cross_entropy(logits, train_y[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_time += time.perf_counter() - t_step
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == train_y[idx]).sum())
            count += len(idx)
        seen += count
        if count == 0:
            break
        val_top1 = evaluate(model, val_x, val_y, args.batch_size * 2)
        row = dict(epoch=epoch, train_loss=round(loss_sum / count, 4),
                   train_top1=round(100.0 * correct / count, 2), val_top1=round(val_top1, 2),
                   lr=opt.param_groups[0]["lr"], time_s=round(time.perf_counter() - t_train, 1))
        history.append(row)
        print(f"[demo] epoch {epoch:3d}/{args.epochs}  loss {row['train_loss']:.3f}  "
              f"train {row['train_top1']:5.1f}%  val {row['val_top1']:5.1f}%  "
              f"lr {row['lr']:.1e}  {row['time_s']:6.1f}s", flush=True)
        if done:
            break
    train_time = time.perf_counter() - t_train

    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "model_final.pth")
    metrics = {
        "task": "quickstart",
        "val_top1": round(val_top1, 2),
        "chance_top1": round(100.0 / len(classes), 2),
        "num_classes": len(classes),
        "classes": classes,
        "num_train": len(train_x),
        "num_val": len(val_x),
        "epochs_run": len(history),
        "epochs": args.epochs,
        "stopped_by_time_budget": done,
        "train_time_s": round(train_time, 1),
        "train_clips_per_s": round(seen / max(step_time, 1e-9), 1),  # training steps only
        "data_time_s": round(t_data - t_start, 1),
        "decode_time_s": round(t_decode - t_data, 1),
        "total_time_s": round(time.perf_counter() - t_start, 1),
        "seed": args.seed,
        "data": os.path.abspath(args.data),
        "checkpoint": os.path.abspath(ckpt),
        "history": history,
    }
    save_checkpoint({"model": model.state_dict(), "arch": arch.to_dict(), "classes": classes,
                     "metrics": {k: v for k, v in metrics.items() if k != "history"}}, ckpt)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    summary = {k: metrics[k] for k in ("val_top1", "chance_top1", "num_classes", "num_train",
                                       "num_val", "epochs_run", "train_time_s",
                                       "train_clips_per_s", "total_time_s", "checkpoint")}
    print(json.dumps(summary, indent=2))
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quickstart", action="store_true",
                      help="train a tiny MViTv2 on generated Moving Shapes clips (CPU, minutes)")
    mode.add_argument("--task", choices=("classification", "ava", "coco"),
                      help="task demo (not available yet)")
    q = parser.add_argument_group("quickstart")
    q.add_argument("--data", default=os.path.join("datasets", "demo_clips"),
                   help="dataset folder (generated if missing)")
    q.add_argument("--out", default=os.path.join("output", "quickstart"),
                   help="folder for metrics.json and model_final.pth")
    q.add_argument("--epochs", type=int, default=20)
    q.add_argument("--seconds", type=float, default=240.0,
                   help="training time cap in seconds (0: none)")
    q.add_argument("--train-per-class", type=int, default=100)
    q.add_argument("--val-per-class", type=int, default=30)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--lr", type=float, default=5e-4)
    q.add_argument("--weight-decay", type=float, default=0.05)
    q.add_argument("--label-smoothing", type=float, default=0.1)
    q.add_argument("--seed", type=int, default=0, help="training seed")
    q.add_argument("--data-seed", type=int, default=0, help="dataset generation seed")
    q.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quickstart:
        run_quickstart(args)
        return 0
    print(f"demo --task {args.task}: not available yet (only --quickstart is)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
