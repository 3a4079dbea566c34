"""Third-party training tasks: a package adds one through the ``lmforge.tasks`` entry point
group; ``lmforge train`` trains it from a YAML file and ``lmforge config schema`` lists its
settings. The plugin is a real distribution on ``sys.path`` (a ``.dist-info`` folder with
``entry_points.txt``), found by ``importlib.metadata`` exactly as an installed one is."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.config import tasks
from tests.datafiles import install_distribution, text_rows, write_jsonl

runner = CliRunner()

PLUGIN = '''
from typing import Literal

from pydantic import Field

from lmforge.config.tasks import TaskSettings
from lmforge.tasks.clm import ClmTask


class ShoutSettings(TaskSettings):
    """Causal LM on upper-cased text."""

    formats = ("text",)
    packable = True
    name: Literal["shout"]
    exclamations: int = Field(default=1, ge=0, description="'!' appended to each document.")


class ShoutTask(ClmTask):
    name = "shout"
    settings = ShoutSettings
    formats = ShoutSettings.formats
    seen: list = []  # the documents encode saw, for the test

    def configured(self, config):
        self.exclamations = config.task.exclamations
        return self

    def encode(self, records, tokenizer, options):
        loud = [{**r, "text": r["text"].upper() + "!" * self.exclamations} for r in records]
        ShoutTask.seen.extend(record["text"] for record in loud)
        return super().encode(loud, tokenizer, options)
'''


@pytest.fixture
def shout_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The distribution ``lmforge-shout`` with the entry point ``shout``, on sys.path for
    this test only (the registry is restored afterwards)."""
    site = install_distribution(
        tmp_path / "site",
        "lmforge_shout",
        PLUGIN,
        "[lmforge.tasks]\nshout = lmforge_shout:ShoutTask\n",
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    monkeypatch.setattr(tasks, "_plugins_loaded", False)
    yield
    sys.modules.pop("lmforge_shout", None)


def test_a_plugin_task_trains_from_a_yaml_file(
    shout_plugin: None, tiny_causal_lm: Path, tmp_path: Path, home: Path
) -> None:
    data = write_jsonl(tmp_path / "text.jsonl", text_rows(8))
    config = tmp_path / "shout.yaml"
    config.write_text(
        f"model: {{ref: {tiny_causal_lm}}}\n"
        "task: {name: shout, max_length: 32, exclamations: 2}\n"
        f"data: {{train: {data}}}\n"
        "train: {max_steps: 2, batch_size: 2}\n"
        f"output: {{dir: {tmp_path / 'run'}}}\n"
    )
    result = runner.invoke(app, ["train", str(config), "--no-track"])
    assert result.exit_code == 0, result.output
    import lmforge_shout  # type: ignore[import-not-found]

    assert lmforge_shout.ShoutTask.seen and all(
        text.endswith("!!") and text == text.upper() for text in lmforge_shout.ShoutTask.seen
    )
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2


def test_config_schema_lists_a_plugin_tasks_settings(shout_plugin: None) -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    shout = schema["$defs"]["ShoutSettings"]
    assert shout["properties"]["exclamations"]["description"] == "'!' appended to each document."
    names = schema["properties"]["task"]["discriminator"]["mapping"]
    assert {"sft", "distill", "shout"} <= set(names)


def test_a_plugin_setting_on_another_task_names_the_plugin(shout_plugin: None) -> None:
    from lmforge.config import ConfigError, load_config_dict

    with pytest.raises(ConfigError) as info:
        load_config_dict({"model": {"ref": "m"}, "task": {"name": "clm", "exclamations": 3},
                          "data": {"train": "t.jsonl"}})  # fmt: skip
    assert info.value.problems == [
        "task.exclamations: task 'clm' does not take it (a setting of task 'shout'); its "
        "settings are name, max_length"
    ]


def test_a_plugin_that_does_not_load_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmforge.errors import LmforgeError

    site = tmp_path / "site"
    info = site / "lmforge_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lmforge-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lmforge.tasks]\nbroken = lmforge_missing:Task\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    monkeypatch.setattr(tasks, "_plugins_loaded", False)
    with pytest.raises(LmforgeError, match=r"entry point broken = lmforge_missing:Task of "
                       r"lmforge-broken does not load \(ModuleNotFoundError"):  # fmt: skip
        tasks.task_entry("broken")
