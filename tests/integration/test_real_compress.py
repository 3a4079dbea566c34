"""Compression and export on the real embedded models: SmolLM2 as GGUF through llama.cpp
and MiniLM quantized by ``lmforge compress``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("llama_cpp_runs")]
SMOLLM2 = "smollm2-135m-instruct"
FIRST_TOKENS = 20
QUESTIONS = 12


def test_q8_0_gguf_predicts_the_pytorch_greedy_tokens(tmp_path: Path) -> None:
    from lmforge.compress.export import export_model
    from lmforge.data.bundled import dataset_path
    from lmforge.data.chat import render_chat
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.hub.load import import_llama_cpp

    out = tmp_path / "smollm2.q8_0.gguf"
    export_model(SMOLLM2, "gguf", out, quant="q8_0", measure=False, track=False)
    model, tokenizer = load_causal_lm(resolve(SMOLLM2))
    questions = dataset_path("customer_service", "test_questions").read_text().splitlines()
    llama = import_llama_cpp().Llama(model_path=str(out), n_ctx=512, logits_all=True,
                                     verbose=False)  # fmt: skip
    agree = total = 0
    for line in questions[:QUESTIONS]:
        ids = render_chat(tokenizer, [{"role": "user", "content": json.loads(line)["question"]}])
        with torch.no_grad():
            expected = model.generate(torch.tensor([ids]), max_new_tokens=FIRST_TOKENS,
                                      do_sample=False)[0, len(ids):].tolist()  # fmt: skip
        # Teacher-forced: llama.cpp reads PyTorch's greedy answer and predicts each token.
        llama.reset()
        llama.eval(ids + expected[:-1])
        scores = np.asarray(llama.scores[len(ids) - 1 : len(ids) + len(expected) - 1])
        agree += int((scores.argmax(axis=-1) == np.asarray(expected)).sum())
        total += len(expected)
    llama.close()
    # q8_0 rounds every weight (held-out perplexity +0.9%), so where two tokens are nearly
    # tied it may pick the other: "What is the capital of France?" starts "The" at 25.33
    # against "L" at 25.24 in PyTorch, and q8_0 flips them. Greedy continuations fork
    # there and never meet again, so the test compares token by token instead. Measured:
    # 234 of 240 (0.975), with PyTorch on one thread or two (the f32 export continues
    # every one of these prompts exactly as PyTorch does).
    assert agree / total >= 0.93, (agree, total)


def test_minilm_int8_dynamic_keeps_its_embeddings(tmp_path: Path) -> None:
    from lmforge.compress.config import CompressConfig
    from lmforge.compress.run import compress_model
    from lmforge.retrieve import SentenceEmbedder

    config = CompressConfig(model="all-minilm-l6-v2", methods=["int8-dynamic"])
    result = compress_model(config, tmp_path / "minilm-int8", track=False)
    size_change = float(result.rows[1]["size vs fp32"].rstrip("%"))
    cosine = float(result.rows[1]["cosine to fp32"])
    assert size_change < -70 and cosine > 0.98, result.rows  # measured: -74%, see docs
    texts = ["How do I return a thermostat?", "Refund policy for damaged items"]
    fp32 = SentenceEmbedder("all-minilm-l6-v2").encode(texts)
    int8 = SentenceEmbedder(str(tmp_path / "minilm-int8")).encode(texts)
    similarity = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert similarity.min() > 0.98
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)  # pooling files kept
