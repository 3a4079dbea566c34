"""Run configs: pydantic schemas, YAML loading with ``--set`` overrides, JSON schema.

This package must not import torch or ``lmforge.track``: validating a config is cheap.
"""

from lmforge.config.load import ConfigError, load_config, load_config_dict
from lmforge.config.schema import (
    TASK_NAMES,
    DataConfig,
    EvalConfig,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    RunConfig,
    TaskConfig,
    TrainConfig,
    json_schema,
)

__all__ = [
    "TASK_NAMES",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "MethodConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "TaskConfig",
    "TrainConfig",
    "json_schema",
    "load_config",
    "load_config_dict",
]
