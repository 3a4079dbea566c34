"""Run configs: pydantic schemas, YAML loading with ``--set`` overrides, JSON schema, and the
training-task registry the ``task`` section is checked against.

This package must not import torch or ``lmforge.track``: validating a config is cheap.
"""

from lmforge.config.load import ConfigError, load_config, load_config_dict
from lmforge.config.schema import (
    DataConfig,
    EvalConfig,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    RunConfig,
    TrainConfig,
    json_schema,
)
from lmforge.config.tasks import TaskSettings, register_task, task_entry, task_names

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "MethodConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "TaskSettings",
    "TrainConfig",
    "json_schema",
    "load_config",
    "load_config_dict",
    "register_task",
    "task_entry",
    "task_names",
]
