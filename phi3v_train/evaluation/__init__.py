"""Evaluation: task metrics, label scoring, batched generation and the `evaluate_records` driver."""

from phi3v_train.evaluation.evaluate import EvalResult, evaluate_records

__all__ = ["EvalResult", "evaluate_records"]
