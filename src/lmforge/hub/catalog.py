"""Every model lmforge knows about: the zoo, converted copies, and registered versions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from lmforge.errors import LmforgeError
from lmforge.home import models_dir
from lmforge.hub.info import disk_size, gguf_parameters, safetensors_parameters
from lmforge.hub.resolve import model_kind_of
from lmforge.hub.zoo import ZOO, cache_problem, cached_dir, package_source
from lmforge.track import list_registered


@dataclass
class CatalogEntry:
    """One row of ``lmforge models list``."""

    ref: str
    kind: str
    source: str  # zoo | cache | registry
    parameters: int | None
    size_bytes: int | None
    status: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_models(*, include_registry: bool = True) -> list[CatalogEntry]:
    """List zoo models, other converted models in the cache, and registered versions."""
    entries = [_zoo_entry(name) for name in ZOO]
    cache = models_dir()
    for path in sorted(cache.iterdir()):
        if path.name in ZOO or path.name.startswith(".") or not (path / "config.json").is_file():
            continue
        entries.append(
            CatalogEntry(
                ref=str(path),
                kind=model_kind_of(json.loads((path / "config.json").read_text())),
                source="cache",
                parameters=safetensors_parameters(path),
                size_bytes=disk_size(path),
                status="ready",
            )
        )
    if include_registry:
        entries.extend(_registry_entries())
    return entries


def _zoo_entry(name: str) -> CatalogEntry:
    entry = ZOO[name]
    try:
        source = package_source(entry)
    except LmforgeError:
        return CatalogEntry(name, entry.kind, "zoo", None, None, f"missing: {entry.pip_install}")
    if source.is_dir():
        return CatalogEntry(
            name, entry.kind, "zoo", safetensors_parameters(source), disk_size(source), "ready"
        )
    converted = cached_dir(name)
    # Hashing the weights is the job of resolve(); listing only checks the manifest.
    if (converted / "lmforge-cache.json").is_file() and cache_problem(converted) is None:
        params = safetensors_parameters(converted)
        return CatalogEntry(name, entry.kind, "zoo", params, disk_size(converted), "ready")
    return CatalogEntry(
        name,
        entry.kind,
        "zoo",
        gguf_parameters(source),
        disk_size(source),
        "converts on first use",
    )


def _registry_entries() -> list[CatalogEntry]:
    entries = []
    for version in list_registered():
        aliases = ", ".join(f"@{alias}" for alias in version.aliases)
        entries.append(
            CatalogEntry(
                ref=f"registry:{version.name}/{version.version}",
                kind="registered",
                source="registry",
                parameters=None,
                size_bytes=None,
                status=aliases or "registered",
            )
        )
    return entries
