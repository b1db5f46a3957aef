"""Evaluation contract (DatasetEvaluator); task evaluators live in their projects."""
from .evaluator import DatasetEvaluator, flatten_results, primary_metric

__all__ = ["DatasetEvaluator", "flatten_results", "primary_metric"]
