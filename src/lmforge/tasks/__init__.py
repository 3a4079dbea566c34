"""Training tasks, one module each; the registry that names them (and holds their
settings) is ``lmforge.config.tasks``."""

from lmforge.config.tasks import register_task
from lmforge.tasks.base import (
    IGNORE_INDEX,
    Batch,
    EncodeOptions,
    EncodeStats,
    Example,
    Task,
    get_task,
)

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "EncodeOptions",
    "EncodeStats",
    "Example",
    "Task",
    "get_task",
    "register_task",
]
