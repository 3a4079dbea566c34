"""Experiment tracking and the model registry, over MLflow (embedded sqlite by default)."""

from lmforge.track.mlflow_store import artifact_root, get_client, tracking_uri
from lmforge.track.registry import (
    ModelVersionInfo,
    get_alias,
    list_registered,
    parse_registry_ref,
    register_model,
    resolve_registry_ref,
    resolve_run_ref,
    set_alias,
)
from lmforge.track.tracker import (
    OUTPUT_DIR_TAG,
    MlflowTracker,
    NullTracker,
    Tracker,
    flatten_params,
    register_tracker,
    resume_run,
    start_run,
)

__all__ = [
    "OUTPUT_DIR_TAG",
    "MlflowTracker",
    "ModelVersionInfo",
    "NullTracker",
    "Tracker",
    "artifact_root",
    "flatten_params",
    "get_alias",
    "get_client",
    "list_registered",
    "parse_registry_ref",
    "register_model",
    "register_tracker",
    "resolve_registry_ref",
    "resolve_run_ref",
    "resume_run",
    "set_alias",
    "start_run",
    "tracking_uri",
]
