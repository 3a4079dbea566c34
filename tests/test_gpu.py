"""On a CUDA device, generation gives the same greedy tokens as on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.hub import load_causal_lm, resolve
from lmforge.serve.generate import SamplingParams, TextGeneration

pytestmark = pytest.mark.gpu


def test_greedy_generation_on_cuda_matches_cpu(tiny_causal_lm: Path) -> None:
    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    prompt = tokenizer("The quick brown fox")["input_ids"]
    params = SamplingParams(max_tokens=16, temperature=0.0)
    on_cpu = TextGeneration(model, tokenizer, prompt, params).run()
    on_gpu = TextGeneration(model.to("cuda"), tokenizer, prompt, params).run()
    assert torch.cuda.is_available()
    assert on_gpu.text == on_cpu.text
    seeded = SamplingParams(max_tokens=16, temperature=1.0, seed=5)
    first = TextGeneration(model, tokenizer, prompt, seeded).run().text
    assert TextGeneration(model, tokenizer, prompt, seeded).run().text == first
