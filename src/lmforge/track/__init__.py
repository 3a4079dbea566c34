"""Experiment tracking and the model registry, over MLflow (embedded sqlite by default)."""

import os

# Set before MLflow is first imported (this package runs before any of its modules):
# lmforge never fetches anything at run time, and MLflow's usage telemetry would try the
# network; remote stores would print run URLs on stdout, which breaks `--json`.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from lmforge.track.mlflow_store import artifact_root, get_client, tracking_uri
from lmforge.track.registry import (
    ModelVersionInfo,
    alias_history,
    check_gate,
    get_alias,
    get_version,
    lineage,
    list_registered,
    parse_registry_ref,
    promote,
    register_model,
    resolve_registry_ref,
    resolve_run_ref,
    rollback,
    set_alias,
)
from lmforge.track.tracker import (
    CONTINUAL_SEQUENCE_FILE,
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
    "CONTINUAL_SEQUENCE_FILE",
    "OUTPUT_DIR_TAG",
    "MlflowTracker",
    "ModelVersionInfo",
    "NullTracker",
    "Tracker",
    "alias_history",
    "artifact_root",
    "check_gate",
    "flatten_params",
    "get_alias",
    "get_client",
    "get_version",
    "lineage",
    "list_registered",
    "parse_registry_ref",
    "promote",
    "register_model",
    "register_tracker",
    "resolve_registry_ref",
    "resolve_run_ref",
    "resume_run",
    "rollback",
    "set_alias",
    "start_run",
    "tracking_uri",
]
