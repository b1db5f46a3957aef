"""DatasetEvaluator: the contract between a task's inference outputs and its metrics.

Follows detectron2's ``DatasetEvaluator`` (reset / process / evaluate). Evaluators hold no
timers and do no logging; ``evaluate()`` returns ``{task_name: {metric: value}}`` and
gathers every rank's state itself (:func:`mvit_tasks.utils.comm.gather_list`), so each
sample counts once when the engine's inference sampler shards without padding.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional


class DatasetEvaluator:
    """Accumulates (inputs, outputs) pairs and turns them into metrics."""

    def reset(self) -> None:
        """Forget everything processed so far (called before each evaluation)."""

    def process(self, inputs: Any, outputs: Any) -> None:
        """Consume one batch: ``inputs`` is the collated batch, ``outputs`` the model's output."""
        raise NotImplementedError

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """``{task: {metric: value}}``; in distributed runs, the same result on every rank."""
        raise NotImplementedError

    def write_reports(self, output_dir: str) -> List[str]:
        """Write extra files (JSON, PNG) for the last ``evaluate()``; returns their paths.

        Call on the main process only. The default writes nothing.
        """
        return []

    def warnings(self) -> List[str]:
        """Problems with the inputs that the last ``evaluate()`` scored anyway (e.g. boxes
        outside the image), one line each, for the engine to log and report. Default: none."""
        return []


def flatten_results(results: Dict[str, Dict[str, float]], sep: str = "/") -> Dict[str, float]:
    """``{"kinetics": {"top1": 80.1}}`` -> ``{"kinetics/top1": 80.1}`` (for logs and plots)."""
    return {f"{task}{sep}{k}": v for task, metrics in results.items() for k, v in metrics.items()}


def primary_metric(results: Dict[str, Dict[str, float]], name: Optional[str]) -> Optional[float]:
    """The value of ``name`` (``"task/metric"`` or ``"metric"``) in ``results``; None if absent."""
    if not name:
        return None
    flat = flatten_results(results)
    if name in flat:
        return flat[name]
    hits = [v for k, v in flat.items() if k.rsplit("/", 1)[-1] == name]
    return hits[0] if len(hits) == 1 else None
