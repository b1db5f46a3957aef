"""Evaluation contract (DatasetEvaluator); task evaluators live in their projects."""
from .evaluator import DatasetEvaluator, EvaluatorList, flatten_results, primary_metric

__all__ = ["DatasetEvaluator", "EvaluatorList", "flatten_results", "primary_metric"]
