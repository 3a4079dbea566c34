"""Lineage and model cards for the versions a pipeline registers.

``lineage_of`` gathers, from the steps upstream of a register step: every input file's
content hash, the training config, the parent (base) model, the pipeline and step runs,
and the code version. ``write_model_card`` turns that and the evaluation results into
``MODEL_CARD.md``: intended use, data, metrics with their evaluation sets, limitations,
compression, safety evaluation, and compute and energy.

Compute and energy are estimates, and the card says how they were made:
- training FLOPs = 6 x parameters x training tokens (forward and backward passes of a
  dense Transformer, Kaplan et al. 2020), with every parameter counted even under LoRA,
  since activations still flow through the frozen weights;
- CPU time is measured (``time.process_time``: all threads of the process) per step;
- energy = CPU seconds x an assumed draw per busy core (``energy.watts_per_core`` in the
  pipeline file, 10 W by default), which leaves out memory, disks, cooling and idle draw.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge import __version__
from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text
from lmforge.track.registry import REGISTRY_PREFIX, get_alias, parse_registry_ref

if TYPE_CHECKING:
    from lmforge.pipeline.steps import RegisterParams, StepContext


def code_version() -> str:
    """``lmforge X.Y.Z``, plus the git commit when running from a checkout."""

    version = f"lmforge {__version__}"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        return f"{version} (git {commit}{', with uncommitted changes' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        return version


def lineage_of(ctx: StepContext) -> dict[str, Any]:
    """What a registered version came from (stored as ``LINEAGE.json`` beside it)."""
    data: dict[str, str] = {}
    config: dict[str, Any] | None = None
    parent = None
    steps = {}
    for name, step in ctx.ancestors.items():
        steps[name] = {"type": step["type"], "run_id": step["run_id"],
                       "status": step["status"], "cache_key": step["key"]}  # fmt: skip
        outputs = step["outputs"]
        if step["type"] == "train":
            config = outputs.get("config")
            parent = _pinned(outputs.get("base_model"))
            steps[name]["stage_run_id"] = outputs.get("run_id")
        data.update({path: digest for path, digest in step["inputs"].items()
                     if Path(path).is_file()})  # fmt: skip
        data.update(outputs.get("sha256", {}))
    return {
        "pipeline": ctx.pipeline.spec.name,
        "pipeline_file": str(ctx.pipeline.path),
        "pipeline_run_id": ctx.parent_run_id,
        "step": ctx.step.name,
        "parent_model": parent,
        "config": config,
        "data": dict(sorted(data.items())),
        "steps": steps,
        "code_version": code_version(),
    }


def _pinned(ref: str | None) -> str | None:
    """``registry:NAME@ALIAS`` as the version it names now (``registry:NAME/N``), so the
    lineage keeps pointing at the parent after the alias moves (to this very version)."""

    if not ref or not ref.startswith(REGISTRY_PREFIX) or "@" not in ref:
        return ref
    try:
        name, alias, _ = parse_registry_ref(ref)
        return f"{REGISTRY_PREFIX}{name}/{get_alias(name, str(alias))}"
    except LmforgeError:
        return ref


def write_model_card(
    path: Path,
    params: RegisterParams,
    metrics: dict[str, float],
    lineage: dict[str, Any],
    ctx: StepContext,
) -> Path:
    """Write ``MODEL_CARD.md`` for the version being registered; returns its path."""
    ancestors = ctx.ancestors
    trains = [s for s in ancestors.values() if s["type"] == "train"]
    evals = {n: s for n, s in ancestors.items() if s["type"] == "eval"}
    compressions = [s for s in ancestors.values() if s["type"] in {"compress", "export"}]
    data_steps = [s for s in ancestors.values() if s["type"] == "data"]

    lines = [f"# Model card: {params.name}", ""]
    lines += [
        "| | |", "|---|---|",
        f"| registered as | `{params.name}` (pipeline `{ctx.pipeline.spec.name}`, step "
        f"`{ctx.step.name}`) |",
        f"| parent model | `{lineage.get('parent_model') or 'none recorded'}` |",
        f"| code version | {lineage['code_version']} |",
        f"| pipeline run | `{ctx.parent_run_id or 'not tracked'}` |",
        "",
    ]  # fmt: skip
    lines += ["## Intended use", ""]
    lines += [params.intended_use.strip() or (
        "Not stated in the pipeline (`intended_use` of the register step). Treat it as a "
        "research artifact until its owner states the use it was built and evaluated for."
    ), ""]  # fmt: skip

    lines += ["## Data", ""]
    for step in data_steps:
        for file, count in step["outputs"].get("records", {}).items():
            lines.append(
                f"- `{file}`: {count} records, sha256 `{_short(lineage['data'].get(file))}`"
            )
    for step in trains:
        config = step["outputs"].get("config") or {}
        data = config.get("data", {})
        method = config.get("method", {})
        train = config.get("train", {})
        lines.append(
            f"- trained on `{data.get('train')}` ({config.get('task', {}).get('name')} task, "
            f"{method.get('name')} method, {step['outputs'].get('steps')} steps, lr "
            f"{train.get('lr')}, batch {train.get('batch_size')}, seed {train.get('seed')})"
        )
    if not data_steps and not trains:
        lines.append("- No data or train step upstream: this version was registered as given.")
    lines += ["", f"Every input's content hash is in `LINEAGE.json` ({len(lineage['data'])} "
              "files).", ""]  # fmt: skip

    lines += ["## Metrics", ""]
    if evals:
        lines += ["| evaluation | data | task | examples | metric | value | 95% CI |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, step in evals.items():
            out = step["outputs"]
            for metric, value in out.get("metrics", {}).items():
                low, high = (out.get("intervals", {}).get(metric) or [float("nan")] * 2)[:2]
                lines.append(
                    f"| {name} (`{step['params'].get('model')}`) | `{Path(out['data']).name}` | "
                    f"{out.get('task')} | {out.get('examples', '')} | {metric} | {value:.4g} | "
                    f"{low:.4g} to {high:.4g} |"
                )
    elif metrics:
        lines += [f"- {k}: {v:.4g}" for k, v in metrics.items()]
    else:
        lines.append("Not evaluated in this pipeline.")
    lines += [""]
    if params.gate is not None:
        asks = []
        if params.gate.metrics:
            margins = ", ".join(f"{k} by {v:+g}" for k, v in params.gate.metrics.items())
            asks.append(f"beat the version holding `@{params.gate.alias}` on {margins}")
        if params.gate.max_epsilon is not None:
            asks.append(f"trained with differential privacy at epsilon <= "
                        f"{params.gate.max_epsilon:g}")  # fmt: skip
        lines += [f"Promotion gate (`@{params.gate.alias}`): {'; '.join(asks)}.", ""]

    lines += ["## Limitations", ""]
    if params.limitations.strip():
        lines += [params.limitations.strip(), ""]
    sizes = sorted({out["outputs"].get("examples", 0) for out in evals.values()} - {0})
    lines += [
        f"- The metrics come from {', '.join(map(str, sizes)) or 'no'} held-out examples; the "
        "intervals above show how far they could move on another sample of the same kind.",
        "- Generated answers can be wrong or made up; serve it with guardrails and, for facts, "
        "a knowledge base (`lmforge serve --guard default --kb NAME`).",
        "",
    ]

    lines += ["## Compression", ""]
    if compressions:
        for step in compressions:
            out = step["outputs"]
            what = ", ".join(out.get("methods", [])) or out.get("format", "")
            lines.append(f"- {step['type']}: {what} -> `{out.get('model')}`")
            rows = out.get("report") or []
            if rows:
                lines += ["", "| " + " | ".join(rows[0]) + " |",
                          "|" + "---|" * len(rows[0])]  # fmt: skip
                lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
    else:
        lines.append("Not compressed: the weights are as trained.")
    lines += [""]

    lines += ["## Safety evaluation", ""]
    safety = {n: s for n, s in evals.items() if s["outputs"].get("task") == "safety"}
    if safety:
        for name, step in safety.items():
            shown = ", ".join(f"{k} {v:.3g}" for k, v in step["outputs"]["metrics"].items())
            lines.append(f"- {name} on `{Path(step['outputs']['data']).name}`: {shown}")
    else:
        lines.append("Not evaluated in this pipeline (add an eval step with `task: safety`).")
    lines += [""]

    lines += privacy_section(trains)
    lines += _compute_section(ctx, trains)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def privacy_section(trains: list[dict[str, Any]]) -> list[str]:
    """The card's privacy section: each train step's budget, or that it had none."""
    lines = ["## Privacy", ""]
    for step in trains:
        spent = step["outputs"].get("privacy") or {}
        if not spent:
            lines.append("- Trained without differential privacy: nothing bounds what the "
                         "model can repeat of any one training example.")  # fmt: skip
            continue
        fixed = " Batches were fixed-size, not Poisson samples, so this epsilon is the usual "
        fixed += "approximation, not a guarantee."
        lines.append(
            f"- Trained with differential privacy (DP-SGD): epsilon {spent['epsilon']:.3g} at "
            f"delta {spent['delta']:.3g}, over {spent['steps']:.0f} steps (noise multiplier "
            f"{spent['noise_multiplier']:.3g}, each example's gradient clipped to "
            f"{spent['max_grad_norm']:.3g}, sampling rate {spent['sample_rate']:.3g})."
            + ("" if spent.get("poisson", 1.0) else fixed)
        )
    if not trains:
        lines.append("No train step in this pipeline: how the weights were trained is not "
                     "recorded here.")  # fmt: skip
    return [*lines, ""]


def _compute_section(ctx: StepContext, trains: list[dict[str, Any]]) -> list[str]:
    watts = ctx.pipeline.spec.energy.watts_per_core
    lines = ["## Compute and energy", "", "| step | type | CPU seconds | wall seconds | status |",
             "|---|---|---|---|---|"]  # fmt: skip
    total_cpu = 0.0
    for name, step in ctx.ancestors.items():
        total_cpu += step["cpu_seconds"]
        lines.append(f"| {name} | {step['type']} | {step['cpu_seconds']:.1f} | "
                     f"{step['seconds']:.1f} | {step['status']} |")  # fmt: skip
    flops = sum(
        6.0 * float(s["outputs"].get("parameters", 0)) * float(s["outputs"].get("tokens", 0))
        for s in trains
    )
    energy_wh = total_cpu * watts / 3600
    lines += [
        "",
        f"- Training compute: {flops:.3g} FLOPs, estimated as 6 x parameters x training tokens "
        + ", ".join(f"({s['outputs'].get('parameters', 0):,} x {s['outputs'].get('tokens', 0):,})"
                    for s in trains)
        + ".",
        f"- CPU time: {total_cpu:.1f} s measured over the steps above (process CPU time, all "
        f"threads) on {platform.processor() or platform.machine()}, {_cores()} cores. Cached "
        "steps show the CPU time of the run that made their outputs.",
        f"- Energy: about {energy_wh:.3f} Wh, estimated as CPU seconds x {watts:g} W per busy "
        "core (an assumed average; set `energy.watts_per_core` in the pipeline file). Memory, "
        "disks, cooling and idle power are not included.",
        "",
    ]  # fmt: skip
    return lines


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _short(digest: str | None) -> str:
    return (digest or "?")[:16]
