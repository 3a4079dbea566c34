"""The embedded MLflow store: where it lives, one client for it, and its experiments.

By default tracking and the model registry share one sqlite file,
``$LMFORGE_HOME/mlflow.db``, with artifacts as plain files under
``$LMFORGE_HOME/artifacts``. ``LMFORGE_TRACKING_URI`` points both at any other MLflow
store or server. Every call passes the URI explicitly, so no global ``mlflow`` state
leaks between callers (or tests).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.file_utils import local_file_uri_to_path

from lmforge.errors import LmforgeError
from lmforge.home import lmforge_home

if TYPE_CHECKING:
    from mlflow.entities import Experiment, Run

TRACKING_URI_ENV = "LMFORGE_TRACKING_URI"
# Schemes whose store lives on this machine, so experiments get local file artifact roots.
_LOCAL_SCHEMES = {"", "file", "sqlite"}


def tracking_uri() -> str:
    """Return the tracking (and registry) URI: ``$LMFORGE_TRACKING_URI`` or the embedded db."""
    override = os.environ.get(TRACKING_URI_ENV, "").strip()
    if override:
        return override
    return f"sqlite:///{lmforge_home() / 'mlflow.db'}"


def artifact_root() -> Path:
    """Directory holding the artifacts of the embedded store (``$LMFORGE_HOME/artifacts``)."""
    path = lmforge_home() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_local_store(uri: str | None = None) -> bool:
    """True when the tracking store is a file or sqlite store on this machine."""
    return urllib.parse.urlparse(uri or tracking_uri()).scheme in _LOCAL_SCHEMES


def local_path_from_uri(uri: str) -> Path | None:
    """Return the local path behind a ``file:`` URI or bare path; ``None`` for remote URIs."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme not in {"", "file"}:
        return None
    return Path(local_file_uri_to_path(uri))


def quiet_mlflow_logging() -> None:
    """Silence the INFO chatter of first-time db creation and schema migrations."""
    for name in (
        "mlflow.store.db.utils",
        "mlflow.store.db_migrations",
        "mlflow.store.model_registry.abstract_store",  # "Waiting up to 300 seconds ..."
        "alembic",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_client() -> MlflowClient:
    """An ``MlflowClient`` bound explicitly to :func:`tracking_uri` for tracking and registry."""
    quiet_mlflow_logging()

    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def get_or_create_experiment(client: MlflowClient, name: str) -> Experiment:
    """Return the active experiment ``name``, creating it (with a local artifact root) if new.

    Raises:
        LmforgeError: the experiment exists but was deleted.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = artifact_root().as_uri() if is_local_store(client.tracking_uri) else None
        try:
            client.create_experiment(name, artifact_location=location)
        except MlflowException as err:
            # Another process may have created it between our lookup and create.
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
    if experiment.lifecycle_stage == "deleted":
        raise LmforgeError(
            f"MLflow experiment {name!r} exists but was deleted (tracking store "
            f"{client.tracking_uri}); restore it with `mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}` or pick another experiment name."
        )
    return experiment


def is_not_found(err: Exception) -> bool:
    """True for an MLflow error that means 'no such run / model / version / alias'."""
    code = getattr(err, "error_code", "")
    return code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def get_run(client: MlflowClient, run_id: str) -> Run:
    """Return run ``run_id``.

    Raises:
        LmforgeError: no such run in the store.
    """
    try:
        return client.get_run(run_id)
    except MlflowException as err:
        if not is_not_found(err):
            raise
        raise LmforgeError(
            f"no MLflow run with id {run_id!r} in tracking store {client.tracking_uri}; "
            "pick an id from `lmforge runs list` (and check that LMFORGE_HOME / "
            "LMFORGE_TRACKING_URI point at the store the run was logged to)."
        ) from None
