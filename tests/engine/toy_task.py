"""A tiny in-memory task for engine tests (importable as ``toy_task`` from this folder).

Samples are fixed random vectors (seeded by index) with labels from a fixed linear rule, so a
small MLP learns them. ``TOY.BAD_INDICES`` are returned as skip markers (unreadable files);
``TOY.AUG_NOISE`` adds per-sample noise drawn from the sampler's sample seed (tests that
augmentation randomness does not depend on ranks or workers).
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from mvit_tasks.config import CfgNode
from mvit_tasks.evaluation import DatasetEvaluator
from mvit_tasks.tasks import Task
from mvit_tasks.utils import comm

DIM, CLASSES = 8, 3


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, size: int, bad: List[int], noise: float, offset: int) -> None:
        self.size, self.bad, self.noise, self.offset = size, set(bad), noise, offset

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, item: Any) -> Dict[str, Any]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        if index in self.bad:
            return {"skipped": (f"toy/{index:04d}.mp4", "truncated file")}
        g = torch.Generator().manual_seed(self.offset + index)
        x = torch.randn(DIM, generator=g)
        label = int(torch.argmax(x[:CLASSES]))
        if seed is not None and self.noise:
            x = x + self.noise * torch.randn(DIM, generator=torch.Generator().manual_seed(seed))
        return {"x": x, "label": label, "video_id": f"v{index}", "index": index}


class ToyModel(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(DIM, 32), nn.LayerNorm(32), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(32, CLASSES))

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        logits = self.net(batch["x"])
        if self.training:
            return {"loss_cls": F.cross_entropy(logits, batch["label"])}
        return {"logits": logits}


class ToyEvaluator(DatasetEvaluator):
    def reset(self) -> None:
        self.rows: List[tuple] = []

    def process(self, inputs: Any, outputs: Any) -> None:
        pred = outputs["logits"].argmax(1)
        self.rows += list(zip(inputs["video_id"], pred.tolist(), inputs["label"].tolist()))

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        rows = comm.gather_list(self.rows)
        ids = [r[0] for r in rows]
        acc = 100.0 * sum(p == y for _, p, y in rows) / max(len(rows), 1)
        return {"toy": {"top1": acc, "num_samples": float(len(rows)),
                        "num_unique": float(len(set(ids)))}}


class ToyTask(Task):
    default_metric = "top1"

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        cfg.TOY = CfgNode()
        cfg.TOY.TRAIN_SIZE = 64
        cfg.TOY.VAL_SIZE = 21
        cfg.TOY.BAD_INDICES = []
        cfg.TOY.AUG_NOISE = 0.0
        cfg.TOY.DROPOUT = 0.0

    def build_model(self) -> nn.Module:
        return ToyModel(self.cfg.TOY.DROPOUT)

    def build_dataset(self, split: str) -> torch.utils.data.Dataset:
        t = self.cfg.TOY
        if split == "train":
            return ToyDataset(t.TRAIN_SIZE, list(t.BAD_INDICES), t.AUG_NOISE, 0)
        return ToyDataset(t.VAL_SIZE, [], 0.0, 10_000)

    def build_evaluator(self, split: str) -> DatasetEvaluator:
        return ToyEvaluator()
