"""Every shipped example config and pipeline loads and validates, so examples never rot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lmforge.compress.config import CompressConfig
from lmforge.config import RunConfig, load_config_dict
from lmforge.config.load import load_settings
from lmforge.federated.config import FederatedConfig
from lmforge.serve.config import ServeConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PIPELINES = EXAMPLES / "pipelines"
PROMPTS = EXAMPLES / "prompts"
# the config each folder of examples holds
KINDS: dict[str, type[Any]] = {"train": RunConfig, "compress": CompressConfig, "serve": ServeConfig,
                               "federated": FederatedConfig}  # fmt: skip
EXAMPLE_FILES = sorted(p for folder in KINDS for p in (EXAMPLES / folder).glob("*.yaml"))
PIPELINE_FILES = sorted(PIPELINES.glob("*.yaml"))
PROMPT_FILES = sorted(PROMPTS.glob("*"))


def test_there_are_examples_to_check() -> None:
    assert EXAMPLE_FILES, f"no *.yaml under {EXAMPLES}"
    folders = {p.parent.name for p in EXAMPLES.glob("**/*.yaml")}
    assert folders <= {*KINDS, "pipelines", "prompts"}, "tell KINDS what the new folder holds"
    assert PIPELINE_FILES, f"no *.yaml under {PIPELINES}"
    assert PROMPT_FILES, f"no prompt templates under {PROMPTS}"


@pytest.mark.parametrize("path", PROMPT_FILES, ids=lambda p: p.name)
def test_example_prompt_template_renders_a_test_question(path: Path) -> None:
    from lmforge.data.bundled import dataset_path
    from lmforge.evaluate.runner import read_eval_data
    from lmforge.track.prompts import read_template_file

    record = read_eval_data(dataset_path("customer_service", "test_questions"), "qa")[0]
    messages = read_template_file(path).render(record)
    assert messages[-1] == {"role": "user", "content": record["question"]}


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.name)
def test_example_pipeline_is_valid_and_says_how_to_run_it(path: Path) -> None:
    from lmforge.pipeline.load import load_pipeline

    pipeline = load_pipeline(path)
    assert pipeline.order
    header = path.read_text(encoding="utf-8").split("\nname:", 1)[0]
    assert f"lmforge pipeline run examples/pipelines/{path.name}" in header


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_config_is_valid(path: Path) -> None:
    config = load_settings(path, KINDS[path.parent.name])

    if isinstance(config, RunConfig):
        stages = config.train.continual.stages if config.train.continual else []
        files = [stage.train for stage in stages] or [config.data.train_path]
        for file in files:
            assert file.is_absolute() or str(file).startswith(("bundled:", "dataset:"))
            assert file.exists() or not file.is_absolute(), file
    if isinstance(config, FederatedConfig):  # the run config each site trains with
        assert isinstance(load_settings(config.run, RunConfig), RunConfig)
        assert config.eval is None or config.eval.data.is_file()


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_says_how_to_run_it(path: Path) -> None:
    header = path.read_text(encoding="utf-8").split("\n\n", 1)[0]

    assert header.startswith("#")
    assert f"examples/{path.relative_to(EXAMPLES)}" in header


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_resolved_example_loads_again_unchanged(path: Path) -> None:
    kind = KINDS[path.parent.name]
    config = load_settings(path, kind)

    assert load_config_dict(config.model_dump(mode="json"), model=kind) == config
