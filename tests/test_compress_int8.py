"""INT8 for serving: SmoothQuant keeps the fp32 function, fused projections keep the
quantized one, LoRA adapters are rescaled with their layers and stay fp32, and
``serve --quantize int8`` runs the model ``compress --method int8-dynamic`` writes."""

from __future__ import annotations

from pathlib import Path

import torch

from lmforge.hub.smoothquant import fuse_projections, quantize_int8, smooth
from lmforge.serve.runner import SlotRunner

PROMPT = [5, 17, 99, 3, 42, 7, 250, 1000]
CALIBRATION = [[11, 12, 13, 14, 15, 16], [200, 300, 400, 500]]


def load(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([PROMPT])).logits[0]


def test_smoothing_and_fusing_leave_the_fp32_model_unchanged(tiny_causal_lm: Path) -> None:
    model = load(tiny_causal_lm)
    before = logits(model)
    smooth(model, CALIBRATION)
    torch.testing.assert_close(logits(model), before, atol=1e-4, rtol=1e-4)
    fuse_projections(model)
    assert hasattr(model.model.layers[0].self_attn, "qkv_proj")
    torch.testing.assert_close(logits(model), before, atol=1e-4, rtol=1e-4)
    runner = SlotRunner(model, slots=1, max_len=64)  # the runner's fused path, in fp32
    torch.testing.assert_close(runner.prefill(0, PROMPT), before[-1], atol=1e-5, rtol=1e-5)


def test_smoothing_rescales_lora_adapters_too(tiny_causal_lm: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)  # the adapter's random weights, whatever tests ran before
    model = get_peft_model(load(tiny_causal_lm), LoraConfig(r=4, target_modules="all-linear"))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    model.eval()
    before = logits(model)
    smooth(model, CALIBRATION)
    torch.testing.assert_close(logits(model), before, atol=1e-4, rtol=1e-4)


def test_the_runner_computes_what_the_quantized_model_computes(tiny_causal_lm: Path) -> None:
    reference = logits(load(tiny_causal_lm))
    model = quantize_int8(load(tiny_causal_lm), CALIBRATION)
    quantized = logits(model)
    runner = SlotRunner(model, slots=1, max_len=64)
    last = runner.prefill(0, PROMPT)  # fused q/k/v and gate/up inside the runner
    # Dynamic INT8 rounds each activation batch: last-bit differences between the two
    # attention code paths (exact in fp32, above) can flip a rounding, so not 1e-5 here.
    assert (last - quantized[-1]).abs().max() < 0.05
    assert last.argmax() == quantized[-1].argmax()
    # and INT8 stays close to fp32: the same top token at most positions
    agree = (quantized.argmax(-1) == reference.argmax(-1)).float().mean()
    assert agree >= 0.75, agree


def test_the_split_projections_run_the_quantized_fused_layer(tiny_causal_lm: Path) -> None:
    """transformers' own forward calls q_proj, k_proj...: after fusing and quantizing they
    must run the INT8 fused layer, not the fp32 one it replaced."""
    model = quantize_int8(load(tiny_causal_lm), CALIBRATION)
    attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    assert "quantized" in type(attention.qkv_proj).__module__
    x = torch.randn(1, 3, model.config.hidden_size)
    q = attention.q_proj(x)
    assert torch.equal(q, attention.qkv_proj(x)[..., : q.shape[-1]])
    up = mlp.up_proj(x)
    assert torch.equal(up, mlp.gate_up_proj(x)[..., -up.shape[-1] :])


def test_serve_quantize_int8_runs_the_model_compress_writes(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    """``serve --quantize int8`` and a ``compress --method int8-dynamic`` directory are one
    INT8 model: same calibration, same layers, so the same logits to the last bit (they
    once differed in the embedding and the weight scales, and answered differently)."""
    from lmforge.compress.config import CompressConfig
    from lmforge.compress.run import compress_model
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.serve.config import ServeConfig
    from lmforge.serve.server import build_handler

    out = tmp_path / "int8"
    config = CompressConfig(model=str(tiny_causal_lm), methods=["int8-dynamic"], measure=False)
    compress_model(config, out, track=False)
    compressed, _ = load_causal_lm(resolve(str(out)))
    config = ServeConfig(model=str(tiny_causal_lm), quantize="int8")
    served = build_handler(config).engine.runner.model
    assert type(served.model.embed_tokens).__name__ == "QuantizedEmbedding"
    assert torch.equal(logits(served), logits(compressed))
    runners = [SlotRunner(m, slots=1, max_len=64) for m in (served, compressed)]
    assert torch.equal(runners[0].prefill(0, PROMPT), runners[1].prefill(0, PROMPT))


def test_quantize_int8_keeps_lora_adapters_fp32(tiny_causal_lm: Path) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)  # the adapter's random weights, whatever tests ran before
    model = get_peft_model(load(tiny_causal_lm), LoraConfig(r=4, target_modules="all-linear"))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    model.eval()
    reference = logits(model)
    model = quantize_int8(model, CALIBRATION)
    attention = model.base_model.model.model.layers[0].self_attn
    assert "quantized" in type(attention.q_proj.base_layer).__module__
    assert attention.q_proj.lora_A["default"].weight.dtype == torch.float32
    quantized = logits(model)
    assert (quantized.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.75


def test_answer_agreement_counts_whole_answers_and_leading_tokens() -> None:
    from lmforge.compress.measure import answer_agreement

    reference = [["The", " capital", " is", " Paris", "<end>"], ["Yes", "<end>"]]
    assert answer_agreement(reference, reference) == (1.0, 1.0)
    # forks after 2 of 5 tokens; stops one token early (a prefix, still not the answer)
    exact, prefix = answer_agreement([["The", " capital", " was"], ["Yes"]], reference)
    assert exact == 0.0 and prefix == (2 / 5 + 1 / 2) / 2
    # running on past the reference's end is a difference too
    exact, prefix = answer_agreement([reference[0], ["Yes", "!", "<end>"]], reference)
    assert exact == 0.5 and prefix == (1 + 1 / 3) / 2


def test_int8_logits_do_not_depend_on_what_they_are_batched_with(tiny_causal_lm: Path) -> None:
    """A batch-invariant runner gives each row of an INT8 model the logits it gets alone,
    bit for bit, beside rows of other lengths (per-row activation scales, attention row
    by row); ``lmforge eval`` decodes with it."""
    model = quantize_int8(load(tiny_causal_lm), CALIBRATION)
    prompts = [PROMPT + [300 + n] * n for n in range(1, 6)]  # one prefix, five lengths
    together = SlotRunner(model, slots=len(prompts), max_len=64, batch_invariant=True)
    alone = [SlotRunner(model, slots=1, max_len=64) for _ in prompts]
    for slot, prompt in enumerate(prompts):
        assert torch.equal(together.prefill(slot, prompt), alone[slot].prefill(0, prompt))
    for token in (7, 8, 9):
        rows = together.decode([token] * len(prompts))
        for slot, runner in enumerate(alone):
            assert torch.equal(rows[slot], runner.decode([token])[0])


def test_a_batch_invariant_engine_computes_every_prompt_whole(tiny_causal_lm: Path) -> None:
    """Prompts that share a beginning reuse its cache in serving (prefix caching); under a
    batch-invariant runner they do not (a reused prefix was computed in another forward
    pass: other float bits)."""
    import functools
    import threading

    from transformers import AutoTokenizer

    from lmforge.serve.engine import Engine
    from lmforge.serve.requests import Event, Request, RequestParams

    model, tokenizer = load(tiny_causal_lm), AutoTokenizer.from_pretrained(tiny_causal_lm)
    prompts = [PROMPT * 4 + [300 + n] for n in range(3)]

    def cached_tokens(invariant: bool) -> list[int]:
        runner = functools.partial(SlotRunner, batch_invariant=invariant)
        engine = Engine(model, tokenizer, max_batch=3, kept_slots=0, runner_class=runner)
        cached, done = [], threading.Semaphore(0)

        def emit(event: Event) -> None:
            if event.finish_reason is not None:
                cached.append(event.cached_tokens)
                done.release()

        engine.start()
        try:
            for prompt in prompts:
                engine.submit(Request(prompt, RequestParams(max_tokens=2), emit))
            for _ in prompts:
                assert done.acquire(timeout=60)
        finally:
            engine.stop()
        return cached

    assert max(cached_tokens(invariant=False)) > 0
    assert max(cached_tokens(invariant=True)) == 0
