"""Chaining the lifecycle stages: pipeline files, the cached step runner, model cards,
deploy specs, Kubeflow compile (``pipeline.kfp``), and the quickstart main job.

Example:
    from lmforge.pipeline import load_pipeline, run_pipeline
    result = run_pipeline(load_pipeline("examples/pipelines/quickstart.yaml"))
    result.status, result.outputs("register")["ref"]
"""

from lmforge.pipeline.load import load_pipeline, parse_pipeline
from lmforge.pipeline.runner import PipelineResult, run_pipeline, run_single_step
from lmforge.pipeline.spec import Pipeline, PipelineError
from lmforge.pipeline.steps import STEP_TYPES, StepContext, StepRecord, StepType, register_step

__all__ = [
    "STEP_TYPES",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "StepContext",
    "StepRecord",
    "StepType",
    "load_pipeline",
    "parse_pipeline",
    "register_step",
    "run_pipeline",
    "run_single_step",
]
