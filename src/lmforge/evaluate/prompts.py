"""``lmforge prompts eval``: several prompt templates scored on the same data and model.

Each template is one evaluation run (experiment ``prompts``); the first template is the
baseline the others are compared with, example by example (paired bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmforge.evaluate.compare import MetricDiff, compare_examples
from lmforge.evaluate.runner import EvalResult, evaluate_model
from lmforge.progress import ProgressFn
from lmforge.track.prompts import PromptTemplate

PROMPTS_EXPERIMENT = "prompts"


@dataclass
class PromptComparison:
    """Each template's result, and each one's differences from the first."""

    results: list[EvalResult]
    diffs: list[list[MetricDiff]]  # diffs[i]: template i vs template 0 (empty for 0)


def evaluate_prompts(
    templates: list[PromptTemplate],
    model: str,
    data: Path | str,
    task: str = "qa",
    *,
    max_examples: int | None = None,
    max_tokens: int = 128,
    track: bool = True,
    progress: ProgressFn | None = None,
) -> PromptComparison:
    """Score each template on ``data`` with ``model``; compare each with the first."""
    results = []
    for index, template in enumerate(templates):
        results.append(
            evaluate_model(
                model,
                data,
                task,
                max_examples=max_examples,
                max_tokens=max_tokens,
                template=template,
                track=track,
                experiment=PROMPTS_EXPERIMENT,
                run_name=f"prompt-{index + 1}-{Path(template.ref).name or 'inline'}",
                tags={"lmforge.prompt": template.ref},
                progress=progress,
            )
        )
    base = results[0]
    diffs: list[list[MetricDiff]] = [[]] + [
        compare_examples(base.examples, result.examples, list(base.metrics))
        for result in results[1:]
    ]
    return PromptComparison(results, diffs)
