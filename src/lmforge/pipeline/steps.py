"""The step types a pipeline can use, each a thin call into the stage that does the work.

A step type is a class with a pydantic ``Params`` model (the step's ``with:`` settings), the
names of the outputs it produces, an optional ``check`` run before anything starts, and
``run``, which returns the outputs (JSON values). Registering a type is one line,
``register_step(MyStep)``, the same for the built-ins as for a user's own.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lmforge.compress.config import CompressConfig
from lmforge.compress.export import FORMATS, export_model
from lmforge.compress.run import compress_model
from lmforge.config import load_config, load_config_dict
from lmforge.data.records import read_records
from lmforge.errors import LmforgeError
from lmforge.evaluate.runner import evaluate_model
from lmforge.evaluate.tasks import eval_task, eval_task_names, kb_problem
from lmforge.home import atomic_write_text
from lmforge.hub import resolve
from lmforge.pipeline.cache import hash_path
from lmforge.pipeline.card import lineage_of, write_model_card
from lmforge.pipeline.deploy import deploy
from lmforge.pipeline.spec import (
    REF_PATTERN,
    Pipeline,
    StepSpec,
    is_reference,
    references,
    resolve_value,
    setting_path,
)
from lmforge.progress import ProgressFn
from lmforge.retrieve.documents import json_lines
from lmforge.retrieve.evaluate import evaluate_retrieval, read_queries
from lmforge.retrieve.kb import KnowledgeBase
from lmforge.serve.config import ServeConfig
from lmforge.track.prompts import load_prompt
from lmforge.track.registry import check_gate, promote, register_model, resolve_registry_ref
from lmforge.train.loop import train
from lmforge.train.privacy import privacy_tags


@dataclass
class StepContext:
    """What a running step may use besides its settings."""

    pipeline: Pipeline
    step: StepSpec
    work_dir: Path  # this step's folder for these inputs: $LMFORGE_HOME/pipelines/NAME/STEP/KEY
    track: bool
    ancestors: dict[str, dict[str, Any]]  # step name -> {type, params, outputs, cpu_seconds, ...}
    parent_run_id: str | None = None
    log: Callable[[str], None] = print
    progress: ProgressFn | None = None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepType(abc.ABC):
    """Base of the built-in step types (a user's type needs only the same attributes)."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    cacheable: ClassVar[bool] = True
    output_names: ClassVar[tuple[str, ...]] = ()
    outputs_note: ClassVar[str] = ""  # outputs that depend on the settings, in words

    @classmethod
    def outputs(cls, params: Any) -> set[str]:
        """The output names this step produces with ``params``."""
        return set(cls.output_names)

    @classmethod
    def check(cls, params: Any, pipeline: Pipeline, step: StepSpec) -> list[str]:
        """Problems found before anything runs (``field: what is wrong``)."""
        return []

    @classmethod
    def extra_inputs(cls, params: Any) -> list[Path]:
        """Files the step reads that its settings do not name directly (hashed for the cache)."""
        return []

    @classmethod
    @abc.abstractmethod
    def run(cls, params: Any, ctx: StepContext) -> dict[str, Any]:
        """Do the step's work; return its outputs (JSON values, keyed by ``output_names``)."""


STEP_TYPES: dict[str, type[StepType]] = {}


def register_step(kind: type[StepType]) -> type[StepType]:
    """Make ``kind`` usable as ``type: <kind.name>`` in pipeline files."""
    STEP_TYPES[kind.name] = kind
    return kind


# Settings models a step takes whole, and where their settings are documented.
_WHOLE_CONFIGS: dict[type[BaseModel], str] = {
    CompressConfig: "`lmforge config schema --kind compress`",
    ServeConfig: "`lmforge config schema --kind serve`",
}


def markdown_table() -> str:
    """The step types as a markdown table (docs/pipelines.md holds a copy a test compares).

    A step that takes a whole config (compress, deploy) names it and lists the settings
    it adds.
    """
    lines = ["| type | what it does | settings (`with:`) | outputs |", "|---|---|---|---|"]
    for kind in STEP_TYPES.values():
        summary = " ".join((kind.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
        whole = next((c for c in _WHOLE_CONFIGS if issubclass(kind.Params, c)), None)
        settings = [f"every `{whole.__name__}` setting ({_WHOLE_CONFIGS[whole]})"] if whole else []
        settings += [f"`{name}`" for name in kind.Params.model_fields
                     if whole is None or name not in whole.model_fields]  # fmt: skip
        outputs = [f"`{name}`" for name in kind.output_names]
        outputs += [kind.outputs_note] if kind.outputs_note else []
        lines.append(
            f"| `{kind.name}` | {summary} | {', '.join(settings)} | {', '.join(outputs)} |"
        )
    return "\n".join(lines) + "\n"


def validate_params(step: StepSpec) -> tuple[Any, list[str]]:
    """(the step's settings validated, or ``None``; the problems found).

    A setting that is a whole ``${{ }}`` reference is checked after the reference is
    filled in (it may be a number or a list), so a type error there is not a problem yet;
    the settings are then ``None`` too, as they cannot be built before the run.
    """
    try:
        return STEP_TYPES[step.type].Params.model_validate(step.params), []
    except ValidationError as err:
        problems = [
            f"with.{setting_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
            if not is_reference(_value_at(step.params, e["loc"]))
        ]
        return None, problems


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


def _missing_files(field_name: str, values: list[str], pipeline: Pipeline) -> list[str]:
    """Problems for paths (not ``${{ }}`` references) that do not exist, resolved the way
    the runner resolves them."""

    problems = []
    for value in values:
        if REF_PATTERN.search(value):
            continue
        try:
            resolved = Path(resolve_value(value, pipeline.base_dir))
        except LmforgeError as err:
            problems.append(f"{field_name}: {err}")
            continue
        if not resolved.exists():
            problems.append(
                f"{field_name}: no such file {value!r} (looked in {pipeline.base_dir}); "
                "paths are relative to the pipeline file"
            )
    return problems


# --- data -------------------------------------------------------------------------------


class DataParams(Params):
    files: list[str] = Field(min_length=1, description="Data files to check (JSONL, CSV, ...).")
    format: str = Field(default="auto", description="auto, messages, alpaca, text or labeled.")
    min_records: int = Field(default=1, ge=1, description="Fewer records in a file is an error.")
    where: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Keep only JSONL records whose field has one of these values, e.g. "
        "{topic: [returns]}; the selected records are written to the step's folder.",
    )
    concat: bool = Field(
        default=False,
        description="Also write the records of every file (JSONL), in order, into one file "
        "in the step's folder; files then lists just it, e.g. dialogs plus grounded dialogs "
        "as one training set.",
    )


@register_step
class DataStep(StepType):
    """Read every file as training data would be read (optionally keeping the records that
    match ``where``); record counts and content hashes. ``files`` lists what later steps
    should read: the selected subsets, or the files as given."""

    name = "data"
    Params = DataParams
    output_names = ("files", "records", "sha256")

    @classmethod
    def check(cls, params: DataParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        return _missing_files("files", params.files, pipeline)

    @classmethod
    def run(cls, params: DataParams, ctx: StepContext) -> dict[str, Any]:
        records, hashes, files = {}, {}, []
        for index, file in enumerate(params.files):
            path = Path(file)
            if params.where:  # numbered: two inputs may share a file name
                path = _select(path, params.where, ctx.work_dir / f"{index}-{path.name}")
            rows, report = read_records(path, format=params.format)
            if len(rows) < params.min_records:
                raise LmforgeError(
                    f"{path}: {len(rows)} records, fewer than min_records {params.min_records}"
                )
            records[str(path)] = len(rows)
            hashes[file] = hash_path(Path(file))
            files.append(str(path))
            ctx.log(f"{path.name}: {len(rows)} records ({report.format})")
        if params.concat:
            files = [str(_concat([Path(f) for f in files], ctx.work_dir / "concat.jsonl"))]
            ctx.log(f"{Path(files[0]).name}: {sum(records.values())} records from "
                    f"{len(records)} files")  # fmt: skip
        return {"files": files, "records": records, "sha256": hashes}


def _concat(paths: list[Path], out: Path) -> Path:
    """Write the lines of the JSONL files ``paths``, in order, to ``out``."""

    parts = []
    for path in paths:
        if path.suffix != ".jsonl":
            raise LmforgeError(f"concat: joins .jsonl files; {path} is not one")
        text = path.read_text(encoding="utf-8")
        parts.append(text if text.endswith("\n") or not text else text + "\n")
    atomic_write_text(out, "".join(parts))
    return out


def _select(path: Path, where: dict[str, list[Any]], out: Path) -> Path:
    """Write the JSONL records of ``path`` that match ``where`` to ``out``."""
    if path.suffix != ".jsonl":
        raise LmforgeError(f"where: selects records of .jsonl files; {path} is not one")
    kept = []
    for _, record in json_lines(path, path.read_text(encoding="utf-8")):
        if not isinstance(record, dict):
            continue
        missing = [key for key in where if key not in record]
        if missing:
            raise LmforgeError(f"where: {path} has records without field {missing[0]!r}")
        if all(record[key] in values for key, values in where.items()):
            kept.append(json.dumps(record, ensure_ascii=False) + "\n")
    atomic_write_text(out, "".join(kept))
    return out


# --- train ------------------------------------------------------------------------------


class TrainParams(Params):
    config: str | None = Field(default=None, description="A run config YAML file.")
    run: dict[str, Any] | None = Field(default=None, description="A run config, inline.")
    overrides: list[str] = Field(default_factory=list, description="--set style a.b=c overrides.")


def _train_config(params: TrainParams) -> Any:
    if params.config is not None:
        return load_config(params.config, params.overrides)
    assert params.run is not None
    return load_config_dict(params.run, "the train step's run", overrides=params.overrides)


@register_step
class TrainStep(StepType):
    """``lmforge train`` with a run config (file or inline)."""

    name = "train"
    Params = TrainParams
    output_names = ("model", "run_id", "steps", "final_loss", "privacy", "tokens", "parameters",
                    "trainable_parameters", "base_model", "config", "eval")  # fmt: skip

    @classmethod
    def check(cls, params: TrainParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        if (params.config is None) == (params.run is None):
            return ["config: give exactly one of config (a run config file) or run (inline)"]
        if params.config is not None:
            return _missing_files("config", [params.config], pipeline)
        return []

    @classmethod
    def extra_inputs(cls, params: TrainParams) -> list[Path]:
        config = _train_config(params)
        return [p for p in (config.data.train, config.data.validation) if p is not None]

    @classmethod
    def run(cls, params: TrainParams, ctx: StepContext) -> dict[str, Any]:
        config = _train_config(params)

        result = train(config, track=ctx.track, progress=ctx.progress)
        ctx.log(f"trained {result.steps} steps, final loss {result.final_loss:.3f}, "
                f"{result.train_seconds:.0f} s -> {result.model_dir}")  # fmt: skip
        return {
            "model": str(result.model_dir),
            "run_id": result.run_id,
            "steps": result.steps,
            "final_loss": result.final_loss,
            "privacy": result.privacy,  # the budget spent; empty when not private
            "tokens": int(result.tokens_per_second * result.train_seconds),
            "parameters": result.total_parameters,
            "trainable_parameters": result.trainable_parameters,
            "base_model": config.model.ref,
            "config": config.model_dump(mode="json"),
            "eval": {k: v for k, v in result.eval_metrics.items() if isinstance(v, int | float)},
        }


# --- eval -------------------------------------------------------------------------------


class EvalParams(Params):
    model: str = Field(description="The model to score (any reference, or a step's output).")
    data: str = Field(description="A JSON Lines file with the fields the task reads.")
    task: str = Field(description="A registered evaluation task (lmforge.evaluate.tasks; "
                      "docs/evaluate.md lists them).")  # fmt: skip
    max_examples: int | None = Field(default=None, gt=0)
    max_tokens: int = Field(default=128, gt=0)
    system: str | None = None
    template: str | None = Field(default=None, description="A prompt template (file or name).")
    kb: str | None = Field(
        default=None,
        description="A knowledge base whose passages ground each question of a task that "
        "takes one, as `lmforge serve --kb` does; usually a kb step's output, "
        "${{ steps.kb.outputs.kb }}.",
    )
    kb_top_k: int = Field(default=3, gt=0, description="Passages per question with kb.")


@register_step
class EvalStep(StepType):
    """``lmforge eval``: task metrics with a per-example table in MLflow."""

    name = "eval"
    Params = EvalParams
    output_names = ("metrics", "intervals", "examples", "run_id", "data", "task")
    outputs_note = "each metric of the task by name (`token_f1`, ...)"

    @classmethod
    def outputs(cls, params: EvalParams) -> set[str]:
        metrics = eval_task(params.task).metrics if params.task in eval_task_names() else ()
        return {*cls.output_names, *metrics}

    @classmethod
    def check(cls, params: EvalParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        problems = _missing_files("data", [params.data], pipeline)
        try:
            task = eval_task(params.task)
        except LmforgeError as error:
            return [*problems, str(error)]
        if params.kb is not None and (problem := kb_problem(task)):
            problems.append(problem)
        return problems

    @classmethod
    def run(cls, params: EvalParams, ctx: StepContext) -> dict[str, Any]:
        template = load_prompt(params.template) if params.template else None

        result = evaluate_model(
            params.model, params.data, params.task, max_examples=params.max_examples,
            max_tokens=params.max_tokens, system=params.system, template=template,
            track=ctx.track, run_name=f"{ctx.pipeline.spec.name}-{ctx.step.name}",
            progress=ctx.progress, kb=params.kb, kb_top_k=params.kb_top_k,
        )  # fmt: skip
        shown = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
        ctx.log(f"{params.task} on {len(result.examples)} examples: {shown}")
        return {"metrics": result.metrics, "run_id": result.run_id, "data": params.data,
                "task": params.task, "examples": len(result.examples),
                "intervals": {k: list(v) for k, v in result.intervals.items()},
                **result.metrics}  # fmt: skip


# --- compress / export -------------------------------------------------------------------


class CompressParams(CompressConfig):
    """A compress step's ``with:``: the compress config, every key ``lmforge compress
    --config`` takes (``lmforge config schema --kind compress``)."""


@register_step
class CompressStep(StepType):
    """``lmforge compress``: distill, prune the vocabulary, quantize."""

    name = "compress"
    Params = CompressParams
    output_names = ("model", "run_id", "methods", "report")

    @classmethod
    def check(cls, params: CompressParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        problems = []
        for key in ("data", "eval_data"):
            path = getattr(params, key)
            problems += _missing_files(key, [str(path)], pipeline) if path is not None else []
        return problems

    @classmethod
    def run(cls, params: CompressParams, ctx: StepContext) -> dict[str, Any]:
        result = compress_model(params, ctx.work_dir / "model", track=ctx.track,
                                progress=ctx.progress)  # fmt: skip
        for row in result.rows:
            ctx.log("  " + "  ".join(f"{k}: {v}" for k, v in row.items()))
        return {"model": str(result.path), "run_id": result.run_id,
                "methods": list(params.methods), "report": result.rows}  # fmt: skip


class ExportParams(Params):
    model: str
    format: str = Field(description="hf, gguf or onnx.")
    quant: str | None = None


@register_step
class ExportStep(StepType):
    """``lmforge export``: a Hugging Face folder, a GGUF file or an ONNX folder."""

    name = "export"
    Params = ExportParams
    output_names = ("model", "run_id", "format")

    @classmethod
    def check(cls, params: ExportParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        if params.format not in FORMATS:
            return [f"format: {params.format!r} is not one of {', '.join(FORMATS)}"]
        return []

    @classmethod
    def run(cls, params: ExportParams, ctx: StepContext) -> dict[str, Any]:
        out = ctx.work_dir / ("model.gguf" if params.format == "gguf" else "model")
        result = export_model(params.model, params.format, out, quant=params.quant,
                              track=ctx.track)  # fmt: skip
        return {"model": str(result.path), "run_id": result.run_id, "format": params.format}


# --- register ---------------------------------------------------------------------------


class GateParams(Params):
    alias: str = Field(default="production", description="The alias a new version must earn.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Metric -> margin: the new version must beat the alias holder by at "
        "least the margin (in the metric's better direction; 0 accepts a tie).",
    )
    max_epsilon: float | None = Field(
        default=None, gt=0,
        description="Require differential privacy: the model's recorded budget (epsilon, "
        "from its privacy.json) must be at most this.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _asks_something(self) -> GateParams:
        if not self.metrics and self.max_epsilon is None:
            raise ValueError("gate: give metrics (margins to beat the alias holder by), "
                             "max_epsilon, or both")  # fmt: skip
        return self


class RegisterParams(Params):
    model: str
    name: str = Field(pattern=r"^[^/:@]+$", description="Registered model name.")
    metrics: dict[str, float] | str = Field(
        default_factory=dict, description="The version's metrics (usually an eval step's)."
    )
    eval_step: str | None = Field(
        default=None, description="The eval step whose metrics and data the model card cites."
    )
    gate: GateParams | None = None
    alias: str | None = Field(
        default=None, description="Without a gate: point this alias at the new version."
    )
    intended_use: str = ""
    limitations: str = ""


@register_step
class RegisterStep(StepType):
    """Register the model with lineage and a model card; promote it if it passes the gate."""

    name = "register"
    Params = RegisterParams
    output_names = ("name", "version", "ref", "promoted", "alias", "reason", "card")

    @classmethod
    def check(cls, params: RegisterParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        problems = []
        producers = [
            pipeline.step(ref.step)
            for ref in references(params.metrics if isinstance(params.metrics, str) else "")
        ]
        if params.eval_step is not None:
            if params.eval_step not in pipeline.names:
                problems.append(f"eval_step: no step named {params.eval_step!r}")
            else:
                producers.append(pipeline.step(params.eval_step))
        if params.gate is not None:
            produced: set[str] = set()
            for producer in producers:
                producer_params, _ = validate_params(producer)
                if producer_params is None:
                    return problems  # the producer's own problems are reported with it
                produced |= STEP_TYPES[producer.type].outputs(producer_params)
            if isinstance(params.metrics, dict):
                produced |= set(params.metrics)
            for metric in params.gate.metrics:
                if metric not in produced:
                    sources = ", ".join(p.name for p in producers) or "metrics (none given)"
                    problems.append(
                        f"gate.metrics: {metric!r} is not a metric of {sources}; they produce "
                        f"{', '.join(sorted(produced - {'metrics', 'run_id', 'data', 'task'}))}"
                    )
        return problems

    @classmethod
    def run(cls, params: RegisterParams, ctx: StepContext) -> dict[str, Any]:
        metrics = params.metrics if isinstance(params.metrics, dict) else {}
        lineage = lineage_of(ctx)
        resolved = resolve(params.model)
        if not resolved.path.is_dir():
            raise LmforgeError(
                f"model: {params.model!r} is not a model folder; register "
                "a folder (a GGUF file is registered by its export step's folder)"
            )
        staging = ctx.work_dir / "card"
        card = write_model_card(staging / "MODEL_CARD.md", params, metrics, lineage, ctx)
        lineage_file = staging / "LINEAGE.json"
        atomic_write_text(lineage_file, json.dumps(lineage, indent=2, sort_keys=True))
        tags = {"lmforge.pipeline": ctx.pipeline.spec.name,
                "lmforge.parent_model": lineage.get("parent_model") or "",
                **{f"lmforge.metric.{k}": repr(float(v)) for k, v in metrics.items()},
                **privacy_tags(resolved.path)}  # fmt: skip
        info = register_model(resolved.path, params.name, tags=tags,
                              extra_files=[card, lineage_file],
                              description=f"{ctx.pipeline.spec.name} pipeline, step "
                              f"{ctx.step.name}")  # fmt: skip
        ctx.log(f"registered {info.ref}")
        # promoted: None when no alias was asked for; False only when the gate refused.
        promoted: bool | None = None
        reason, alias = "no alias asked for", params.alias
        if params.gate is not None:
            alias = params.gate.alias
            promoted, reason = check_gate(params.name, info.version, alias, params.gate.metrics,
                                          max_epsilon=params.gate.max_epsilon)  # fmt: skip
        elif params.alias is not None:
            promoted, reason = True, "no gate"
        if promoted and alias:
            promote(params.name, info.version, alias)
            ctx.log(f"promoted {info.ref} to @{alias}: {reason}")
        elif alias:
            ctx.log(f"NOT promoted to @{alias}: {reason}")
        stored = resolve_registry_ref(info.ref)
        return {"name": params.name, "version": info.version, "ref": info.ref,
                "promoted": promoted, "alias": alias, "reason": reason,
                "card": str(stored / card.name)}  # fmt: skip


# --- kb ---------------------------------------------------------------------------------


class KbParams(Params):
    name: str
    documents: list[str] = Field(min_length=1, description="Files or folders to index.")
    embed_model: str = "all-minilm-l6-v2"
    chunk_tokens: int = Field(default=128, gt=0)
    overlap: int = Field(default=32, ge=0)
    queries: str | None = Field(default=None, description="Labeled queries: recall@k, MRR.")


@register_step
class KbStep(StepType):
    """Build (or refresh) a knowledge base; score its retrieval on labeled queries."""

    name = "kb"
    Params = KbParams
    output_names = ("kb", "version_dir", "chunks", "metrics")

    @classmethod
    def check(cls, params: KbParams, pipeline: Pipeline, step: StepSpec) -> list[str]:
        files = [*params.documents, *([params.queries] if params.queries else [])]
        return _missing_files("documents", files, pipeline)

    @classmethod
    def run(cls, params: KbParams, ctx: StepContext) -> dict[str, Any]:
        try:
            kb = KnowledgeBase.open(params.name)
            same = (kb.manifest["embed_model"], kb.manifest["chunk_tokens"],
                    kb.manifest["overlap"]) == (params.embed_model, params.chunk_tokens,
                                                params.overlap)  # fmt: skip
        except LmforgeError:
            kb, same = None, False
        if kb is None or not same:
            kb = KnowledgeBase.create(params.name, embed_ref=params.embed_model,
                                      chunk_tokens=params.chunk_tokens, overlap=params.overlap,
                                      replace=True)  # fmt: skip
        report = kb.add([Path(d) for d in params.documents])
        stats = kb.stats()
        ctx.log(f"knowledge base {params.name!r}: {stats['sources']} documents, "
                f"{stats['chunks']} passages ({len(report.added) + len(report.updated)} "
                f"embedded now, {len(report.unchanged)} unchanged)")  # fmt: skip
        metrics: dict[str, float] = {}
        if params.queries:
            metrics = evaluate_retrieval(kb, read_queries(Path(params.queries))).metrics
            ctx.log("retrieval: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        return {"kb": params.name, "version_dir": str(kb.root / kb.version),
                "chunks": stats["chunks"], "metrics": metrics}  # fmt: skip


# --- deploy -----------------------------------------------------------------------------


class DeployParams(ServeConfig):
    """A deploy step's ``with:``: the serve config (``lmforge config schema --kind serve``;
    ``guard`` defaults to ``default`` here), and how to deploy it."""

    guard: str | None = Field(default="default", description="Guard policy, or null for none.")
    target: Literal["local", "k8s"] = Field(
        default="local", description="local: a command, a systemd unit and a Compose spec "
        "(and a started server with start: true); k8s: Kubernetes manifests for replicas "
        "sharing one store (lmforge deploy k8s).",
    )  # fmt: skip
    start: bool = Field(default=False, description="Start the server now (else write specs).")
    image: str = Field(default="lmforge:latest", description="Container image for the spec.")
    replicas: int = Field(default=2, ge=1, description="k8s: replicas (the autoscaler's floor).")
    namespace: str | None = Field(default=None, description="k8s: namespace of every object.")
    store_secret: str = Field(
        default="lmforge-store",
        description="k8s: the Secret whose key 'url' is the shared store's PostgreSQL URL.",
    )

    @model_validator(mode="after")
    def _start_is_local(self) -> DeployParams:
        if self.start and self.target != "local":
            raise ValueError("start: true starts a server on this machine; it needs target: "
                             "local (apply k8s manifests with kubectl apply -k)")  # fmt: skip
        return self


@register_step
class DeployStep(StepType):
    """Write the ``lmforge serve`` command, a systemd unit and a container spec for the
    model; with ``start: true`` also start the server and wait until it answers; with
    ``target: k8s``, Kubernetes manifests instead."""

    name = "deploy"
    Params = DeployParams
    cacheable = False  # a started server is a side effect, not a cached artifact
    output_names = ("command", "files", "url", "pid")

    @classmethod
    def run(cls, params: DeployParams, ctx: StepContext) -> dict[str, Any]:
        return deploy(params, ctx)


@dataclass
class StepRecord:
    """How one step went in a pipeline run."""

    name: str
    type: str
    status: str  # "ran" | "cached" | "skipped" | "failed" | "planned"
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None  # the step's child run under the pipeline run
    key: str = ""
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # settings, references filled in
    inputs: dict[str, str] = field(default_factory=dict)  # local input path -> SHA-256
