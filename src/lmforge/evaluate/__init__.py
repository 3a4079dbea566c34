"""Evaluation: task metrics, the eval runner, run comparison, prompt comparison, and
sandboxed execution of generated code."""

from lmforge.evaluate.compare import MetricDiff, compare_examples, compare_runs
from lmforge.evaluate.runner import TASK_METRICS, TASKS, EvalResult, evaluate_model

__all__ = [
    "TASKS",
    "TASK_METRICS",
    "EvalResult",
    "MetricDiff",
    "compare_examples",
    "compare_runs",
    "evaluate_model",
]
