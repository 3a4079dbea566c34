"""Token generation speed: lmforge's streaming generator vs transformers' generate().

Both run SmolLM2-135M-Instruct greedily, fp32, batch 1, on the same prompts in one
process; the outputs must be identical, so the ratio compares equal work.

    python benchmarks/bench_generate.py [--tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import append_result

from lmforge.data.chat import render_chat
from lmforge.hub import load_causal_lm, resolve
from lmforge.serve.generate import SamplingParams, TextGeneration

PROMPTS = [
    "What is the capital of France?",
    "Explain what a refund policy is in two sentences.",
    "Write a short poem about the sea.",
    "List three tips for writing clear emails.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model, tokenizer = load_causal_lm(resolve("smollm2-135m-instruct"))
    prompts = [render_chat(tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    params = SamplingParams(max_tokens=args.tokens, temperature=0.0)

    def ours(ids: list[int]) -> list[int]:
        result = TextGeneration(model, tokenizer, ids, params).run()
        return tokenizer(result.text, add_special_tokens=False)["input_ids"], result.text

    def baseline(ids: list[int]) -> tuple[list[int], str]:
        with torch.inference_mode():
            output = model.generate(
                torch.tensor([ids]), max_new_tokens=args.tokens, do_sample=False
            )
        new = output[0, len(ids) :].tolist()
        return new, tokenizer.decode(new, skip_special_tokens=True)

    rates: dict[str, list[float]] = {"lmforge": [], "transformers": []}
    for _ in range(args.repeats):
        for ids in prompts:
            for name, run in (("lmforge", ours), ("transformers", baseline)):
                started = time.perf_counter()
                _, text = run(ids)
                seconds = time.perf_counter() - started
                tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) or 1
                rates[name].append(tokens / seconds)
    same = all(ours(ids)[1] == baseline(ids)[1] for ids in prompts)
    lmforge_rate = statistics.median(rates["lmforge"])
    baseline_rate = statistics.median(rates["transformers"])
    ratio = lmforge_rate / baseline_rate
    print(f"lmforge      {lmforge_rate:6.1f} tok/s (median)")
    print(f"transformers {baseline_rate:6.1f} tok/s (median)")
    print(f"ratio        {ratio:.2f}x   identical outputs: {same}")
    append_result(
        "generate: SmolLM2-135M greedy, fp32, batch 1",
        {
            "lmforge tok/s": f"{lmforge_rate:.1f}",
            "transformers.generate tok/s": f"{baseline_rate:.1f}",
            "ratio": f"{ratio:.2f}x",
            "identical outputs": str(same),
            "new tokens": str(args.tokens),
        },
    )


if __name__ == "__main__":
    main()
