"""Serve settings as one object: ``ServeConfig`` from ``--config``, flags and ``--set``,
errors naming the setting and its flag, the schema, and the command line derived from it
(the deploy step writes both)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lmforge.cli import serve as serve_cli
from lmforge.cli.main import app
from lmforge.config.load import ConfigError, load_settings
from lmforge.serve.config import ServeConfig

EXAMPLE = Path(__file__).parent.parent / "examples" / "serve" / "brightnest.yaml"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[ServeConfig]:
    """The configs `lmforge serve` would run (no model is loaded, nothing listens)."""
    configs: list[ServeConfig] = []
    monkeypatch.setattr(serve_cli, "run_server", configs.append)
    return configs


def test_the_file_then_the_flags_then_set(served: list[ServeConfig], tmp_path: Path) -> None:
    file = tmp_path / "serve.yaml"
    file.write_text("model: smollm2-135m-instruct\nmax_batch: 4\nport: 9000\nkb: docs\n"
                    "adapters: {support: runs/abc/model}\n")  # fmt: skip
    result = CliRunner().invoke(
        app,
        [
            "serve",
            "--config",
            str(file),
            "--port",
            "9100",
            "--set",
            "kb_top_k=5",
            "--negative-labels",
            "neg, bad",
        ],
    )
    assert result.exit_code == 0, result.output
    [config] = served
    assert (config.model, config.max_batch, config.port, config.kb_top_k) == (
        "smollm2-135m-instruct", 4, 9100, 5)  # fmt: skip
    assert config.adapters == {"support": "runs/abc/model"}
    assert config.negative_labels == ["neg", "bad"] and config.name == "smollm2-135m-instruct"


def test_problems_name_the_setting_and_the_flag(served: list[ServeConfig]) -> None:
    result = CliRunner().invoke(app, ["serve", "m", "--max-batch", "0", "--quantize", "int4",
                                      "--set", "kb_topk=2"])  # fmt: skip
    assert result.exit_code == 2 and not served
    assert "3 problems in the serve config" in result.stderr
    assert "max_batch (--max-batch): Input should be greater than or equal to 1" in result.stderr
    assert "quantize (--quantize): Input should be 'none' or 'int8'" in result.stderr
    assert "kb_topk: unknown key; did you mean 'kb_top_k'?" in result.stderr
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "model (REF): required key is missing" in result.stderr


def test_the_command_line_is_derived_and_reads_back_the_same_config(
    served: list[ServeConfig],
) -> None:
    config = ServeConfig(model="m", served_name="bot", adapters={"a": "runs/x", "b": "runs/y"},
                         kb_hybrid=True, access_log=False, negative_labels=["neg", "bad"],
                         max_batch=8, max_model_len=512, guard="default")  # fmt: skip
    command = config.command_line()
    assert command[:7] == ["lmforge", "serve", "m", "--host", "127.0.0.1", "--port", "8000"]
    assert command[7:] == [
        "--served-name", "bot", "--adapter", "a=runs/x", "--adapter", "b=runs/y",
        "--guard", "default", "--kb-hybrid", "--negative-labels", "neg,bad",
        "--max-batch", "8", "--max-model-len", "512", "--no-access-log",
    ]  # fmt: skip
    result = CliRunner().invoke(app, command[1:])
    assert result.exit_code == 0, result.output
    assert served == [config]


def test_the_schema_and_the_example(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "schema", "--kind", "serve"])
    assert result.exit_code == 0, result.output
    properties = json.loads(result.stdout)["properties"]
    assert {"model", "adapters", "guard", "kb", "quantize", "max_batch"} <= set(properties)
    config = load_settings(EXAMPLE, ServeConfig)
    assert config.name == "brightnest" and config.kb == "brightnest"
    with pytest.raises(ConfigError, match="a serve config needs at least model"):
        empty = tmp_path / "empty.yaml"
        empty.write_text("")
        load_settings(empty, ServeConfig)


def test_a_registered_backend_is_chosen_by_name_and_described(tmp_path: Path) -> None:
    """The serving-backend registry is the one list: the backend setting's description,
    the unknown-name error and `auto` all read it; a registered backend builds the engine."""
    from types import SimpleNamespace

    from lmforge.errors import LmforgeError
    from lmforge.serve import backends

    built: list[tuple[Any, dict[str, Any], Any]] = []
    echo = backends.ServingBackend(
        "echo", "answers with the prompt", kinds=("causal-lm",), adapters=False,
        engine=lambda base, adapters, config: built.append((base, adapters, config)) or "engine",
        options_hint="serve the fp32 model",
    )  # fmt: skip
    base = SimpleNamespace(kind="causal-lm", ref="tiny", path=tmp_path)
    gguf = SimpleNamespace(kind="gguf", ref="tiny.gguf", path=tmp_path / "tiny.gguf")
    backends.register_backend(echo)
    try:
        assert "echo: answers with the prompt" in backends.backend_help()
        assert backends.pick_backend(base, "echo", adapters=False, quantize="none") is echo
        assert echo.load(base, {}, "config") == "engine" and built == [(base, {}, "config")]
        with pytest.raises(LmforgeError, match="backend: echo takes no adapters: serve the"):
            backends.pick_backend(base, "echo", adapters=True, quantize="none")
        wrong_kind = "backend: echo serves causal language models; 'tiny.gguf' is a gguf model"
        with pytest.raises(LmforgeError, match=wrong_kind):
            backends.pick_backend(gguf, "echo", adapters=False, quantize="none")
        unknown = r"'ecko' \(did you mean 'echo'\?\); choose one of auto, echo, llamacpp"
        with pytest.raises(LmforgeError, match=unknown):
            backends.pick_backend(base, "ecko", adapters=False, quantize="none")
        auto = backends.pick_backend(base, "auto", adapters=False, quantize="none")
        assert auto.name == "torch"  # the first registered fit, not the newest
    finally:
        backends._BACKENDS.pop("echo")


def test_the_docs_backends_table_is_the_registry() -> None:
    from lmforge.serve.backends import markdown_table

    docs = (Path(__file__).parent.parent / "docs" / "serving.md").read_text(encoding="utf-8")
    start = docs.index("<!-- backends table: generated from the registry")
    table = docs[docs.index("\n", start) + 1 : docs.index("<!-- end backends table -->")]
    assert table == markdown_table(), "regenerate it: lmforge.serve.backends.markdown_table"


def test_the_system_fingerprint_follows_weights_backend_and_quantisation(tmp_path: Path) -> None:
    import os
    from types import SimpleNamespace

    from lmforge.serve.server import system_fingerprint

    (tmp_path / "model").mkdir()
    base = SimpleNamespace(path=tmp_path / "model")
    first = system_fingerprint(base, {}, "torch", "none")
    assert first == system_fingerprint(base, {}, "torch", "none")
    assert first != system_fingerprint(base, {}, "llamacpp", "none")
    assert first != system_fingerprint(base, {}, "torch", "int8")
    adapter = SimpleNamespace(path=tmp_path / "model")
    assert first != system_fingerprint(base, {"support": adapter}, "torch", "none")
    os.utime(base.path, ns=(1, 1))  # the weights were written again
    assert first != system_fingerprint(base, {}, "torch", "none")
