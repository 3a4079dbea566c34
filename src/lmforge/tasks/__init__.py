"""Training tasks, one module each, registered the way a user's task would be."""

from lmforge.tasks import classify, clm, distill, mlm, sft  # noqa: F401  (register built-ins)
from lmforge.tasks.base import (
    IGNORE_INDEX,
    TASKS,
    Batch,
    EncodeOptions,
    EncodeStats,
    Example,
    Task,
    get_task,
    register_task,
)

__all__ = [
    "IGNORE_INDEX",
    "TASKS",
    "Batch",
    "EncodeOptions",
    "EncodeStats",
    "Example",
    "Task",
    "get_task",
    "register_task",
]
