"""Experiment tracking behind one small protocol: ``Tracker``.

Training and evaluation code only sees ``Tracker``; ``start_run`` picks the backend.
Built-in backends register the same way a user's would::

    register_tracker("mlflow", MlflowTracker.start)

Example:
    with start_run("sft", run_name="smollm2-lora") as tracker:
        tracker.log_params({"train": {"lr": 2e-4, "epochs": 1}})  # -> train.lr, train.epochs
        tracker.log_metrics({"train/loss": 1.23}, step=10)
"""

from __future__ import annotations

import getpass
import json
import posixpath
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, runtime_checkable

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from lmforge.errors import LmforgeError
from lmforge.track.mlflow_store import get_client, get_or_create_experiment, get_run

if TYPE_CHECKING:
    from mlflow import MlflowClient

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
OUTPUT_DIR_TAG = "lmforge.output_dir"
"""Run tag naming the local directory that holds a run's outputs (read by ``run:`` refs)."""
CONTINUAL_SEQUENCE_FILE = "sequence.json"
"""The file in a continual sequence's folder that lists its stages (written by
``lmforge.train.continual``, read by ``lmforge eval continual``)."""

# MLflow's limits (mlflow.utils.validation): longer values are rejected, not truncated.
MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
_BATCH_PARAMS = 100
_BATCH_METRICS = 1000
_TRUNCATED = "...[truncated]"
_BAD_KEY_CHARS = re.compile(r"[^\w.\- :/]")


@runtime_checkable
class Tracker(Protocol):
    """Where a run's params, metrics, tags and artifacts go.

    Use as a context manager: leaving the block closes the run, ``FAILED`` on exception.
    """

    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; nested mappings flatten to ``a.b.c`` keys, values become strings."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics at ``step``."""
        ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy one file into the run's artifacts."""
        ...

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copy a directory's contents into the run's artifacts (under ``artifact_path``)."""
        ...

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set string tags on the run."""
        ...

    def close(self, status: RunStatus = "FINISHED") -> None:
        """End the run with ``status``; later calls do nothing."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings to ``{"a.b.c": "value"}`` with string values.

    Lists and tuples become compact JSON; values longer than MLflow's limit are cut and
    end with ``...[truncated]``.
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[clean_key(name)] = truncate(_to_text(value), MAX_PARAM_LENGTH)
    return flat


def clean_key(key: str) -> str:
    """Make ``key`` a valid MLflow param/metric/tag key (allowed characters, length)."""
    key = _BAD_KEY_CHARS.sub("_", str(key))[:MAX_KEY_LENGTH]
    # MLflow rejects keys that are not normalized paths ("a//b", "./a", "/a", "a/").
    if posixpath.normpath(key) != key or key.startswith((".", "/")):
        key = key.replace("/", "_").lstrip(".") or "_"
    return key


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _to_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return json.dumps(list(value), default=str, separators=(",", ":"))
    if isinstance(value, Mapping):  # only the empty mapping reaches here
        return "{}"
    return str(value)


class NullTracker:
    """A tracker that records nothing (``run_id`` is ``None``); for ``tracking: false``."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Ignore params."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Ignore metrics."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Ignore the file."""

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Ignore the directory."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Ignore tags."""

    def close(self, status: RunStatus = "FINISHED") -> None:
        """Nothing to close."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class MlflowTracker:
    """A tracker writing one MLflow run through an explicit ``MlflowClient``."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id: str | None = run_id
        self._closed = False

    @classmethod
    def start(
        cls,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> MlflowTracker:
        """Create a RUNNING run in ``experiment`` (created if missing) and track it."""
        client = get_client()
        exp = get_or_create_experiment(client, experiment)
        all_tags = {
            "mlflow.user": _user(),
            "mlflow.source.name": "lmforge",
            "mlflow.source.type": "LOCAL",
            **{clean_key(k): truncate(str(v), MAX_TAG_LENGTH) for k, v in (tags or {}).items()},
        }
        run = client.create_run(exp.experiment_id, run_name=run_name, tags=all_tags)
        return cls(client, run.info.run_id)

    @property
    def artifact_uri(self) -> str:
        """The run's artifact root URI."""
        return str(self.client.get_run(self._id).info.artifact_uri)

    @property
    def _id(self) -> str:
        assert self.run_id is not None
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; nested mappings flatten to ``a.b.c`` keys, values become strings.

        Raises:
            LmforgeError: a param was already logged with a different value (MLflow
                params are write-once).
        """
        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for start in range(0, len(items), _BATCH_PARAMS):
            try:
                self.client.log_batch(self._id, params=items[start : start + _BATCH_PARAMS])
            except MlflowException as err:
                raise LmforgeError(
                    f"run {self.run_id}: could not log params: {err.message} MLflow params are "
                    "write-once; log a changing value as a metric or tag instead."
                ) from err

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics at ``step`` (default 0).

        Raises:
            LmforgeError: a value is not a number.
        """
        now = int(time.time() * 1000)
        items = []
        for key, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise LmforgeError(
                    f"metric {key!r}: expected a number, got {value!r} "
                    f"({type(value).__name__}); log text values as params or tags."
                ) from None
            items.append(Metric(clean_key(key), number, now, step or 0))
        for start in range(0, len(items), _BATCH_METRICS):
            self.client.log_batch(self._id, metrics=items[start : start + _BATCH_METRICS])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy one file into the run's artifacts.

        Raises:
            LmforgeError: ``path`` is not a file.
        """
        path = Path(path)
        if not path.is_file():
            raise LmforgeError(
                f"log_artifact: no such file {str(path)!r} (cwd {Path.cwd()}); "
                "pass an existing file, or use log_artifacts for a directory."
            )
        self.client.log_artifact(self._id, str(path), artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copy a directory's contents into the run's artifacts (under ``artifact_path``).

        Raises:
            LmforgeError: ``local_dir`` is not a directory.
        """
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise LmforgeError(
                f"log_artifacts: no such directory {str(local_dir)!r} (cwd {Path.cwd()}); "
                "pass an existing directory, or use log_artifact for a single file."
            )
        self.client.log_artifacts(self._id, str(local_dir), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags; values become strings cut to MLflow's limit."""
        items = [RunTag(clean_key(k), truncate(str(v), MAX_TAG_LENGTH)) for k, v in tags.items()]
        for start in range(0, len(items), _BATCH_PARAMS):
            self.client.log_batch(self._id, tags=items[start : start + _BATCH_PARAMS])

    def close(self, status: RunStatus = "FINISHED") -> None:
        """End the run with ``status``; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        self.client.set_terminated(self._id, status=status)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("KILLED")
        else:
            self.close("FAILED")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


TrackerFactory = Callable[[str, str | None, Mapping[str, Any] | None], Tracker]
TRACKERS: dict[str, TrackerFactory] = {}


def register_tracker(name: str, factory: TrackerFactory) -> None:
    """Make ``start_run(..., backend=name)`` call ``factory(experiment, run_name, tags)``."""
    TRACKERS[name] = factory


register_tracker("mlflow", MlflowTracker.start)
register_tracker("null", lambda experiment, run_name, tags: NullTracker())


def resume_run(run_id: str) -> Tracker:
    """Reopen an existing MLflow run (RUNNING again) to continue logging into it.

    Raises:
        LmforgeError: no run has that id.
    """

    client = get_client()
    get_run(client, run_id)
    client.update_run(run_id, status="RUNNING")
    return MlflowTracker(client, run_id)


def start_run(
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    enabled: bool = True,
    backend: str = "mlflow",
) -> Tracker:
    """Start a tracked run (a ``NullTracker`` when ``enabled`` is false).

    Args:
        experiment: Experiment name; created on first use.
        run_name: Human-readable run name (MLflow picks one when ``None``).
        tags: Run tags, e.g. ``{"lmforge.output_dir": "/abs/out"}``.
        enabled: ``False`` returns a tracker that records nothing.
        backend: A name given to :func:`register_tracker` (``"mlflow"`` by default).

    Raises:
        LmforgeError: ``backend`` is not registered.
    """
    if not enabled:
        return NullTracker()
    if backend not in TRACKERS:
        raise LmforgeError(
            f"tracking backend {backend!r} is not registered (known: "
            f"{', '.join(sorted(TRACKERS))}); pick one of those or call register_tracker first."
        )
    return TRACKERS[backend](experiment, run_name, tags)
