"""Evaluation: the task registry, task metrics, the eval runner, run comparison, prompt
comparison, and sandboxed execution of generated code."""

from lmforge.evaluate.compare import MetricDiff, compare_examples, compare_runs
from lmforge.evaluate.runner import EvalResult, evaluate_model
from lmforge.evaluate.tasks import EvalTask, eval_task, eval_task_names, register_eval_task

__all__ = [
    "EvalResult",
    "EvalTask",
    "MetricDiff",
    "compare_examples",
    "compare_runs",
    "eval_task",
    "eval_task_names",
    "evaluate_model",
    "register_eval_task",
]
