"""Read a pipeline file and check it as a whole before anything runs.

``load_pipeline`` reports every problem at once: an unknown step type, a duplicate name,
a dependency on an unknown step or an output the step does not produce, a cycle, bad
step settings, missing input files. What a pipeline is lives in ``pipeline/spec.py``;
the step types it is checked against in ``pipeline/steps.py``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from lmforge.config.load import StrictLoader, yaml_problem
from lmforge.pipeline.spec import (
    Pipeline,
    PipelineError,
    PipelineSpec,
    StepSpec,
    references,
    setting_path,
)
from lmforge.pipeline.steps import STEP_TYPES, validate_params


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
    try:
        raw = yaml.load(text, Loader=StrictLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as err:
        raise PipelineError(f"{path}: {yaml_problem(err)}") from None
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


def _check_step(pipeline: Pipeline, index: int, step: StepSpec) -> list[str]:
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


def _describe(path: Path, err: ValidationError) -> str:
    lines = [f"{setting_path(e['loc'])}: {e['msg']}" for e in err.errors()]
    return _problems(path, lines)


def _problems(path: Path, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{path}: {problems[0]}"
    listed = "\n".join(f"  {problem}" for problem in problems)
    return f"{path}: {len(problems)} problems in the pipeline:\n{listed}"
