"""Compile a pipeline file to Kubeflow Pipelines v2 YAML (``lmforge pipeline compile``).

How a pipeline maps onto Kubeflow:

- Each step is one container task running ``lmforge pipeline step`` in the given image,
  with the pipeline YAML itself (``--spec-text``), the folder its relative paths start from
  (``--base-dir``, default ``/workspace``) and the step's name (``--step``).
- A step's result is a JSON string parameter, ``records``: every finished step's record
  (type, outputs, run id), its ancestors' included. A task gets one ``--upstream`` per
  direct upstream step, wired to that task's ``records`` output; those data dependencies are
  what make Kubeflow run the tasks in order (``needs:`` steps are wired the same way).
- The pipeline text is embedded as written, except that a file with double braces (every
  ``${{ steps... }}`` reference) is embedded as its JSON rendering (JSON is YAML) with each
  brace pair inside strings escaped: the Kubeflow backend puts task inputs into an Argo
  workflow, and Argo reads double braces anywhere in it as its own variables and rejects
  a ``steps.X...`` it cannot resolve. The container reads the same pipeline; only the
  comments are lost.
- With ``tracking_uri``, every task logs to that MLflow server (``LMFORGE_TRACKING_URI``).
- Kubeflow's cache is on for each task except steps that are not cacheable (``deploy``, a
  side effect) or that say ``cache: false``. It keys on the task's inputs and component,
  the image name included: a data file rebuilt into the same image tag is not noticed, so
  tag images by content or run with caching off.

Limits, honestly: each container starts with an empty ``$LMFORGE_HOME``, so a step output
that is a local path (a trained model folder, a compressed model) does not exist in the
next pod. Either point every step at a shared MLflow server (``tracking_uri``) and have
later steps name models as ``run:RUN_ID`` or ``registry:NAME@ALIAS``, or mount a shared
volume at ``LMFORGE_HOME`` in every task. The data files the pipeline names must be in the
image (or a volume) under ``base_dir``, because each step checks the whole pipeline before
it runs. Custom step types must be registered by the image's lmforge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lmforge.config.load import StrictLoader
from lmforge.errors import LmforgeError
from lmforge.home import atomic_file
from lmforge.pipeline.spec import Pipeline, StepSpec
from lmforge.pipeline.steps import STEP_TYPES

RECORDS = "records"  # the output parameter each step writes and later steps read
SPEC_TEXT = "spec_text"
ARGO_TAG = "{{"  # Argo's variable syntax; kfp's own placeholders are {{$...}}, which it skips


def compile_kfp(
    pipeline: Pipeline,
    out: Path,
    *,
    image: str,
    tracking_uri: str | None = None,
    base_dir: str = "/workspace",
) -> Path:
    """Write ``pipeline`` as a Kubeflow Pipelines v2 YAML file, one container task a step.

    Args:
        pipeline: A checked pipeline from ``load_pipeline`` (its ``text`` is embedded).
        out: The YAML file to write; replaced whole, never left half-written.
        image: The container image every task runs; it must have lmforge installed.
        tracking_uri: An MLflow server every task logs to (sets ``LMFORGE_TRACKING_URI``).
        base_dir: The folder inside the container that relative paths start from.

    Returns:
        ``out``.

    Raises:
        LmforgeError: kfp is not installed, ``image`` is empty, a value holds double
            braces (Argo's variables), the pipeline has no text, or ``out`` cannot be
            written.
    """
    try:
        from kfp import compiler, dsl
        from kfp.components import load_component_from_text
    except ImportError:
        raise LmforgeError(
            "compiling for Kubeflow needs the Kubeflow Pipelines SDK, which is not "
            "installed; run `pip install 'lmforge[kubeflow]'` (the kfp SDK, version 2)"
        ) from None
    if not image.strip():
        raise LmforgeError("image: empty; pass the container image with lmforge installed")
    for field, value in (("image", image), ("tracking_uri", tracking_uri), ("base_dir", base_dir)):
        if value and ARGO_TAG in value:
            raise LmforgeError(f"{field}: {value!r} holds double braces, which Argo reads as "
                               "its own variables; pass a value without them")  # fmt: skip
    spec_text = embedded_spec_text(pipeline)
    safe = _safe_names(pipeline.names)
    components = {
        step.name: load_component_from_text(
            component_text(step.name, safe, pipeline.upstream[step.name], image, base_dir)
        )
        for step in pipeline.order
    }

    # No return annotation: with postponed annotations kfp reads "None" as an output type.
    def add_tasks():
        tasks: dict[str, Any] = {}
        for step in pipeline.order:  # run order, so every upstream task exists already
            inputs = {SPEC_TEXT: spec_text}
            for upstream in pipeline.upstream[step.name]:
                inputs[f"upstream_{safe[upstream]}"] = tasks[upstream].outputs[RECORDS]
            task = components[step.name](**inputs)
            task.set_display_name(step.name)
            task.set_caching_options(_cacheable(step))
            if tracking_uri:
                task.set_env_variable("LMFORGE_TRACKING_URI", tracking_uri)
            tasks[step.name] = task

    description = pipeline.spec.description or (
        f"lmforge pipeline {pipeline.spec.name}: {', '.join(pipeline.names)}"
    )
    pipeline_func = dsl.pipeline(name=pipeline.spec.name, description=description)(add_tasks)
    _write_atomically(Path(out), lambda tmp: compiler.Compiler().compile(pipeline_func, tmp))
    return Path(out)


def embedded_spec_text(pipeline: Pipeline) -> str:
    """The pipeline YAML each container re-reads: the file as written, or, when it holds
    double braces, its JSON rendering with those braces escaped (see the module docstring).

    Raises:
        LmforgeError: the pipeline has no text, or holds a value JSON cannot carry.
    """

    if not pipeline.text.strip():
        raise LmforgeError(
            f"pipeline {pipeline.spec.name!r} has no text to embed; load it from its file "
            "with load_pipeline (each container re-reads the pipeline from that text)"
        )
    if ARGO_TAG not in pipeline.text:
        return pipeline.text
    data = yaml.load(pipeline.text, Loader=StrictLoader)
    try:
        body = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise LmforgeError(
            f"{pipeline.path}: cannot embed the pipeline for Kubeflow ({err}); quote that "
            "value in the file so it is a string"
        ) from None
    # Structural braces are always followed by a newline or a closing brace here, so a
    # brace pair can only be inside a string, where \u007b is a JSON (and YAML) escape.
    body = body.replace(ARGO_TAG, "\\u007b\\u007b")
    text = (
        f"# Pipeline {pipeline.spec.name} as JSON (which is YAML) "
        "with each brace pair in strings escaped, because Argo reads double braces as its "
        "own variables.\n" + body + "\n"
    )
    if yaml.load(text, Loader=StrictLoader) != data:  # a guard: the container must read the same
        raise LmforgeError(
            f"{pipeline.path}: the pipeline does not survive the JSON rendering Kubeflow "
            "needs; write its values as plain strings, numbers, lists and mappings"
        )
    return text


def component_text(
    step: str, safe: dict[str, str], upstream: list[str], image: str, base_dir: str
) -> str:
    """The (v1-style) component YAML of one step: a container running
    ``lmforge pipeline step`` with one ``--upstream`` input per direct upstream step."""
    inputs = [{"name": SPEC_TEXT, "type": "String", "description": "The pipeline YAML."}]
    args: list[Any] = ["--spec-text", {"inputValue": SPEC_TEXT}, "--base-dir", base_dir,
                       "--step", step]  # fmt: skip
    for name in upstream:
        inputs.append({"name": f"upstream_{safe[name]}", "type": "String",
                       "description": f"The records of step {name}."})  # fmt: skip
        args += ["--upstream", {"inputValue": f"upstream_{safe[name]}"}]
    args += ["--outputs-file", {"outputPath": RECORDS}]
    spec = {
        "name": safe[step],
        "description": f"lmforge pipeline step {step}",
        "inputs": inputs,
        "outputs": [{"name": RECORDS, "type": "String",
                     "description": "JSON: this step's record and its upstream steps'."}],
        "implementation": {"container": {"image": image,
                                         "command": ["lmforge", "pipeline", "step"],
                                         "args": args}},
    }  # fmt: skip
    return yaml.safe_dump(spec, sort_keys=False)


def _safe_names(names: list[str]) -> dict[str, str]:
    """Step name -> a unique name of lower-case letters, digits and underscores, which
    kfp accepts for components and inputs (``a-b`` and ``a_b`` get different names)."""
    safe: dict[str, str] = {}
    for name in names:
        base = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "step"
        candidate, index = base, 2
        while candidate in safe.values():
            candidate, index = f"{base}_{index}", index + 1
        safe[name] = candidate
    return safe


def _cacheable(step: StepSpec) -> bool:

    return step.cache and STEP_TYPES[step.type].cacheable


def _write_atomically(out: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temp_path)`` for a temp file beside ``out``, then rename it to ``out``."""
    try:
        # kfp picks the format from the suffix, so the temp file ends in .yaml
        with atomic_file(out, suffix=".tmp.yaml") as tmp:
            write(str(tmp))
    except OSError as err:
        raise LmforgeError(
            f"out: cannot write {str(out)!r} ({err.strerror or err}); "
            "pass a path in a folder you can write to (not a folder itself)"
        ) from None
