"""Prompt templates: Jinja text with variables and an optional system prompt, versioned in
MLflow's prompt registry.

A template renders one record (a dict of fields) into chat messages. Its user part (and
system part, if any) are Jinja templates with ``StrictUndefined``: a variable the record
does not have is an error that names it, never an empty string.

Templates are stored with ``mlflow.genai.register_prompt`` as a chat template
(``[{"role": "system", ...}, {"role": "user", ...}]``), so they show in the MLflow UI's
Prompts tab with their versions and aliases. References:

- ``NAME`` (newest version), ``NAME/VERSION``, ``NAME@ALIAS``, with an optional
  ``prompt:`` prefix;
- a file: ``.jinja``/``.j2``/``.txt`` (the user message) or ``.yaml`` (``system`` and
  ``user`` keys).

Example:
    template = PromptTemplate.from_text("Translate to French: {{ text }}",
                                        system="As a professional translator, ...")
    register_prompt("translate", template)          # -> version 1
    load_prompt("translate/1").render({"text": "Good morning"})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import yaml
from jinja2 import Environment, StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from mlflow.exceptions import MlflowException

from lmforge.errors import LmforgeError
from lmforge.track.mlflow_store import get_client

PROMPT_PREFIX = "prompt:"
FILE_SUFFIXES = (".jinja", ".j2", ".txt", ".yaml", ".yml")
_FORMAT_TAG = "lmforge.format"


@dataclass(frozen=True)
class PromptTemplate:
    """A user-message template and an optional system-prompt template (both Jinja)."""

    user: str
    system: str | None = None
    ref: str = ""  # where it came from: "prompt:NAME/VERSION" or a file path

    @classmethod
    def from_text(cls, user: str, *, system: str | None = None, ref: str = "") -> PromptTemplate:
        """Check both parts compile as Jinja.

        Raises:
            LmforgeError: a Jinja syntax error, naming the part and line.
        """
        template = cls(user, system or None, ref)
        for part, text in template._parts():
            _compile(text, f"{ref or 'template'} ({part})")
        return template

    def variables(self) -> set[str]:
        """The variables the template reads."""
        env = Environment()
        names: set[str] = set()
        for _, text in self._parts():
            names |= meta.find_undeclared_variables(env.parse(text))
        return names

    def render(self, values: Mapping[str, Any]) -> list[dict[str, str]]:
        """The chat messages for one record.

        Raises:
            LmforgeError: the template reads a variable ``values`` does not have.
        """
        messages = []
        for part, text in self._parts():
            try:
                content = _compile(text, part).render(**values).strip()
            except UndefinedError as err:
                raise LmforgeError(
                    f"prompt template {self.ref or ''} ({part}): {err.message}; the record has "
                    f"fields {', '.join(sorted(values))}. Rename the variable or add the field."
                ) from None
            messages.append({"role": part, "content": content})
        return messages

    def _parts(self) -> list[tuple[str, str]]:
        parts = [("system", self.system)] if self.system else []
        return [*parts, ("user", self.user)]


def _compile(text: str, where: str) -> Any:
    try:
        return Environment(undefined=StrictUndefined, keep_trailing_newline=False).from_string(text)
    except TemplateSyntaxError as err:
        raise LmforgeError(
            f"{where}: Jinja syntax error on line {err.lineno}: {err.message}"
        ) from None


def read_template_file(path: Path | str) -> PromptTemplate:
    """A template from a ``.jinja``/``.j2``/``.txt`` file (the user message) or a ``.yaml``
    file with ``user`` and optional ``system`` keys.

    Raises:
        LmforgeError: a missing file, another suffix, or a YAML file without ``user``.
    """
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"no such prompt template file {str(path)!r} (cwd {Path.cwd()})")
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml"}:
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not isinstance(data.get("user"), str):
            raise LmforgeError(
                f"{path}: a YAML prompt template needs a string key 'user' (and optionally "
                "'system'), e.g. user: 'Translate to French: {{ text }}'"
            )
        unknown = sorted(set(data) - {"user", "system"})
        if unknown:
            raise LmforgeError(f"{path}: unknown keys {', '.join(unknown)}; use user and system")
        return PromptTemplate.from_text(data["user"], system=data.get("system"), ref=str(path))
    if path.suffix not in FILE_SUFFIXES:
        raise LmforgeError(
            f"{path}: a prompt template file ends in {', '.join(FILE_SUFFIXES)}, not "
            f"{path.suffix or '(no suffix)'}"
        )
    return PromptTemplate.from_text(text, ref=str(path))


def register_prompt(name: str, template: PromptTemplate, message: str = "") -> int:
    """Store ``template`` as a new version of prompt ``name``; returns the version.

    Raises:
        LmforgeError: an invalid name.
    """
    if not name.strip() or any(c in name for c in "/:@"):
        raise LmforgeError(f"invalid prompt name {name!r}; use letters, digits, '-' or '_'")
    _use_store()
    chat = [{"role": part, "content": text} for part, text in template._parts()]
    version = mlflow.genai.register_prompt(
        name, chat, commit_message=message or None, tags={_FORMAT_TAG: "jinja"}
    )
    return int(version.version)


def load_prompt(ref: str) -> PromptTemplate:
    """The template behind ``ref``: a file path, or ``[prompt:]NAME[/VERSION|@ALIAS]``.

    Raises:
        LmforgeError: an unknown prompt, version or alias (naming what exists).
    """
    if Path(ref).suffix in FILE_SUFFIXES or Path(ref).is_file():
        return read_template_file(ref)

    name = ref.removeprefix(PROMPT_PREFIX)
    _use_store()
    uri = f"prompts:/{name}" if "/" in name or "@" in name else f"prompts:/{name}@latest"
    try:
        prompt = mlflow.genai.load_prompt(uri)
    except MlflowException as err:
        known = ", ".join(p["name"] for p in list_prompts()) or "none yet"
        raise LmforgeError(
            f"no prompt template {ref!r} ({err.message.splitlines()[0]}); registered prompts: "
            f"{known}. Register one with `lmforge prompts create NAME FILE`."
        ) from None
    parts = (
        {m["role"]: m["content"] for m in prompt.template}
        if isinstance(prompt.template, list)
        else {"user": str(prompt.template)}
    )
    return PromptTemplate.from_text(
        parts.get("user", ""),
        system=parts.get("system"),
        ref=f"{PROMPT_PREFIX}{prompt.name}/{prompt.version}",
    )


def list_prompts() -> list[dict[str, Any]]:
    """Every registered prompt: name, newest version, aliases."""
    _use_store()
    rows = []
    for prompt in mlflow.genai.search_prompts(max_results=1000):
        newest = mlflow.genai.load_prompt(f"prompts:/{prompt.name}@latest")
        rows.append({"name": prompt.name, "version": int(newest.version),
                     "aliases": sorted(getattr(prompt, "aliases", None) or []),
                     "variables": sorted(newest.variables)})  # fmt: skip
    return sorted(rows, key=lambda row: row["name"])


def _use_store() -> None:
    """Point MLflow's fluent API at lmforge's store (the prompt registry is fluent only)."""
    uri = get_client().tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
