"""GGUF export, checked by llama.cpp itself (llama-cpp-python) and by transformers'
independent GGUF reader; failed exports leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.compress.to_gguf import export_gguf
from lmforge.errors import LmforgeError
from lmforge.hub import load_causal_lm, resolve
from tests.test_serve_adapters import make_adapter

pytestmark = pytest.mark.usefixtures("llama_cpp_runs")  # a crash fails, not kills, pytest

TEXT = "Hello there, my thermostat shows error E4 and the display keeps blinking."


def llama_logits(path: Path, ids: list[int]) -> torch.Tensor:
    import llama_cpp

    # An f32 KV cache (llama.cpp's default is f16): the check is on the file, and f16
    # keys shift the random adapters' large attention scores by a few hundredths.
    llama = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False,
                            type_k=0, type_v=0)  # fmt: skip
    llama.eval(ids)
    logits = torch.tensor(np.asarray(llama.scores[: len(ids)]))
    llama.close()
    return logits


def torch_logits(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0]


@pytest.fixture(scope="module")
def tiny(tiny_causal_lm: Path) -> tuple[Any, Any]:
    return load_causal_lm(resolve(str(tiny_causal_lm)))


def test_llama_cpp_computes_what_pytorch_computes(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    import llama_cpp

    model, tokenizer = tiny
    ids = tokenizer.encode(TEXT)
    expected = torch_logits(model, ids)
    path = export_gguf(model, tokenizer, tmp_path / "tiny-f32.gguf", "f32")
    llama = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
    # llama.cpp splits text into the same tokens (the pre-tokenizer was recognised)
    assert llama.tokenize(TEXT.encode(), add_bos=False, special=True) == ids
    assert llama.metadata["tokenizer.chat_template"] == tokenizer.chat_template
    # q/k rows were permuted for llama.cpp's rotary layout: the logits agree
    torch.testing.assert_close(llama_logits(path, ids), expected, atol=2e-3, rtol=1e-3)


def test_q4_0_m_gives_the_sensitive_tensors_q4_1_blocks(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    import gguf

    from lmforge.compress.to_gguf import _tensor_quant

    # on SmolLM2's 30 layers: attn_v, ffn_down and layers 0, 1 and 29 whole
    assert _tensor_quant("blk.5.ffn_down.weight", "q4_0_m", 30) == "q4_1"
    assert _tensor_quant("blk.5.attn_v.weight", "q4_0_m", 30) == "q4_1"
    assert _tensor_quant("blk.29.ffn_up.weight", "q4_0_m", 30) == "q4_1"
    assert _tensor_quant("blk.5.ffn_up.weight", "q4_0_m", 30) == "q4_0"
    assert _tensor_quant("token_embd.weight", "q4_0_m", 30) == "q4_0"
    assert _tensor_quant("blk.5.ffn_up.weight", "q8_0", 30) == "q8_0"
    model, tokenizer = tiny
    path = export_gguf(model, tokenizer, tmp_path / "tiny-q4_0_m.gguf", "q4_0_m")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}
    assert types["token_embd.weight"] == "Q4_0" and types["blk.0.attn_q.weight"] == "Q4_1"
    ids = tokenizer.encode(TEXT)
    assert llama_logits(path, ids).shape == torch_logits(model, ids).shape


def test_q8_0_keeps_the_predictions_and_q4_0_is_smaller(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tokenizer = tiny
    ids = tokenizer.encode(TEXT)
    expected = torch_logits(model, ids)
    q8 = export_gguf(model, tokenizer, tmp_path / "tiny-q8_0.gguf", "q8_0")
    q4 = export_gguf(model, tokenizer, tmp_path / "tiny-q4_0.gguf", "q4_0")
    f16 = export_gguf(model, tokenizer, tmp_path / "tiny-f16.gguf", "f16")
    logits = llama_logits(q8, ids)
    # the tiny random model's logits are all close together; q8_0 moves them by < 0.05
    assert (logits - expected).abs().max() < 0.05
    assert (logits.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.9
    assert q4.stat().st_size < q8.stat().st_size < f16.stat().st_size
    # transformers reads the same file back (its own GGUF reader, de-quantized)
    from transformers import AutoModelForCausalLM

    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=q8.name).eval()
    assert (torch_logits(back, ids) - expected).abs().max() < 0.05


def test_a_lora_adapter_is_merged_before_export(tiny_causal_lm: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tiny_causal_lm, tmp_path / "adapter", seed=3)
    out = tmp_path / "merged.gguf"
    result = CliRunner().invoke(
        app, ["export", str(adapter), "--format", "gguf", "--quant", "f32", "--out", str(out),
              "--no-measure"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    model, tokenizer = load_causal_lm(resolve(str(adapter)))
    ids = tokenizer.encode(TEXT)
    with_adapter = torch_logits(model, ids)
    base = torch_logits(load_causal_lm(resolve(str(tiny_causal_lm)))[0], ids)
    assert (with_adapter - base).abs().max() > 0.1  # the adapter matters
    torch.testing.assert_close(llama_logits(out, ids), with_adapter, atol=2e-3, rtol=1e-3)


def test_export_table_run_and_report(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from lmforge.track.mlflow_store import get_client

    out, report = tmp_path / "tiny.gguf", tmp_path / "report.md"
    result = CliRunner().invoke(
        app, ["export", str(tiny_causal_lm), "--format", "gguf", "--quant", "q4_0",
              "--out", str(out), "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = report.read_text().splitlines()
    assert "held-out perplexity" in lines[0] and len(lines) == 4  # header, rule, 2 rows
    exported = lines[3].split("|")[1:-1]
    assert "gguf q4_0" in exported[0] and exported[3].strip().startswith("-")  # smaller
    run_id = result.stdout.split("MLflow run ")[1].split()[0]
    run = get_client().get_run(run_id)
    assert run.data.tags["lmforge.source_model"] == str(tiny_causal_lm)
    assert run.data.params["quant"] == "q4_0"
    assert run.data.metrics["export/size_bytes"] < run.data.metrics["source/size_bytes"]
    assert run.data.metrics["export/perplexity"] > 1


def test_unsupported_architecture_is_refused_with_the_supported_list(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, Qwen2Config

    _, tokenizer = tiny
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1)  # fmt: skip
    qwen = AutoModelForCausalLM.from_config(config)
    refused = r"supports the architectures llama; this model is 'qwen2'"
    with pytest.raises(LmforgeError, match=refused):
        export_gguf(qwen, tokenizer, tmp_path / "qwen.gguf")
    assert not list(tmp_path.iterdir())


def test_a_failed_export_leaves_the_previous_file_alone(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    target = tmp_path / "model.gguf"
    target.write_bytes(b"the previous export")
    model.model.extra = torch.nn.Linear(4, 4)  # a tensor llama.cpp has no name for
    with pytest.raises(LmforgeError, match=r"model\.extra\.weight"):
        export_gguf(model, tokenizer, target, "q8_0")
    assert target.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]  # no temporary left


def test_export_refuses_an_encoder_and_a_quant_outside_gguf(
    tiny_encoder: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    encoder = runner.invoke(app, ["export", str(tiny_encoder), "--format", "gguf",
                                  "--out", str(tmp_path / "e.gguf")])  # fmt: skip
    assert encoder.exit_code != 0 and "causal language models" in encoder.stderr
    hf = runner.invoke(app, ["export", str(tiny_causal_lm), "--format", "hf", "--quant", "q4_0",
                             "--out", str(tmp_path / "hf")])  # fmt: skip
    assert hf.exit_code != 0 and "quant (--quant): applies to format gguf" in hf.stderr


def test_hf_export_merges_an_adapter_into_a_plain_model(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    adapter = make_adapter(tiny_causal_lm, tmp_path / "adapter", seed=4)
    out = tmp_path / "merged"
    result = CliRunner().invoke(
        app, ["export", str(adapter), "--format", "hf", "--out", str(out), "--no-measure"]
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    assert not (out / "adapter_config.json").exists()
    ids = load_causal_lm(resolve(str(adapter)))[1].encode(TEXT)
    merged = torch_logits(load_causal_lm(resolve(str(out)))[0], ids)
    expected = torch_logits(load_causal_lm(resolve(str(adapter)))[0], ids)
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)
