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

``load_pipeline`` reports every problem at once: an unknown step type, a duplicate name,
a dependency on an unknown step or an output the step does not produce, a cycle, bad
step settings, missing input files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def load_pipeline(path: Path | str) -> Pipeline:
    """Read and check a pipeline file.

    Raises:
        PipelineError: the file is missing or malformed; the message lists every problem.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise PipelineError(f"no such pipeline file {str(path)!r}; pass a pipeline YAML file")
    return parse_pipeline(path.read_text(encoding="utf-8"), path)


def parse_pipeline(text: str, path: Path) -> Pipeline:
    """Check pipeline YAML ``text``; ``path`` names it and its folder anchors relative paths.

    Raises:
        PipelineError: malformed YAML or pipeline; the message lists every problem.
    """
    import yaml

    from lmforge.config.load import _Loader, _yaml_problem

    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.MarkedYAMLError as err:
        raise PipelineError(f"{path}: {_yaml_problem(err)}") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise PipelineError(
            f"{path}: a pipeline file is a mapping with `name:` and `steps:` at the top level"
        )
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as err:
        raise PipelineError(_describe(path, err)) from None
    return check_pipeline(spec, path, text)


def check_pipeline(spec: PipelineSpec, path: Path, text: str = "") -> Pipeline:
    """Order ``spec``'s steps and check them (see ``load_pipeline``)."""
    from lmforge.pipeline.steps import STEP_TYPES

    problems: list[str] = []
    names = [step.name for step in spec.steps]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"step name {name!r} is used {names.count(name)} times; names are unique")
    by_name = {step.name: step for step in spec.steps}
    upstream: dict[str, list[str]] = {}
    for index, step in enumerate(spec.steps):
        where = f"steps[{index}] ({step.name})"
        if step.type not in STEP_TYPES:
            problems.append(
                f"{where}: unknown step type {step.type!r}; the types are "
                f"{', '.join(sorted(STEP_TYPES))}"
            )
        deps = list(step.needs)
        for need in step.needs:
            if need not in by_name:
                problems.append(f"{where}.needs: no step named {need!r}")
        for ref in references(step.params):
            if ref.step not in by_name:
                problems.append(f"{where}: refers to outputs of unknown step {ref.step!r}")
                continue
            if ref.step not in deps:
                deps.append(ref.step)
        upstream[step.name] = [d for d in dict.fromkeys(deps) if d in by_name]
    if problems:  # the order needs known names
        raise PipelineError(_problems(path, problems))
    order = _topological(spec, upstream, path)
    pipeline = Pipeline(spec, path, order, upstream, text)
    for index, step in enumerate(spec.steps):
        problems.extend(_check_step(pipeline, index, step))
    if problems:
        raise PipelineError(_problems(path, problems))
    return pipeline


def validate_params(step: StepSpec) -> tuple[Any, list[str]]:
    """(the step's settings validated, or ``None``; the problems found).

    A setting that is a whole ``${{ }}`` reference is checked after the reference is
    filled in (it may be a number or a list), so a type error there is not a problem yet;
    the settings are then ``None`` too, as they cannot be built before the run.
    """
    from lmforge.pipeline.steps import STEP_TYPES

    try:
        return STEP_TYPES[step.type].Params.model_validate(step.params), []
    except ValidationError as err:
        problems = [
            f"with.{_loc(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
            if not _is_reference(_value_at(step.params, e["loc"]))
        ]
        return None, problems


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and REF_PATTERN.fullmatch(value.strip()) is not None


def _value_at(params: dict[str, Any], loc: tuple[Any, ...]) -> Any:
    """The setting at an error's location, or the deepest one found on the way."""
    current: Any = params
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if not (in_dict or in_list):
            break
        current = current[part]
    return current


def _check_step(pipeline: Pipeline, index: int, step: StepSpec) -> list[str]:
    from lmforge.pipeline.steps import STEP_TYPES

    where = f"steps[{index}] ({step.name})"
    kind = STEP_TYPES[step.type]
    params, problems = validate_params(step)
    problems = [f"{where}.{problem}" for problem in problems]
    for ref in references(step.params):
        producer = pipeline.step(ref.step)
        producer_kind = STEP_TYPES[producer.type]
        producer_params, _ = validate_params(producer)
        if producer_params is None:
            continue  # the producer's own problems are reported with it
        produced = producer_kind.outputs(producer_params)
        if ref.output not in produced:
            problems.append(
                f"{where}: step {ref.step!r} ({producer.type}) has no output {ref.output!r}; "
                f"its outputs are {', '.join(sorted(produced))}"
            )
    if params is not None:
        problems.extend(f"{where}.with.{p}" for p in kind.check(params, pipeline, step))
    return problems


def _topological(spec: PipelineSpec, upstream: dict[str, list[str]], path: Path) -> list[StepSpec]:
    """Steps in file order, moved after their dependencies; a cycle is an error naming it."""
    by_name = {step.name: step for step in spec.steps}
    order: list[StepSpec] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*trail[trail.index(name) :], name]
            raise PipelineError(
                f"{path}: the steps depend on each other in a cycle: {' -> '.join(cycle)}; "
                "remove one of these dependencies (needs or ${{ steps... }} references)"
            )
        state[name] = "visiting"
        for dep in upstream[name]:
            visit(dep, [*trail, name])
        state[name] = "done"
        order.append(by_name[name])

    for step in spec.steps:
        visit(step.name, [])
    return order


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


def _describe(path: Path, err: ValidationError) -> str:
    lines = [f"{_loc(e['loc'])}: {e['msg']}" for e in err.errors()]
    return _problems(path, lines)


def _problems(path: Path, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{path}: {problems[0]}"
    listed = "\n".join(f"  {problem}" for problem in problems)
    return f"{path}: {len(problems)} problems in the pipeline:\n{listed}"


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        part = "with" if part == "params" else part  # the settings' name in the file
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
