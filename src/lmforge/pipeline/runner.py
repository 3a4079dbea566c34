"""``lmforge pipeline run``: run a checked pipeline's steps in order, with caching, a
parent MLflow run holding one child run per step, resume after a failure, and dry runs.

For each step, in order:
1. fill in the ``${{ steps... }}`` references from the upstream steps' outputs;
2. compute the cache key (``pipeline/cache.py``); an entry with that key whose outputs
   still exist means the step is skipped and says so;
3. otherwise run it, timing wall-clock and CPU seconds, and store its outputs.

A failed step stops the pipeline; ``--resume`` continues the same pipeline run (steps that
finished are cache hits). A register step whose gate refuses the new version ends the
pipeline as "not promoted": the steps after it (deploy) are skipped with the reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text, lmforge_home
from lmforge.pipeline import cache
from lmforge.pipeline.spec import REF_PATTERN, Pipeline, PipelineError, StepSpec, resolve_value
from lmforge.pipeline.steps import STEP_TYPES, StepContext, StepRecord
from lmforge.track import NullTracker, resume_run, start_run
from lmforge.track.tracker import flatten_params

PIPELINE_TAG = "lmforge.pipeline"
STEP_TAG = "lmforge.pipeline.step"


@dataclass
class PipelineResult:
    """How a pipeline run went."""

    name: str
    status: str  # "succeeded" | "not promoted" | "failed" | "planned"
    steps: list[StepRecord] = field(default_factory=list)
    run_id: str | None = None
    reason: str = ""
    seconds: float = 0.0

    def outputs(self, step: str) -> dict[str, Any]:
        for record in self.steps:
            if record.name == step:
                return record.outputs
        raise KeyError(step)


class Events:
    """What the runner tells its caller (the CLI prints; tests may record)."""

    def step_started(self, record: StepRecord, index: int, total: int) -> None: ...

    def step_finished(self, record: StepRecord) -> None: ...

    def log(self, step: str, message: str) -> None: ...

    def progress(self, step: str, done: int, total: int, detail: str) -> None: ...


def state_path(pipeline: Pipeline) -> Path:
    return lmforge_home() / "pipelines" / pipeline.spec.name / "state.json"


def run_pipeline(
    pipeline: Pipeline,
    *,
    resume: bool = False,
    dry_run: bool = False,
    force: bool = False,
    track: bool = True,
    events: Events | None = None,
) -> PipelineResult:
    """Run (or, with ``dry_run``, plan) every step of ``pipeline``.

    Args:
        resume: continue the last run of this pipeline, which failed, in the same MLflow run.
        dry_run: print the plan: which steps are cached and which would run; runs nothing.
        force: run every step even when cached.
        track: log the pipeline run and its steps (and the stages' own runs) to MLflow.

    Raises:
        LmforgeError: a step failed (the message names it and how to resume), or
            ``resume`` with no failed run to resume.
    """
    events = events or Events()
    started = time.perf_counter()
    state = _read_state(pipeline)
    if resume and state.get("status") not in {"failed", "running"}:
        raise LmforgeError(
            f"pipeline {pipeline.spec.name!r} has no failed run to resume (its last run "
            f"{state.get('status', 'does not exist')}); run it without --resume"
        )
    result = PipelineResult(pipeline.spec.name, "planned" if dry_run else "succeeded")
    if dry_run:
        result.steps = _plan(pipeline, force)
        return result

    tracker = _pipeline_tracker(pipeline, state if resume else {}, track)
    result.run_id = tracker.run_id
    state = {"run_id": tracker.run_id, "status": "running", "file": str(pipeline.path),
             "steps": state.get("steps", {}) if resume else {}}  # fmt: skip
    _write_state(pipeline, state)
    done: dict[str, StepRecord] = {}
    blocked: dict[str, str] = {}  # step -> why it is skipped
    try:
        for index, step in enumerate(pipeline.order):
            if step.name in blocked:
                record = StepRecord(step.name, step.type, "skipped", reason=blocked[step.name])
                events.step_finished(record)
                done[step.name] = record
                continue
            record = StepRecord(step.name, step.type, "running")
            events.step_started(record, index, len(pipeline.order))
            record = _run_step(pipeline, step, done, force, track, tracker.run_id, events)
            done[step.name] = record
            state["steps"][step.name] = {"status": record.status, "key": record.key,
                                         "run_id": record.run_id}  # fmt: skip
            _write_state(pipeline, state)
            events.step_finished(record)
            if step.type == "register" and record.outputs.get("promoted") is False:
                result.status = "not promoted"
                result.reason = str(record.outputs.get("reason", ""))
                for later in pipeline.order[index + 1 :]:  # the pipeline ends here
                    blocked[later.name] = f"not promoted by step {step.name!r}: {result.reason}"
    except BaseException as err:
        failed = next((s for s in pipeline.order if s.name not in done), None)
        result.status = "failed"
        result.reason = f"step {failed.name if failed else '?'!r} failed: {err}"
        state["status"] = "failed"
        _write_state(pipeline, state)
        tracker.set_tags({"lmforge.pipeline.failed_step": failed.name if failed else ""})
        tracker.close("FAILED" if not isinstance(err, KeyboardInterrupt) else "KILLED")
        if not isinstance(err, Exception):  # Ctrl-C, SystemExit: as they are
            raise
        what = str(err) if isinstance(err, LmforgeError) else f"{type(err).__name__}: {err}"
        raise LmforgeError(
            f"pipeline {pipeline.spec.name!r}: step {failed.name if failed else '?'!r} "
            f"failed: {what}\nFix it, then continue from that step with: lmforge pipeline "
            f"run {pipeline.path} --resume"
        ) from err
    result.steps = list(done.values())
    result.seconds = time.perf_counter() - started
    state["status"] = result.status
    _write_state(pipeline, state)
    tracker.log_metrics({"pipeline_seconds": result.seconds,
                         "steps_cached": sum(r.status == "cached" for r in result.steps),
                         "steps_ran": sum(r.status == "ran" for r in result.steps)})  # fmt: skip
    tracker.set_tags({"lmforge.pipeline.status": result.status})
    tracker.close("FINISHED")
    return result


def run_single_step(
    pipeline: Pipeline,
    name: str,
    upstream: dict[str, dict[str, Any]],
    *,
    track: bool = True,
    parent_run_id: str | None = None,
    events: Events | None = None,
) -> dict[str, dict[str, Any]]:
    """Run one step given its upstream steps' records (how Kubeflow runs each container).

    Args:
        upstream: ``{step: record}`` for every step ``name`` depends on, directly or not,
            as this function returned them for those steps.

    Returns:
        ``upstream`` plus this step's record, to hand to the steps after it.

    Raises:
        LmforgeError: an upstream record is missing, or the step failed.
    """
    step = pipeline.step(name)
    missing = [n for n in pipeline.ancestors(name) if n not in upstream]
    if missing:
        raise PipelineError(
            f"step {name!r} needs the outputs of {', '.join(missing)}; pass them with --upstream"
        )
    done = {
        n: StepRecord(n, r["type"], r.get("status", "ran"), r.get("seconds", 0.0),
                      r.get("cpu_seconds", 0.0), r["outputs"], r.get("run_id"), r.get("key", ""),
                      params=r.get("params", {}), inputs=r.get("inputs", {}))
        for n, r in upstream.items()
    }  # fmt: skip
    record = _run_step(pipeline, step, done, False, track, parent_run_id, events or Events())
    return {**upstream, name: asdict(record)}


def fill_references(value: Any, outputs: dict[str, dict[str, Any]], where: str) -> Any:
    """``value`` with each ``${{ steps.S.outputs.K }}`` replaced by that output; a string
    that is only a reference takes the output's own type (a number, a mapping).

    Raises:
        PipelineError: the upstream step did not produce the output (``where`` names the step).
    """
    if isinstance(value, dict):
        return {key: fill_references(item, outputs, where) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_references(item, outputs, where) for item in value]
    if not isinstance(value, str):
        return value

    def lookup(match: Any) -> Any:
        step, path = match.group(1), match.group(2).split(".")
        current: Any = outputs.get(step, {})
        for depth, key in enumerate(path):
            if isinstance(current, list) and key.isdigit() and int(key) < len(current):
                current = current[int(key)]
                continue
            if not isinstance(current, dict) or key not in current:
                have = ", ".join(sorted(current)) if isinstance(current, dict) else "none"
                raise PipelineError(
                    f"{where}: step {step!r} produced no output "
                    f"{'.'.join(path[: depth + 1])!r} (it has: {have})"
                )
            current = current[key]
        return current

    whole = REF_PATTERN.fullmatch(value.strip())
    if whole:
        return lookup(whole)
    return REF_PATTERN.sub(lambda match: str(lookup(match)), value)


# --- one step ---------------------------------------------------------------------------


def _prepare(
    pipeline: Pipeline, step: StepSpec, done: dict[str, StepRecord]
) -> tuple[Any, StepRecord]:
    """The validated params of a step whose upstream is done, and its record so far:
    filled-in settings, input hashes and cache key."""
    kind = STEP_TYPES[step.type]
    outputs = {name: record.outputs for name, record in done.items()}
    filled = resolve_value(fill_references(step.params, outputs, f"step {step.name!r}"),
                           pipeline.base_dir)  # fmt: skip
    try:
        params = kind.Params.model_validate(filled)
    except ValidationError as err:
        problems = "; ".join(
            f"with.{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r:.80})"
            for e in err.errors()
        )
        raise PipelineError(
            f"step {step.name!r}, with its references filled in: {problems}; check that each "
            "${{ steps... }} names an output of the right kind (e.g. outputs.files.0 for one file)"
        ) from None
    inputs = cache.input_hashes(filled, kind.extra_inputs(params))
    key = cache.step_key(step.type, filled, inputs)
    return params, StepRecord(step.name, step.type, "planned", key=key, params=filled,
                              inputs=inputs)  # fmt: skip


def _run_step(
    pipeline: Pipeline,
    step: StepSpec,
    done: dict[str, StepRecord],
    force: bool,
    track: bool,
    parent_run_id: str | None,
    events: Events,
) -> StepRecord:

    kind = STEP_TYPES[step.type]
    params, record = _prepare(pipeline, step, done)
    record.status, key, filled = "ran", record.key, record.params
    cacheable = kind.cacheable and step.cache
    entry = cache.load_entry(key) if cacheable and not force else None
    tags = {"mlflow.parentRunId": parent_run_id, PIPELINE_TAG: pipeline.spec.name,
            STEP_TAG: step.name, "lmforge.pipeline.step_type": step.type,
            "lmforge.pipeline.cache_key": key}  # fmt: skip
    with start_run(pipeline.experiment, run_name=step.name, enabled=track and bool(parent_run_id),
                   tags={k: v for k, v in tags.items() if v}) as tracker:  # fmt: skip
        tracker.log_params(_flat_params(filled))
        if entry is not None:
            record.status, record.reason = "cached", f"inputs unchanged (key {key[:12]})"
            record.outputs = entry["outputs"]
            record.seconds, record.cpu_seconds = 0.0, float(entry.get("cpu_seconds", 0.0))
            tracker.set_tags(
                {
                    "lmforge.pipeline.cached": "true",
                    "lmforge.pipeline.cached_from": entry.get("run_id") or "",
                }
            )
        else:
            ctx = StepContext(
                pipeline, step, _work_dir(pipeline, step, key), track,
                ancestors=_ancestors(pipeline, step, done), parent_run_id=parent_run_id,
                log=lambda message: events.log(step.name, message),
                progress=lambda d, t, what: events.progress(step.name, d, t, what),
            )  # fmt: skip
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                record.outputs = kind.run(params, ctx)
            except BaseException as err:
                tracker.close("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
                raise
            record.seconds = time.perf_counter() - wall
            record.cpu_seconds = time.process_time() - cpu
            if cacheable:
                cache.save_entry(key, {"step": step.name, "type": step.type,
                                       "outputs": record.outputs, "run_id": tracker.run_id,
                                       "seconds": record.seconds,
                                       "cpu_seconds": record.cpu_seconds,
                                       "inputs": record.inputs,
                                       "finished": time.time()})  # fmt: skip
        record.run_id = tracker.run_id
        numbers = {k: float(v) for k, v in _flat_outputs(record.outputs).items()}
        tracker.log_metrics({**numbers, "step_seconds": record.seconds,
                             "step_cpu_seconds": record.cpu_seconds})  # fmt: skip
        tracker.set_tags({"lmforge.pipeline.outputs": json.dumps(record.outputs, default=str)})
    return record


def _ancestors(
    pipeline: Pipeline, step: StepSpec, done: dict[str, StepRecord]
) -> dict[str, dict[str, Any]]:
    return {name: asdict(done[name]) for name in pipeline.ancestors(step.name)}


def _plan(pipeline: Pipeline, force: bool) -> list[StepRecord]:
    """What a run would do: cached steps (their inputs known and unchanged) and the rest."""
    done: dict[str, StepRecord] = {}
    records = []
    for step in pipeline.order:
        upstream_known = all(done[n].status == "cached" for n in pipeline.upstream[step.name])
        if not upstream_known:
            record = StepRecord(step.name, step.type, "planned")
            record.reason = "will run: an upstream step will run"
        else:
            _, record = _prepare(pipeline, step, done)
            entry = cache.load_entry(record.key)
            if not (STEP_TYPES[step.type].cacheable and step.cache):
                record.reason = "will run (never cached)"
            elif force:
                record.reason = "will run (--force)"
            elif entry is not None:
                record.status, record.outputs = "cached", entry["outputs"]
                record.reason = "cached: inputs unchanged"
            else:
                record.reason = "will run: no cached result for these inputs"
        done[step.name] = record
        records.append(record)
    return records


def _work_dir(pipeline: Pipeline, step: StepSpec, key: str) -> Path:
    """The step's folder for these inputs: a cached result's files are never overwritten
    by a run with other inputs."""
    path = lmforge_home() / "pipelines" / pipeline.spec.name / step.name / key[:12]
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pipeline_tracker(pipeline: Pipeline, state: dict[str, Any], track: bool) -> Any:

    if not track:
        return NullTracker()
    if state.get("run_id"):
        return resume_run(state["run_id"])
    tracker = start_run(pipeline.experiment, run_name=pipeline.spec.name,
                        tags={PIPELINE_TAG: pipeline.spec.name})  # fmt: skip
    tracker.log_params({"pipeline_file": str(pipeline.path), "steps": ",".join(pipeline.names)})
    return tracker


def _read_state(pipeline: Pipeline) -> dict[str, Any]:
    path = state_path(pipeline)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError:
        return {}


def _write_state(pipeline: Pipeline, state: dict[str, Any]) -> None:
    atomic_write_text(state_path(pipeline), json.dumps(state, indent=2))


def _flat_params(params: dict[str, Any]) -> dict[str, Any]:

    return flatten_params(params)


def _flat_outputs(outputs: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric outputs (not booleans), nested keys joined with '.'."""
    flat: dict[str, float] = {}
    for key, value in outputs.items():
        if key in {"config", "report", "intervals"}:
            continue
        if isinstance(value, dict):
            flat.update(_flat_outputs(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat
