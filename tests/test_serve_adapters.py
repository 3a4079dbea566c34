"""Several LoRA adapters over one base, served together and batched together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.serve.runner import SlotRunner
from tests.servers import lmforge_server


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                        task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: make the adapter change the outputs
            torch.nn.init.normal_(parameter, std=2.0)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "alpha": make_adapter(tiny_causal_lm, root / "alpha", seed=1),
        "beta": make_adapter(tiny_causal_lm, root / "beta", seed=2),
    }


def test_mixed_adapter_batch_matches_each_adapter_alone(
    tiny_causal_lm: Path, adapters: dict[str, Path]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    model = PeftModel.from_pretrained(base, adapters["alpha"], adapter_name="alpha")
    model.load_adapter(adapters["beta"], adapter_name="beta")
    model.eval()
    prompt = [5, 17, 99, 3, 42]
    expected = {}
    for name in ("alpha", "beta", None):
        with torch.no_grad():
            if name is None:
                with model.disable_adapter():
                    expected[name] = model(torch.tensor([[*prompt, 7]])).logits[0, -1]
            else:
                model.set_adapter(name)
                expected[name] = model(torch.tensor([[*prompt, 7]])).logits[0, -1]
    assert not torch.allclose(expected["alpha"], expected["beta"], atol=1e-3)

    runner = SlotRunner(model, slots=3, max_len=32)
    names = ["alpha", None, "beta"]
    for slot, name in enumerate(names):
        runner.prefill(slot, prompt, name)
    logits = runner.decode([7, 7, 7], names)  # one batch, three different adapters
    for row, name in enumerate(names):
        torch.testing.assert_close(logits[row], expected[name], atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def server(tiny_causal_lm: Path, adapters: dict[str, Path]) -> Iterator[str]:
    with lmforge_server(
        str(tiny_causal_lm), "--served-name", "base", "--max-batch", "8",
        "--adapter", f"alpha={adapters['alpha']}", "--adapter", f"beta={adapters['beta']}",
    ) as base:  # fmt: skip
        yield base


def test_models_lists_the_adapters_with_their_parent(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="unused")
    listed = {m.id: m.model_extra.get("parent") for m in client.models.list().data}
    assert listed == {"base": None, "alpha": "base", "beta": "base"}


async def _ask_all(server: str, names: list[str]) -> list[str]:
    client = openai.AsyncOpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)

    async def one(name: str) -> str:
        response = await client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hello"}],
            max_tokens=10, temperature=0,
        )  # fmt: skip
        return str(response.choices[0].message.content)

    try:
        return await asyncio.gather(*(one(name) for name in names))
    finally:
        await client.close()


def test_each_adapter_answers_as_itself_when_batched_together(server: str) -> None:
    alone = {name: asyncio.run(_ask_all(server, [name]))[0] for name in ("base", "alpha", "beta")}
    assert len(set(alone.values())) == 3  # the adapters change the answer
    names = ["alpha", "base", "beta"] * 3
    together = asyncio.run(_ask_all(server, names))
    assert together == [alone[name] for name in names]


def test_an_adapter_served_as_the_model_answers_as_the_adapter(
    server: str, adapters: dict[str, Path]
) -> None:
    """``lmforge serve ADAPTER_DIR`` (a LoRA run) serves the adapter, not its base."""
    expected = asyncio.run(_ask_all(server, ["alpha", "base"]))
    with lmforge_server(str(adapters["alpha"]), "--served-name", "alpha") as alone:
        assert asyncio.run(_ask_all(alone, ["alpha"])) == expected[:1] != expected[1:]


def test_an_adapter_of_another_base_is_refused_before_serving(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    from lmforge.hub import build_tiny_causal_lm

    other = build_tiny_causal_lm(tmp_path / "other", seed=3)
    foreign = make_adapter(other, tmp_path / "foreign", seed=4)
    result = CliRunner().invoke(
        app, ["serve", str(tiny_causal_lm), "--adapter", f"x={foreign}", "--port", "1"]
    )
    assert result.exit_code == 2
    assert "adapters.x (--adapter):" in result.stderr and "not on the served base" in result.stderr
    result = CliRunner().invoke(app, ["serve", str(tiny_causal_lm), "--adapter", "novalue"])
    assert result.exit_code == 2 and "expected NAME=REF" in result.stderr
