"""The pipeline file: a named DAG of typed steps, checked as a whole before anything runs.

```yaml
name: support-bot
steps:
  - name: data
    type: data
    with: {files: [data/train.jsonl]}
  - name: train
    type: train
    with: {config: configs/lora.yaml}
  - name: eval
    type: eval
    with: {model: "${{ steps.train.outputs.model }}", data: data/test.jsonl, task: qa}
```

A step reads another's outputs with ``${{ steps.NAME.outputs.KEY }}`` (``KEY`` may go on
into a mapping or list: ``outputs.metrics.token_f1``, ``outputs.files.0``); that makes
it depend on ``NAME``, as does ``needs: [NAME]``. Relative paths are relative to the
pipeline file; ``bundled:NAME/SPLIT`` names a bundled dataset and ``bundled:company`` the
bundled company documents.

This module holds what a pipeline is (the spec models, the checked ``Pipeline``, output
references); ``pipeline/load.py`` reads and checks a file against the step types of
``pipeline/steps.py``, which reads only this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lmforge.data.bundled import BUNDLED_PREFIX, bundled_path
from lmforge.errors import LmforgeError

REF_PATTERN = re.compile(r"\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_@.-]+)\s*\}\}")
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class PipelineError(LmforgeError):
    """A pipeline file that cannot run; the message lists every problem."""


class StepSpec(BaseModel):
    """One step: its name, type, settings (``with``) and explicit dependencies."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=_NAME, description="Unique step name (lower case, - and _).")
    type: str = Field(description="Step type: data, train, eval, compress, export, ...")
    needs: list[str] = Field(default_factory=list, description="Steps that must run first.")
    params: dict[str, Any] = Field(default_factory=dict, alias="with")
    cache: bool = Field(default=True, description="Skip the step when its inputs are unchanged.")


class EnergySpec(BaseModel):
    """How model cards estimate energy from measured CPU time."""

    model_config = ConfigDict(extra="forbid")

    watts_per_core: float = Field(
        default=10.0, gt=0, description="Assumed average draw of one busy CPU core, in watts."
    )


class PipelineSpec(BaseModel):
    """A pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    description: str = ""
    experiment: str | None = Field(
        default=None, description="MLflow experiment of the pipeline runs (default: pipeline-NAME)."
    )
    energy: EnergySpec = Field(default_factory=EnergySpec)
    steps: list[StepSpec] = Field(min_length=1)


@dataclass
class Pipeline:
    """A checked pipeline: the spec, where it came from, and its steps in run order."""

    spec: PipelineSpec
    path: Path
    order: list[StepSpec]
    upstream: dict[str, list[str]]  # step -> the steps it depends on, in run order
    text: str = ""  # the file as written (the Kubeflow compiler embeds it)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def experiment(self) -> str:
        return self.spec.experiment or f"pipeline-{self.spec.name}"

    def step(self, name: str) -> StepSpec:
        for step in self.order:
            if step.name == name:
                return step
        raise PipelineError(f"{self.path}: no step {name!r}; steps: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [step.name for step in self.order]

    def ancestors(self, name: str) -> list[str]:
        """Every step ``name`` depends on, directly or not, in run order."""
        found = set(self.upstream[name])
        for step in reversed(self.order):
            if step.name in found:
                found |= set(self.upstream[step.name])
        return [n for n in self.names if n in found]


@dataclass
class Reference:
    """One ``${{ steps.STEP.outputs.KEY[.MORE] }}`` in a step's settings."""

    step: str
    output: str
    keys: list[str] = field(default_factory=list)


def references(value: Any) -> Iterator[Reference]:
    """Every output reference inside ``value`` (strings, lists and mappings walked)."""
    if isinstance(value, str):
        for match in REF_PATTERN.finditer(value):
            output, *keys = match.group(2).split(".")
            yield Reference(match.group(1), output, keys)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def resolve_value(value: Any, base_dir: Path) -> Any:
    """``bundled:`` names, and relative paths that exist under ``base_dir``, made absolute,
    in strings, lists and mappings (the same rule the file check uses)."""
    if isinstance(value, dict):
        return {key: resolve_value(item, base_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_value(item, base_dir) for item in value]
    if not isinstance(value, str):
        return value
    if value.startswith(BUNDLED_PREFIX):
        return str(bundled_path(value))
    if value and "\n" not in value and not Path(value).is_absolute():
        try:
            if (base_dir / value).exists():
                return str((base_dir / value).resolve())
        except (OSError, ValueError):  # prose, not a path: too long, or a NUL byte
            pass
    return value


def is_reference(value: Any) -> bool:
    """Whether ``value`` is one whole ``${{ }}`` reference (filled in only at run time)."""
    return isinstance(value, str) and REF_PATTERN.fullmatch(value.strip()) is not None


def setting_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the file spells it: ``steps[1].with.config``."""
    text = ""
    for part in loc:
        part = "with" if part == "params" else part  # the settings' name in the file
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
