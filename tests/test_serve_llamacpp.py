"""The llamacpp backend's own checks: what it refuses before the server listens. (The
OpenAI API, sessions and guardrails run on it in test_serve*.py, once per backend.)"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lmforge.cli.main import app


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args, "--port", "1"])
    return result.exit_code, result.stderr


def test_a_corrupted_gguf_is_named_before_listening(tiny_gguf: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "broken.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:100_000])
    code, error = serve(str(truncated))
    assert code == 2
    assert "broken.gguf is not a readable GGUF file" in error
    assert "lmforge export REF --format gguf" in error


def test_options_the_llamacpp_backend_cannot_honour_are_refused(
    tiny_gguf: Path, tiny_causal_lm: Path
) -> None:
    code, error = serve(str(tiny_causal_lm), "--backend", "llamacpp")
    assert code == 2 and "backend (--backend): llamacpp serves .gguf files" in error
    code, error = serve(str(tiny_gguf), "--quantize", "int8")
    assert code == 2 and "llamacpp takes no adapters or quantize" in error
    code, error = serve(str(tiny_gguf), "--backend", "vllm")
    assert code == 2 and "choose one of auto, llamacpp, torch" in error
