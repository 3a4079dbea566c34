"""The model registry: register a model directory, name versions with aliases, resolve refs.

A registered version points at the ``model/`` artifacts of an MLflow run (the source
MLflow 3 accepts for a run-backed version, also through a tracking server's source
validation). A run's model is uploaded once: ``log_model`` and ``register_model`` record
a digest of the files they log (run tag ``lmforge.artifact_sha256.PATH``), and
registering the same files into that run again points the new version at them instead
of uploading a ``model-2/`` copy. References resolve to a local directory:

- ``registry:NAME@ALIAS`` and ``registry:NAME/VERSION``;
- ``run:RUN_ID``: the run's output directory, or its ``model/`` artifacts.

With the embedded file artifact store the stored directory is returned as is; artifacts
on a remote store are downloaded once into ``$LMFORGE_HOME/models/``.

Example:
    info = register_model(Path("out/adapter"), "support-bot")   # -> version 1
    set_alias("support-bot", "prod", info.version)
    resolve_registry_ref("registry:support-bot@prod")           # -> Path to the files
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from lmforge.errors import LmforgeError
from lmforge.home import atomic_dir, file_sha256, lmforge_home
from lmforge.stats import HIGHER_IS_BETTER
from lmforge.track.mlflow_store import get_client, get_run, is_not_found, local_path_from_uri
from lmforge.track.tracker import (
    MAX_TAG_LENGTH,
    OUTPUT_DIR_TAG,
    MlflowTracker,
    Tracker,
    clean_key,
    truncate,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

REGISTRY_PREFIX = "registry:"
RUN_PREFIX = "run:"
REGISTRY_EXPERIMENT = "lmforge-registry"
"""Experiment holding the runs that ``register_model`` creates when given no run."""
MODEL_ARTIFACT_PATH = "model"
LINEAGE_FILE = "LINEAGE.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
DIGEST_TAG_PREFIX = "lmforge.artifact_sha256."
"""Run tag prefix: ``lmforge.artifact_sha256.model`` holds the digest of ``model/``'s files."""
_LIST_HINT = "see `lmforge models list`"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, in plain types."""

    name: str
    version: int
    source: str
    run_id: str | None
    aliases: tuple[str, ...] = ()
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0

    @property
    def ref(self) -> str:
        """The reference that resolves to this version: ``registry:NAME/VERSION``."""
        return f"{REGISTRY_PREFIX}{self.name}/{self.version}"


def log_model(tracker: Tracker, model_dir: Path | str) -> None:
    """Log ``model_dir`` as the run's ``model/`` artifacts, recording their digest so that
    ``register_model`` into the same run reuses them instead of uploading a copy.

    Raises:
        LmforgeError: ``model_dir`` is not a directory.
    """
    tracker.log_artifacts(model_dir, MODEL_ARTIFACT_PATH)
    if tracker.run_id is not None:  # a NullTracker logs nothing, so there is nothing to reuse
        digest = _content_digest(Path(model_dir), ())
        tracker.set_tags({DIGEST_TAG_PREFIX + MODEL_ARTIFACT_PATH: digest})


def register_model(
    model_dir: Path | str,
    name: str,
    *,
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    extra_files: Sequence[Path] = (),
) -> ModelVersionInfo:
    """Log ``model_dir`` as run artifacts and register them as a new version of ``name``.

    Args:
        model_dir: Directory holding the model files (and the config that produced them).
        name: Registered model name (created on first use); no ``/``, ``:`` or ``@``.
        run_id: Run to attach the files to; a new run in ``lmforge-registry`` when ``None``.
            When that run already holds these exact files (the model its training
            logged, with the same ``extra_files``), the version points at them and
            nothing is uploaded again.
        tags: Model version tags.
        description: Model version description.
        extra_files: Files stored beside the model's (a model card, its lineage).

    Raises:
        LmforgeError: ``model_dir`` is not a directory, ``name`` is invalid, or ``run_id``
            is unknown.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise LmforgeError(
            f"register_model: model_dir {str(model_dir)!r} is not a directory "
            f"(cwd {Path.cwd()}); pass the directory that holds the model files."
        )
    if not name.strip() or any(c in name for c in "/:@"):
        raise LmforgeError(
            f"register_model: invalid model name {name!r}; use a non-empty name without "
            "'/', ':' or '@' (they separate name, version and alias in registry: refs)."
        )
    client = get_client()
    if run_id is None:
        with MlflowTracker.start(
            REGISTRY_EXPERIMENT, run_name=f"register-{name}", tags={"lmforge.registered_as": name}
        ) as tracker:
            tracker.log_artifacts(model_dir, MODEL_ARTIFACT_PATH)
            for extra in extra_files:
                tracker.log_artifact(extra, MODEL_ARTIFACT_PATH)
            run_id = tracker.run_id
        assert run_id is not None
        artifact_path = MODEL_ARTIFACT_PATH
    else:
        digest = _content_digest(model_dir, extra_files)
        logged = _logged_copy(client, get_run(client, run_id), digest)
        artifact_path = logged or _free_artifact_path(client, run_id)
        if logged is None:
            client.log_artifacts(run_id, str(model_dir), artifact_path)
            for extra in extra_files:
                client.log_artifact(run_id, str(extra), artifact_path)
            client.set_tag(run_id, DIGEST_TAG_PREFIX + artifact_path, digest)
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"

    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version_tags = {"lmforge.model_dir": str(model_dir.resolve())}
    version_tags.update(
        {clean_key(k): truncate(str(v), MAX_TAG_LENGTH) for k, v in (tags or {}).items()}
    )
    version = client.create_model_version(
        name, source, run_id=run_id, tags=version_tags, description=description
    )
    return _version_info(version)


def set_alias(name: str, alias: str, version: int | str) -> None:
    """Point ``alias`` of model ``name`` at ``version`` (moving it if it pointed elsewhere).

    Raises:
        LmforgeError: unknown model or version, or an alias MLflow rejects.
    """
    client = get_client()
    _get_version(client, name, version)
    try:
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as err:
        raise LmforgeError(
            f"cannot set alias {alias!r} on {name} version {version}: {err.message} "
            "Use letters, digits, '_' or '-' (not 'latest' or 'v<number>')."
        ) from err


def get_alias(name: str, alias: str) -> int:
    """Return the version that ``alias`` of model ``name`` points at.

    Raises:
        LmforgeError: unknown model or alias (the message lists the aliases that exist).
    """
    model = _get_registered(get_client(), name)
    aliases = dict(model.aliases or {})
    if alias not in aliases:
        if aliases:
            known = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items()))
            have = f"its aliases are: {known}. Use one of those, or"
        else:
            have = "it has no aliases yet. Either"
        raise LmforgeError(
            f"registered model {name!r} has no alias {alias!r}; {have} set it with "
            f"`lmforge registry promote {name}/VERSION --alias {alias}` (its versions: "
            f"`lmforge registry list {name}`), or refer to a version as "
            f"registry:{name}/VERSION."
        )
    return int(aliases[alias])


def get_version(name: str, version: int | str) -> ModelVersionInfo:
    """One registered version with its aliases.

    Raises:
        LmforgeError: unknown model or version (naming the versions that exist).
    """
    client = get_client()
    found = _get_version(client, name, version)
    model = _get_registered(client, name)
    aliases = [a for a, v in (model.aliases or {}).items() if int(v) == int(found.version)]
    return _version_info(found, aliases)


def alias_history(name: str, alias: str) -> list[int]:
    """The versions ``alias`` has pointed at through ``promote``, oldest first."""
    model = _get_registered(get_client(), name)
    raw = (model.tags or {}).get(_history_tag(alias), "[]")
    return [int(v) for v in json.loads(raw)]


def promote(name: str, version: int | str, alias: str = "production") -> int | None:
    """Point ``alias`` at ``version`` and record it in the alias's history (for rollback).

    Returns:
        The version the alias pointed at before, if any.

    Raises:
        LmforgeError: unknown model or version, or an invalid alias.
    """
    previous = _alias_or_none(name, alias)
    set_alias(name, alias, version)
    history = [v for v in alias_history(name, alias) if v != int(version)]
    if previous is not None and previous not in history:
        history.append(previous)  # set by hand before: rollback can still return to it
    history.append(int(version))
    get_client().set_registered_model_tag(name, _history_tag(alias), json.dumps(history))
    return previous


def rollback(name: str, alias: str = "production") -> tuple[int, int]:
    """Point ``alias`` back at the version it held before the current one.

    Returns:
        (the version it left, the version it points at now).

    Raises:
        LmforgeError: the alias is unset, or it has no earlier version to go back to.
    """
    current = get_alias(name, alias)
    history = [v for v in alias_history(name, alias) if v != current]
    client = get_client()
    existing = {int(v.version) for v in client.search_model_versions(f"name = '{_quote(name)}'")}
    earlier = [v for v in history if v in existing]
    if not earlier:
        raise LmforgeError(
            f"{name}@{alias} points at version {current} and has no earlier version to roll "
            f"back to; promote one with `lmforge registry promote {name}/VERSION --alias {alias}`."
        )
    target = earlier[-1]
    set_alias(name, alias, target)
    client.set_registered_model_tag(name, _history_tag(alias), json.dumps(earlier))
    return current, target


def check_gate(
    name: str,
    version: int,
    alias: str,
    margins: Mapping[str, float],
    *,
    max_epsilon: float | None = None,
) -> tuple[bool, str]:
    """Does ``version`` beat the version holding ``alias`` on every metric by its margin,
    and (with ``max_epsilon``) was it trained with differential privacy within that budget?

    Metrics are read from the versions' ``lmforge.metric.NAME`` tags, the budget from
    ``lmforge.privacy.epsilon``. Lower is better for perplexity, rmse and mae; higher for
    the rest.

    Returns:
        (promote or not, the reason in words).
    """
    new = get_version(name, version).tags
    verdicts, passed = [], True
    if max_epsilon is not None:
        if "lmforge.privacy.epsilon" not in new:
            return False, (f"version {version} was trained without differential privacy; the "
                           f"gate needs epsilon <= {max_epsilon:g}")  # fmt: skip
        epsilon = float(new["lmforge.privacy.epsilon"])
        passed = epsilon <= max_epsilon
        verdicts.append(f"epsilon {epsilon:.3g} at delta {float(new['lmforge.privacy.delta']):g} "
                        f"(needs <= {max_epsilon:g})")  # fmt: skip
    holder = _alias_or_none(name, alias)
    if holder is None:
        return passed, "; ".join([*verdicts, f"no version holds @{alias} yet"])
    if holder == int(version):
        return passed, "; ".join([*verdicts, f"version {version} already holds @{alias}"])
    old = get_version(name, holder).tags
    for metric, margin in margins.items():
        key = f"lmforge.metric.{metric}"
        if key not in new:
            return False, f"the new version {version} has no recorded {metric}"
        if key not in old:
            return False, (f"version {holder} (@{alias}) has no recorded {metric} to compare "
                           f"with; promote by hand with `lmforge registry promote`")  # fmt: skip
        a, b = float(old[key]), float(new[key])
        gain = b - a if HIGHER_IS_BETTER.get(metric, True) else a - b
        ok = gain >= margin
        passed &= ok
        verdicts.append(f"{metric} {b:.4g} vs {a:.4g} of version {holder} "
                        f"({'+' if gain >= 0 else ''}{gain:.4g}, needs {margin:+.4g})")  # fmt: skip
    return passed, "; ".join(verdicts)


def lineage(name: str, version: int | str, _seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The lineage a pipeline recorded for a version (its ``LINEAGE.json``), with the
    parent's own lineage under ``parent`` when the parent is a registered version too.

    Raises:
        LmforgeError: unknown version, or one registered without lineage.
    """
    info = get_version(name, version)
    if info.ref in _seen:
        raise LmforgeError(f"{info.ref} is its own ancestor in the recorded lineage")
    path = resolve_registry_ref(info.ref) / LINEAGE_FILE
    if not path.is_file():
        raise LmforgeError(
            f"{info.ref} has no lineage: it was registered outside a pipeline (`lmforge "
            "pipeline run` records data hashes, config, code version and parent model)."
        )
    record = dict(json.loads(path.read_text(encoding="utf-8")))
    parent = str(record.get("parent_model") or "")
    if parent.startswith(REGISTRY_PREFIX):
        parent_name, alias, parent_version = parse_registry_ref(parent)
        try:
            number = parent_version or get_alias(parent_name, str(alias))
            record["parent"] = lineage(parent_name, number, _seen | {info.ref})
        except LmforgeError as err:
            record["parent"] = {"error": str(err)}
    return record


def list_registered() -> list[ModelVersionInfo]:
    """Every registered model version, sorted by name then version, with its aliases."""
    client = get_client()
    aliases: dict[tuple[str, int], list[str]] = {}
    page_token = None
    while True:
        models = client.search_registered_models(max_results=1000, page_token=page_token)
        for model in models:
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault((model.name, int(version)), []).append(alias)
        page_token = models.token
        if not page_token:
            break
    infos = []
    page_token = None
    while True:
        versions = client.search_model_versions(page_token=page_token)
        for version in versions:
            key = (version.name, int(version.version))
            infos.append(_version_info(version, aliases.get(key, [])))
        page_token = versions.token
        if not page_token:
            break
    return sorted(infos, key=lambda info: (info.name, info.version))


def parse_registry_ref(ref: str) -> tuple[str, str | None, int | None]:
    """Split ``registry:NAME@ALIAS`` / ``registry:NAME/VERSION`` into (name, alias, version).

    Raises:
        LmforgeError: ``ref`` has neither form.
    """
    rest = ref[len(REGISTRY_PREFIX) :] if ref.startswith(REGISTRY_PREFIX) else ""
    name, alias, version = "", None, None
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
    elif "/" in rest:
        name, number = rest.rsplit("/", 1)
        version = int(number) if number.isdigit() else None
    if not name or not (alias or version):
        raise LmforgeError(
            f"malformed registry reference {ref!r}; write registry:NAME@ALIAS (e.g. "
            f"registry:support-bot@prod) or registry:NAME/VERSION (e.g. registry:support-bot/1) "
            f"({_LIST_HINT})."
        )
    return name, alias, version


def resolve_registry_ref(ref: str) -> Path:
    """Return a local directory holding the files of ``registry:NAME@ALIAS|NAME/VERSION``.

    Raises:
        LmforgeError: malformed ref, unknown model, alias or version, or missing files.
    """
    name, alias, version = parse_registry_ref(ref)
    client = get_client()
    if alias is not None:
        version = get_alias(name, alias)
    assert version is not None
    _get_version(client, name, version)
    uri = client.get_model_version_download_uri(name, str(version))
    return _local_dir(uri, lmforge_home() / "models" / "registry" / name / str(version), what=ref)


def resolve_run_ref(ref: str) -> Path:
    """Return the local output directory of ``run:RUN_ID``.

    The run's ``lmforge.output_dir`` tag wins when that directory exists here; otherwise
    the run's ``model/`` artifacts are used.

    Raises:
        LmforgeError: malformed ref, unknown run, or a run with neither.
    """
    run_id = ref[len(RUN_PREFIX) :].strip() if ref.startswith(RUN_PREFIX) else ""
    if not run_id:
        raise LmforgeError(
            f"malformed run reference {ref!r}; write run:RUN_ID with an id from "
            "`lmforge runs list`."
        )
    client = get_client()
    run = get_run(client, run_id)
    tried = []
    output_dir = run.data.tags.get(OUTPUT_DIR_TAG)
    if output_dir:
        if Path(output_dir).is_dir():
            return Path(output_dir)
        tried.append(f"its {OUTPUT_DIR_TAG} tag {output_dir!r} (no such directory here)")
    else:
        tried.append(f"its {OUTPUT_DIR_TAG} tag (not set)")
    if client.list_artifacts(run_id, MODEL_ARTIFACT_PATH):
        uri = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"
        return _local_dir(uri, lmforge_home() / "models" / "runs" / run_id, what=ref)
    tried.append(f"its '{MODEL_ARTIFACT_PATH}/' artifacts (none)")
    raise LmforgeError(
        f"run {run_id} has no model output: tried {' and '.join(tried)}. Check the run with "
        f"`lmforge runs show {run_id}`, or pass the output directory path instead."
    )


def _local_dir(uri: str, cache_dir: Path, *, what: str) -> Path:
    """The local directory behind artifact ``uri``: in place if local, else downloaded once."""
    local = local_path_from_uri(uri)
    if local is not None:
        if not local.is_dir():
            raise LmforgeError(
                f"{what}: its files are missing from {local} (the artifact directory was "
                "moved or deleted); register the model again."
            )
        return local
    if cache_dir.is_dir() and any(cache_dir.iterdir()):
        return cache_dir

    client = get_client()
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.download-", dir=cache_dir.parent))
    try:
        got = Path(
            download_artifacts(
                artifact_uri=uri,
                dst_path=str(staging),
                tracking_uri=client.tracking_uri,
                registry_uri=client.tracking_uri,
            )
        )
        with atomic_dir(cache_dir) as tmp:
            for child in got.iterdir():
                shutil.move(child, tmp / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache_dir


def _alias_or_none(name: str, alias: str) -> int | None:
    model = _get_registered(get_client(), name)
    value = (model.aliases or {}).get(alias)
    return int(value) if value is not None else None


def _history_tag(alias: str) -> str:
    return f"lmforge.alias_history.{alias}"


def _content_digest(model_dir: Path, extra_files: Sequence[Path]) -> str:
    """SHA-256 over the relative names and contents of the files an upload of
    ``model_dir`` plus ``extra_files`` (at its top, replacing same-named files) stores."""
    files = {p.relative_to(model_dir).as_posix(): p for p in model_dir.rglob("*") if p.is_file()}
    files.update({Path(extra).name: Path(extra) for extra in extra_files})
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{file_sha256(files[name])}\n".encode())
    return digest.hexdigest()


def _logged_copy(client: MlflowClient, run: Run, digest: str) -> str | None:
    """The artifact folder of ``run`` that already holds files with ``digest``, if any."""
    for key, value in sorted(run.data.tags.items()):
        if not key.startswith(DIGEST_TAG_PREFIX) or value != digest:
            continue
        path = key[len(DIGEST_TAG_PREFIX) :]
        if client.list_artifacts(run.info.run_id, path):  # not deleted since
            return path
    return None


def _free_artifact_path(client: MlflowClient, run_id: str) -> str:
    """``model``, or ``model-2``, ``model-3``… when the run already holds one."""
    taken = {info.path for info in client.list_artifacts(run_id)}
    path, n = MODEL_ARTIFACT_PATH, 1
    while path in taken:
        n += 1
        path = f"{MODEL_ARTIFACT_PATH}-{n}"
    return path


def _get_registered(client: MlflowClient, name: str) -> RegisteredModel:
    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if not is_not_found(err):
            raise
        names = [m.name for m in client.search_registered_models(max_results=50)]
        have = f"registered models: {', '.join(names)}" if names else "no models are registered"
        raise LmforgeError(
            f"no registered model named {name!r} in {client.tracking_uri} ({have}); "
            f"check the name ({_LIST_HINT}) or register the model first."
        ) from None


def _get_version(client: MlflowClient, name: str, version: int | str) -> ModelVersion:
    _get_registered(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as err:
        if not is_not_found(err):
            raise
        versions = sorted(
            int(v.version) for v in client.search_model_versions(f"name = '{_quote(name)}'")
        )
        raise LmforgeError(
            f"registered model {name!r} has no version {version!r}; its versions are "
            f"{', '.join(map(str, versions)) or 'none'} ({_LIST_HINT})."
        ) from None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _version_info(version: ModelVersion, aliases: list[str] | None = None) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=version.name,
        version=int(version.version),
        source=version.source or "",
        run_id=version.run_id or None,
        aliases=tuple(sorted(aliases if aliases is not None else version.aliases or [])),
        description=version.description or "",
        tags=dict(version.tags or {}),
        created_ms=int(version.creation_timestamp or 0),
    )
