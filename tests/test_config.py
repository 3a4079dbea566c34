"""Run configs: loading, overrides, one error listing every problem, and `lmforge config`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli import config as config_cli
from lmforge.config import ConfigError, RunConfig, json_schema, load_config, load_config_dict
from lmforge.errors import LmforgeError

MINIMAL = """\
model:
  ref: smollm2-135m-instruct
task:
  name: sft
data:
  train: train.jsonl
"""


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, overrides: tuple[str, ...] = ()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


# --- valid configs -------------------------------------------------------------------


def test_minimal_config_validates_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))

    assert config.model.ref == "smollm2-135m-instruct"
    assert config.model.dtype == "auto"
    assert config.task.name == "sft"
    assert config.task.max_length == 512
    assert config.data.val_ratio == 0.0
    assert config.data.on_error == "fail"
    assert config.train.epochs == 1
    assert config.train.max_steps is None
    assert config.train.lr == 5e-5
    assert config.train.precision == "fp32"
    assert config.output.dir is None  # the run picks $LMFORGE_HOME/runs/<run-id>
    assert config.output.register_as is None


def test_relative_data_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    nested = tmp_path / "configs"
    nested.mkdir()
    config = load_config(write(nested, MINIMAL + "output:\n  dir: ../out\n"))

    assert config.data.train == nested / "train.jsonl"
    assert config.output.dir == tmp_path / "out"


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "train:\n  lr: 1e-4\n"))

    assert config.train.lr == pytest.approx(1e-4)


# --- overrides -----------------------------------------------------------------------


def test_overrides_are_parsed_as_typed_yaml_values(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        [
            "train.lr=1e-4",
            "train.max_steps=20",
            "data.fields.text=body",
            "data.fields.label=1",
            "data.packing=true",
            "train.max_grad_norm=null",
            "output.experiment=smoke",
        ],
    )

    assert config.train.lr == pytest.approx(1e-4)
    assert config.train.max_steps == 20
    assert config.data.fields == {"text": "body", "label": "1"}
    assert config.data.packing is True
    assert config.train.max_grad_norm is None
    assert config.output.experiment == "smoke"


def test_override_wins_over_file_and_relative_path_is_from_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  epochs: 3\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    config = load_config(path, ["train.epochs=1", "data.train=mine.jsonl"])

    assert config.train.epochs == 1
    assert config.data.train == workdir / "mine.jsonl"


def test_override_without_equals_is_an_error_naming_it(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, MINIMAL), ("train.lr",))

    assert "--set train.lr: expected KEY=VALUE" in str(error)


def test_override_into_a_value_is_an_error(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, MINIMAL), ("model.ref.name=x",))

    assert "--set model.ref.name=x: model.ref is the value 'smollm2-135m-instruct'" in str(error)


# --- one error with every problem ----------------------------------------------------


def test_unknown_key_suggests_the_nearest_valid_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + "train:\n  learning_rate: 1e-4\n  bacth_size: 4\ntrian: {}\n",
    )
    error = problems_of(path)

    lines = str(error).splitlines()
    assert any(
        line.strip().startswith("train.learning_rate: unknown key; did you mean 'lr'? (valid keys:")
        for line in lines
    )
    assert "train.bacth_size: unknown key; did you mean 'batch_size'?" in str(error)
    assert "trian: unknown key; did you mean 'train'?" in str(error)


def test_key_in_the_wrong_section_points_to_the_right_one(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, MINIMAL.replace("data:\n", "data:\n  max_length: 64\n")))

    assert "data.max_length: unknown key; did you mean 'task.max_length'?" in str(error)


def test_removed_option_trust_remote_code_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL.replace("model:\n", "model:\n  trust_remote_code: true\n")
    error = problems_of(write(tmp_path, text))

    assert "model.trust_remote_code: unknown key" in str(error)


def test_every_problem_is_reported_in_one_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        model:
          ref: smollm2-135m-instruct
          dtype: bfloat
        task:
          name: sfx
        data:
          train: train.jsonl
          val_ratio: 1.5
        train:
          lr: fast
          batch_size: 0
          learning_rate: 3
        """,
    )
    error = problems_of(path)
    message = str(error)

    assert message.startswith(f"{path}: 6 problems in the run config:\n")
    assert error.problems == [
        "model.dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16', "
        "got 'bfloat'; did you mean 'bfloat16'?",
        "task.name: unknown task 'sfx' (did you mean 'sft'?); "
        "choose one of sft, clm, dpo, grpo, mlm, classify, regress, distill, clip, diffusion, "
        "tabular, lightgbm, timeseries, timeseries-ridge, timeseries-lightgbm",
        "data.val_ratio: Input should be less than 1, got 1.5",
        "train.batch_size: Input should be greater than 0, got 0",
        "train.lr: Input should be a valid number, got 'fast'",
        error.problems[5],  # the unknown key, checked on its own below
    ]
    assert error.problems[5].startswith("train.learning_rate: unknown key; did you mean 'lr'?")
    assert message.rstrip().endswith("run `lmforge config schema` to see every field.")
    assert isinstance(error, LmforgeError)


def test_wrong_types_name_the_field_and_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  epochs: many\n  precision: 16\noutput: 7\n")
    error = problems_of(path)

    assert error.problems == [
        "train.epochs: Input should be a valid number, got 'many'",
        "train.precision: Input should be 'fp32', 'bf16' or 'fp16', got 16",
        "output: expected a mapping of keys, got 7",
    ]


def test_missing_required_keys_are_all_listed() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_dict({"model": {}, "task": {"name": "clm", "max_length": 0}}, source="inline")

    assert info.value.problems == [
        "task.max_length: Input should be greater than 0, got 0",
        "data: required key is missing",
    ]
    assert str(info.value).startswith("inline: 2 problems")
    # model.ref may be left out only by tasks that build their model from their settings
    with pytest.raises(ConfigError, match=r"model.ref: required for task 'clm' \(only "
                       r"'tabular', 'lightgbm', 'timeseries', 'timeseries-ridge' and "
                       r"'timeseries-lightgbm' build"):  # fmt: skip
        load_config_dict({"task": {"name": "clm"}, "data": {"train": "t.jsonl"}}, source="x")


@pytest.mark.parametrize(
    ("setting", "takers"),
    [("teacher", "a setting of task 'distill'"),
     ("temperature", "a setting of task 'grpo' and 'distill'"),
     ("mlm_probability", "a setting of task 'mlm'")],
)  # fmt: skip
def test_a_setting_of_another_task_is_refused_with_the_settings_this_task_takes(
    setting: str, takers: str
) -> None:
    """Issue 17: `teacher` or `temperature` on sft used to be accepted and ignored."""
    with pytest.raises(ConfigError) as info:
        load_config_dict({"model": {"ref": "smollm2-135m-instruct"},
                          "task": {"name": "sft", setting: 1},
                          "data": {"train": "train.jsonl"}})  # fmt: skip
    assert info.value.problems == [
        f"task.{setting}: task 'sft' does not take it ({takers}); its settings are name, "
        "max_length, train_on_prompt"
    ]


def test_a_task_setting_no_task_takes_gets_a_spelling_hint() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_dict({"model": {"ref": "smollm2-135m-instruct"},
                          "task": {"name": "sft", "max_lenght": 64},
                          "data": {"train": "train.jsonl"}})  # fmt: skip
    assert info.value.problems == [
        "task.max_lenght: task 'sft' does not take it (unknown key; did you mean "
        "'max_length'?); its settings are name, max_length, train_on_prompt"
    ]


def test_a_dumped_config_keeps_its_task_settings_and_loads_again() -> None:
    config = load_config_dict({"model": {"ref": "all-minilm-l6-v2"},
                               "task": {"name": "distill", "teacher": "t", "temperature": 3},
                               "data": {"train": "train.jsonl"}})  # fmt: skip
    dumped = config.model_dump(mode="json")
    assert dumped["task"]["teacher"] == "t" and dumped["task"]["temperature"] == 3
    assert load_config_dict(dumped) == config


def test_override_problems_and_file_problems_come_together(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  lr: fast\n")
    error = problems_of(path, ("train.epochs", "train.batch_size=-1"))

    assert error.problems == [
        "--set train.epochs: expected KEY=VALUE, e.g. --set train.lr=1e-4",
        "train.batch_size: Input should be greater than 0, got -1",
        "train.lr: Input should be a valid number, got 'fast'",
    ]


# --- cross-field checks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"data": {"validation": "val.jsonl", "val_ratio": 0.1}},
            "data.validation and data.val_ratio are both set",
        ),
        ({"eval": {"every": 10}}, "eval.every: set, but there is no validation data"),
        ({"data": {"format": "labeled"}}, "data.format: 'labeled' cannot feed task 'sft'"),
        ({"task": {"num_labels": 3}}, "task.num_labels: task 'sft' does not take it"),
        ({"train": {"momentum": 0.5}}, "train.momentum: only optimizer sgd uses it"),
        (
            {"model": {"dtype": "bfloat16"}, "train": {"precision": "fp16"}},
            "train.precision: 'fp16' conflicts with model.dtype 'bfloat16'",
        ),
    ],
)
def test_cross_field_conflicts_are_errors(
    extra: dict[str, dict[str, object]], expected: str
) -> None:
    data: dict[str, dict[str, object]] = {
        "model": {"ref": "smollm2-135m-instruct"},
        "task": {"name": "sft"},
        "data": {"train": "train.jsonl"},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)

    with pytest.raises(ConfigError) as info:
        load_config_dict(data)

    assert any(problem.startswith(expected) for problem in info.value.problems), info.value


def test_max_steps_and_epochs_may_both_be_set() -> None:
    config = load_config_dict(
        {
            "model": {"ref": "smollm2-135m-instruct"},
            "task": {"name": "clm"},
            "data": {"train": "t.jsonl", "val_ratio": 0.1, "packing": True},
            "train": {"epochs": 3, "max_steps": 10},
            "eval": {"every": 5},
        }
    )

    assert (config.train.epochs, config.train.max_steps) == (3, 10)


def test_load_config_dict_leaves_its_input_alone() -> None:
    data = {"model": {"ref": "x"}, "task": {"name": "mlm"}, "data": {"train": "t.jsonl"}}
    snapshot = json.dumps(data)

    load_config_dict(data, overrides=["train.lr=0.1"], base_dir="/base")

    assert json.dumps(data) == snapshot


# --- file problems -------------------------------------------------------------------


def test_bad_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  ref: x\n task: 3\n")
    error = problems_of(path)

    assert str(error).startswith(f"{path}: invalid YAML at line 3, column 2:")


def test_duplicate_key_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "model:\n  ref: other\n")
    error = problems_of(path)

    assert "line 7, column 1: duplicate key 'model' (first set at line 1)" in str(error)


def test_missing_file_is_named(tmp_path: Path) -> None:
    error = problems_of(tmp_path / "nope.yaml")

    assert str(error).startswith(f"{tmp_path / 'nope.yaml'}: no such file")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        ("- model\n- task\n", "the top level must be a mapping of sections, got a list"),
        ("just text\n", "the top level must be a mapping of sections, got a single value"),
    ],
)
def test_file_that_is_not_a_mapping_is_named(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)

    assert str(problems_of(path)).startswith(f"{path}: {expected}")


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    assert "is a directory" in str(problems_of(tmp_path))


# --- schema and imports --------------------------------------------------------------


def test_json_schema_lists_every_section_and_field() -> None:
    schema = json_schema()

    assert set(schema["properties"]) == {
        "model",
        "task",
        "data",
        "method",
        "train",
        "eval",
        "output",
        "privacy",
        "audit",
    }
    assert set(schema["required"]) == {"task", "data"}
    train = schema["$defs"]["TrainConfig"]
    assert train["properties"]["lr"]["default"] == 5e-5
    assert train["additionalProperties"] is False
    json.dumps(schema)  # plain JSON


def test_config_package_imports_neither_torch_nor_track() -> None:
    code = (
        "import sys, lmforge.config; "
        "bad = [m for m in ('torch', 'lmforge.track') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


# --- CLI -----------------------------------------------------------------------------

runner = CliRunner()


def test_cli_schema_prints_json() -> None:
    result = runner.invoke(config_cli.app, ["schema"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "RunConfig"


def test_cli_validate_prints_valid_and_a_summary(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)

    result = runner.invoke(config_cli.app, ["validate", str(path), "--set", "train.max_steps=7"])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: valid\n")
    assert "smollm2-135m-instruct" in result.stdout
    assert "at most 7 steps" in result.stdout


def test_cli_validate_json_prints_the_resolved_config(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)

    result = runner.invoke(
        config_cli.app, ["validate", str(path), "--json", "--set", "train.lr=1e-4"]
    )

    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    assert resolved["train"]["lr"] == pytest.approx(1e-4)
    assert resolved["data"]["train"] == str(tmp_path / "train.jsonl")
    assert RunConfig.model_validate(resolved) == load_config(path, ["train.lr=1e-4"])


def test_cli_validate_raises_the_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  learning_rate: 1\n")

    result = runner.invoke(config_cli.app, ["validate", str(path)])

    assert isinstance(result.exception, ConfigError)
    assert "did you mean 'lr'?" in str(result.exception)


def test_cli_help_has_a_worked_example() -> None:
    for command in ("schema", "validate"):
        result = runner.invoke(config_cli.app, [command, "--help"])
        assert result.exit_code == 0
        assert "Example: lmforge config " + command in result.stdout


def test_root_app_turns_a_bad_config_into_exit_code_2(tmp_path: Path) -> None:
    from lmforge.cli.main import app

    path = write(tmp_path, MINIMAL + "train:\n  lr: fast\n")

    result = runner.invoke(app, ["config", "validate", str(path)])

    assert result.exit_code == 2
    stderr = " ".join(result.stderr.split())  # rich wraps long lines at the terminal width
    assert stderr.startswith(f"error: {path}: train.lr: Input should be a valid number, got 'fast'")
    assert stderr.endswith("run `lmforge config schema` to see every field.")
    assert result.stdout == ""


def test_the_docs_task_table_is_the_registrys() -> None:
    """docs/training.md's task table is derived from the registry, not written again."""
    from lmforge.config.tasks import markdown_table

    docs = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    start = docs.index("<!-- tasks table: generated from the registry")
    table = docs[docs.index("\n", start) + 1 : docs.index("<!-- end tasks table -->")].strip()
    assert table == markdown_table(), "regenerate it: see lmforge.config.tasks.markdown_table"


def test_every_record_format_is_a_data_format_setting() -> None:
    from typing import get_args

    from lmforge.config.schema import DataConfig
    from lmforge.data.records import FORMATS

    settings = set(get_args(DataConfig.model_fields["format"].annotation))
    assert settings == {"auto", "tabular", "timeseries", *FORMATS}
