"""Compress settings as one object: the method registry, ``CompressConfig`` from YAML,
flags and ``--set``, errors naming the setting (and the flag on the command line), the
schema, and the pipeline step taking the same keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.compress.config import CompressConfig
from lmforge.compress.methods import CompressMethod, markdown_table, method_names, register_method
from lmforge.config.load import ConfigError, load_settings
from lmforge.data.bundled import dataset_path
from lmforge.errors import LmforgeError

DOCS = Path(__file__).parent.parent / "docs" / "compress.md"
SENTIMENT = dataset_path("sentiment", "train")


def test_the_docs_methods_table_is_the_registry() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    start = docs.index("<!-- methods table: generated from the registry")
    table = docs[docs.index("\n", start) + 1 : docs.index("<!-- end methods table -->")]
    assert table == markdown_table(), "regenerate it: lmforge.compress.methods.markdown_table"
    assert method_names()[:2] == ("distill", "prune-vocab")


def test_a_config_file_loads_with_flags_and_overrides_on_top(tmp_path: Path) -> None:
    file = tmp_path / "compress.yaml"
    file.write_text("model: smollm2-135m-instruct\nmethods: [prune-vocab, int8]\n"
                    "data: corpus.jsonl\nstudent_layers: 2\n")  # fmt: skip
    config = load_settings(file, CompressConfig, ["epochs=2"], given={"student_layers": 4})
    assert config.methods == ["prune-vocab", "int8"]
    assert config.data == tmp_path / "corpus.jsonl"  # relative to the file
    assert (config.student_layers, config.epochs) == (4, 2.0)
    bundled = load_settings(None, CompressConfig, ["data=bundled:sentiment/train", "model=m"])
    assert bundled.data == SENTIMENT


def test_every_problem_names_its_setting(tmp_path: Path) -> None:
    file = tmp_path / "compress.yaml"
    file.write_text("model: m\nmethods: [int8, int-4]\nstudent_layer: 2\nepochs: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(file, CompressConfig)
    text = str(caught.value)
    assert "3 problems in the compress config" in text
    assert "methods[1]: unknown method 'int-4'" in text and "did you mean 'int4'" in text
    assert "student_layer: unknown key; did you mean 'student_layers'?" in text
    assert "epochs: Input should be greater than 0" in text
    assert "lmforge config schema --kind compress" in text
    with pytest.raises(ConfigError, match=r"methods\[0\]: one quantization"):
        load_settings(None, CompressConfig, ["model=m", "methods=[int8, distill]"])
    config = CompressConfig(model="m", methods=["distill"], eval_data=tmp_path / "no.jsonl")
    assert config.needs() == [
        "methods[0]: distill needs data: labeled text (classifier), text or dialogs (causal "
        "LM) the student learns from",
        f"eval_data: no such file: {tmp_path / 'no.jsonl'}; give an existing .jsonl/.csv/.json "
        "file",
    ]


def test_the_command_line_names_the_flag_beside_the_setting(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compress", "m", "--method", "int8,int-4", "--out",
                                 str(tmp_path / "x")])  # fmt: skip
    assert result.exit_code == 2
    assert "methods[1] (--method): unknown method 'int-4'" in result.stderr
    result = runner.invoke(app, ["compress", "m", "--method", "distill", "--out",
                                 str(tmp_path / "x")])  # fmt: skip
    assert result.exit_code == 2
    assert "methods[0] (--method): distill needs data" in result.stderr
    assert not (tmp_path / "x").exists()


def test_config_schema_and_validate_know_the_compress_kind(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["config", "schema", "--kind", "compress"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"model", "methods", "data", "student_layers", "measure"} <= set(schema["properties"])
    assert "distill, prune-vocab, int8-dynamic" in schema["properties"]["methods"]["description"]
    file = tmp_path / "c.yaml"
    file.write_text("model: m\nmethods: [int8]\n")
    result = runner.invoke(app, ["config", "validate", str(file), "--kind", "compress"])
    assert result.exit_code == 0 and "valid" in result.stdout
    result = runner.invoke(app, ["config", "schema", "--kind", "serving"])
    assert result.exit_code == 2 and "--kind: unknown config kind 'serving'" in result.stderr
    example = Path(__file__).parent.parent / "examples" / "compress" / "sentiment_int8.yaml"
    config = load_settings(example, CompressConfig)
    assert config.methods == ["distill", "prune-vocab", "int8-dynamic"]
    assert config.data == SENTIMENT


def test_a_registered_method_runs_in_a_chain(
    home: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    from lmforge.compress.run import compress_model

    seen = []

    def copy_through(step: object) -> Path:
        import shutil

        seen.append(step)
        shutil.copytree(step.source, step.out)  # type: ignore[attr-defined]
        return step.out  # type: ignore[attr-defined, no-any-return]

    register_method(CompressMethod("copy", "copies the model", copy_through))
    try:
        config = CompressConfig(model=str(tiny_encoder), methods=["copy", "int8"], measure=False)
        result = compress_model(config, tmp_path / "out", track=False)
    finally:
        from lmforge.compress import methods

        methods._METHODS.pop("copy")
    assert len(seen) == 1 and seen[0].config is config
    meta = json.loads((result.path / "lmforge_compress.json").read_text())
    assert meta["methods"] == ["copy", "int8"] and meta["scheme"] == "int8"


def test_a_pipeline_compress_step_takes_the_compress_config_keys(tmp_path: Path) -> None:
    from lmforge.pipeline.load import load_pipeline

    file = tmp_path / "p.yaml"
    file.write_text(
        "name: p\nsteps:\n  - name: small\n    type: compress\n    with:\n"
        "      model: all-minilm-l6-v2\n      methods: [int8, int-4]\n      student_layers: 2\n"
        "      teacher: x\n"
    )
    with pytest.raises(LmforgeError) as caught:
        load_pipeline(file)
    text = str(caught.value)
    assert "with.methods: methods[1]: unknown method 'int-4'" in text
    assert "with.teacher" in text


def test_the_command_reports_each_method_as_plain_lines_off_a_terminal(
    home: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["compress", str(tiny_encoder), "--method", "int8",
                                      "--out", str(tmp_path / "small")])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("compress ")]
    assert lines == [
        f"compress {tiny_encoder}: 0/2 (0%)  int8",
        f"compress {tiny_encoder}: 1/2 (50%)  measuring",
        f"compress {tiny_encoder}: 2/2 (100%)  done",
    ]
