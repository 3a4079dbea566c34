"""Structured outputs: validity and the cost of constrained decoding, and the two grammar
engines side by side (run through ``python benchmarks/bench_serve.py --structured``).

1. Validity: 10 JSON Schemas of the support domain (below), 20 answers each, sampled at
   temperature 1.0 from `lmforge serve smollm2-135m-instruct` with max_tokens 384: with
   `response_format: json_schema` (constrained) and without it (the schema written into
   the prompt, as one asks a model without structured outputs). Each answer is parsed and
   checked with `jsonschema`.
2. Cost: the same requests, constrained, at concurrency 1 and 16, against unconstrained
   decoding of outputs of the same lengths: each request again without a schema, with
   max_tokens set to its constrained answer's token count and vLLM's `ignore_eos`, so
   both runs generate the same number of tokens per request in the same batches.
   Output tokens per second, constrained / unconstrained.
3. Grammar engines: for each schema, compile time and the time to compute one token
   mask along the constrained answers' own token sequences, for llguidance (what
   lmforge uses) and xgrammar (when importable: `pip install --no-deps --target DIR
   xgrammar apache-tvm-ffi`, then `--xgrammar DIR`; its wheel's dependencies pull in
   triton, which this bench does not need).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from common import append_result

MODEL = "smollm2-135m-instruct"
SAMPLES = 20  # answers per schema
MAX_TOKENS = 384

_ITEM = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
    "required": ["sku", "quantity"],
}
SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "ticket": ("My Aura thermostat stopped heating last night and I want it fixed.", {
        "type": "object", "properties": {
            "product": {"type": "string"}, "problem": {"type": "string"},
            "urgency": {"enum": ["low", "medium", "high"]}},
        "required": ["product", "problem", "urgency"], "additionalProperties": False}),
    "order_lookup": ("Where is my order BN-1042? I ordered two smart plugs.", {
        "type": "object", "properties": {
            "order_id": {"type": "string", "pattern": "^BN-[0-9]{4}$"},
            "items": {"type": "array", "items": _ITEM, "maxItems": 5}},
        "required": ["order_id", "items"]}),
    "return_request": ("I want to return the doorbell I bought 10 days ago, it is noisy.", {
        "type": "object", "properties": {
            "product": {"type": "string"}, "days_since_purchase": {"type": "integer",
                                                                   "minimum": 0},
            "reason": {"type": "string"}, "eligible": {"type": "boolean"}},
        "required": ["product", "days_since_purchase", "reason", "eligible"]}),
    "sentiment": ("This is the third time the camera went offline. Very disappointed.", {
        "type": "object", "properties": {
            "sentiment": {"enum": ["positive", "neutral", "negative"]},
            "score": {"type": "number", "minimum": -1, "maximum": 1}},
        "required": ["sentiment", "score"], "additionalProperties": False}),
    "address": ("Ship it to Ana Lima, 12 Pine Street, Reno, NV 89501.", {
        "type": "object", "properties": {
            "name": {"type": "string"}, "street": {"type": "string"},
            "city": {"type": "string"}, "state": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
        "required": ["name", "street", "city", "state", "zip"]}),
    "escalation": ("I have called four times and nobody helps. I want a manager now!", {
        "type": "object", "properties": {
            "escalate": {"type": "boolean"},
            "department": {"enum": ["billing", "technical", "shipping", "management"]},
            "summary": {"type": "string", "maxLength": 200}},
        "required": ["escalate", "department", "summary"]}),
    "faq_answer": ("Do your smart locks work without Wi-Fi?", {
        "type": "object", "properties": {
            "answer": {"type": "string"},
            "sources": {"type": "array", "items": {"enum": ["faq.md", "products.md",
                                                            "policies.md"]},
                        "minItems": 1, "maxItems": 3},
            "confident": {"type": "boolean"}},
        "required": ["answer", "sources", "confident"]}),
    "refund": ("I paid $89.99 for the hub and $12.50 shipping; it arrived broken.", {
        "type": "object", "properties": {
            "amount": {"type": "number", "minimum": 0},
            "currency": {"const": "USD"}, "include_shipping": {"type": "boolean"}},
        "required": ["amount", "currency", "include_shipping"]}),
    "product_spec": ("Tell me about the Lumen smart bulb: colours, wattage, hub needed?", {
        "type": "object", "properties": {
            "name": {"type": "string"}, "colors": {"type": "array",
                                                   "items": {"type": "string"}},
            "watts": {"type": "integer", "minimum": 1, "maximum": 100},
            "needs_hub": {"type": "boolean"}, "notes": {"type": ["string", "null"]}},
        "required": ["name", "colors", "watts", "needs_hub", "notes"]}),
    "intent": ("can i change the delivery address for my order", {
        "type": "object", "properties": {
            "intent": {"enum": ["order_status", "change_address", "cancel", "return",
                                "product_question", "other"]},
            "entities": {"type": "object", "additionalProperties": {"type": "string"}}},
        "required": ["intent"]}),
}  # fmt: skip


def prompt(task: str, schema: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You turn customer messages into JSON for the "
             "support system. Reply with one JSON object that matches this JSON Schema, and "
             f"nothing else:\n{json.dumps(schema)}"},
            {"role": "user", "content": task}]  # fmt: skip


def valid(text: str, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


async def ask_all(
    base: str, requests: list[dict[str, Any]], concurrency: int
) -> tuple[list[Any], float]:
    """Each request's (text, completion tokens) and the wall time, at most
    ``concurrency`` in flight."""
    import openai

    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=3,
                                timeout=900)  # fmt: skip
    limit = asyncio.Semaphore(concurrency)

    async def one(options: dict[str, Any]) -> tuple[str, int]:
        async with limit:
            answer = await client.chat.completions.create(model=MODEL, **options)
            return answer.choices[0].message.content or "", answer.usage.completion_tokens

    started = time.perf_counter()
    answers = await asyncio.gather(*(one(r) for r in requests))
    wall = time.perf_counter() - started
    await client.close()
    return list(answers), wall


def constrained(name: str, seed: int) -> dict[str, Any]:
    task, schema = SCHEMAS[name]
    response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    return {"messages": prompt(task, schema), "temperature": 1.0, "seed": seed,
            "max_tokens": MAX_TOKENS, "response_format": response_format}  # fmt: skip


def bench_validity(base: str) -> dict[str, Any]:
    plan = [(name, seed) for name in SCHEMAS for seed in range(SAMPLES)]
    free = [{**constrained(n, s), "response_format": None} for n, s in plan]
    results = {}
    for label, requests in (("constrained", [constrained(n, s) for n, s in plan]),
                            ("unconstrained", free)):  # fmt: skip
        answers, _ = asyncio.run(ask_all(base, requests, 16))
        ok = [
            valid(text, SCHEMAS[name][1])
            for (name, _), (text, _) in zip(plan, answers, strict=True)
        ]
        results[label] = (sum(ok), len(ok), answers)
        print(f"  {label}: {sum(ok)}/{len(ok)} valid", flush=True)
    return results


def bench_cost(base: str, concurrency: int) -> tuple[float, float]:
    """Output tok/s constrained and unconstrained (same lengths, ignore_eos)."""
    count = 20 if concurrency == 1 else 80
    plan = [(name, seed) for seed in range(100, 100 + count) for name in SCHEMAS][:count]
    requests = [constrained(n, s) for n, s in plan]
    answers, wall = asyncio.run(ask_all(base, requests, concurrency))
    tokens = sum(n for _, n in answers)
    same_lengths = [{**r, "response_format": None, "max_tokens": n,
                     "extra_body": {"ignore_eos": True}}
                    for r, (_, n) in zip(requests, answers, strict=True)]  # fmt: skip
    free_answers, free_wall = asyncio.run(ask_all(base, same_lengths, concurrency))
    assert sum(n for _, n in free_answers) == tokens, "the two runs must generate alike"
    return tokens / wall, tokens / free_wall


def engine_times(answers: list[Any], xgrammar_dir: str | None) -> dict[str, dict[str, float]]:
    """Per engine: median compile ms over the schemas and median mask ms per token along
    the constrained answers' token sequences."""
    import numpy as np
    from llguidance import LLMatcher
    from llguidance.hf import from_tokenizer

    from lmforge.data.tools import COMPACT_JSON
    from lmforge.hub import load_tokenizer, resolve

    tokenizer = load_tokenizer(resolve(MODEL))
    vocab = len(tokenizer)
    sequences = {name: [tokenizer(text, add_special_tokens=False)["input_ids"]
                        for text, _ in answers[i * SAMPLES : (i + 1) * SAMPLES]]
                 for i, name in enumerate(SCHEMAS)}  # fmt: skip
    out: dict[str, dict[str, float]] = {}

    llg_tokenizer = from_tokenizer(tokenizer, n_vocab=vocab)
    compile_ms, mask_ms = [], []
    for name, (_, schema) in SCHEMAS.items():
        started = time.perf_counter()
        options: Any = COMPACT_JSON
        grammar = LLMatcher.grammar_from_json_schema(json.dumps(schema), overrides=options)
        LLMatcher(llg_tokenizer, grammar)
        compile_ms.append(1000 * (time.perf_counter() - started))
        for ids in sequences[name]:
            matcher = LLMatcher(llg_tokenizer, grammar)
            for token in ids:
                started = time.perf_counter()
                np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
                mask_ms.append(1000 * (time.perf_counter() - started))
                if not matcher.consume_token(token):
                    break  # a tokenization other than the sampled one: stop this answer
    out["llguidance"] = {"compile_ms": statistics.median(compile_ms),
                         "mask_ms": statistics.median(mask_ms), "masks": len(mask_ms)}  # fmt: skip
    if xgrammar_dir:
        sys.path.insert(0, xgrammar_dir)
        import xgrammar

        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
        compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)
        bitmask = xgrammar.allocate_token_bitmask(1, vocab)
        compile_ms, mask_ms = [], []
        for name, (_, schema) in SCHEMAS.items():
            started = time.perf_counter()
            compiled = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
            compile_ms.append(1000 * (time.perf_counter() - started))
            for ids in sequences[name]:
                matcher = xgrammar.GrammarMatcher(compiled)
                for token in ids:
                    started = time.perf_counter()
                    matcher.fill_next_token_bitmask(bitmask)
                    mask_ms.append(1000 * (time.perf_counter() - started))
                    if not matcher.accept_token(token):
                        break
        out["xgrammar"] = {"compile_ms": statistics.median(compile_ms),
                           "mask_ms": statistics.median(mask_ms),
                           "masks": len(mask_ms)}  # fmt: skip
    return out


def main(start_server: Any, xgrammar_dir: str | None) -> None:
    """``start_server()`` is a context manager giving the base URL of a fresh
    ``lmforge serve`` (bench_serve.py's)."""
    with start_server() as base:
        validity = bench_validity(base)
        costs = {c: bench_cost(base, c) for c in (1, 16)}
    for label, (ok, total, _) in validity.items():
        append_result("serve: structured outputs, 10 JSON Schemas x 20 answers, SmolLM2-135M, "
                      "temperature 1.0", {
            "decoding": label, "valid answers": f"{ok}/{total}",
            "share": f"{ok / total:.1%}"})  # fmt: skip
    for concurrency, (with_grammar, without) in costs.items():
        print(f"  c={concurrency}: {with_grammar:.1f} vs {without:.1f} tok/s", flush=True)
        append_result("serve: cost of constrained decoding (same output lengths)", {
            "concurrency": str(concurrency),
            "constrained tok/s": f"{with_grammar:.1f}",
            "unconstrained tok/s": f"{without:.1f}",
            "ratio": f"{with_grammar / without:.3f}"})  # fmt: skip
    answers = validity["constrained"][2]
    for engine, times in engine_times(answers, xgrammar_dir).items():
        print(f"  {engine}: {times}", flush=True)
        append_result("serve: grammar engines on the 10 schemas (SmolLM2 vocabulary, 49,152)", {
            "engine": engine, "compile ms (median)": f"{times['compile_ms']:.2f}",
            "mask ms per token (median)": f"{times['mask_ms']:.3f}",
            "masks timed": str(int(times["masks"]))})  # fmt: skip


if __name__ == "__main__":
    sys.exit("run it as: python benchmarks/bench_serve.py --structured [--xgrammar DIR]")
