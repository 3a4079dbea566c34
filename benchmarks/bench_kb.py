"""Knowledge-base benchmark: build speed, query latency, retrieval quality, grounded answers.

1. build: ``KnowledgeBase.add`` (read, chunk on sentences to 128 tokens without overlap,
   as the baseline does, embed with all-MiniLM-L6-v2, index, save atomically) against a
   plain script doing the same work
   with sentence-transformers and faiss (read, pack sentences to 128 tokens, encode,
   IndexFlatIP, write index and metadata). Target: at least 1.0x, measured as the time to
   index the same documents (lmforge packs sentences across paragraphs, so it makes fewer,
   fuller passages; tokens/s is reported too).
2. query: ``KnowledgeBase.search`` on 100k passages (an HNSW index, the automatic choice
   above 20k), query embedding included, dense and hybrid; against sentence-transformers
   ``encode`` + an exact faiss IndexFlatIP search over the same vectors. Target: p50 under
   20 ms and p99 under 100 ms. The 100k passages are at most 32 tokens each so the build
   takes minutes, not an hour: the vectors are 384-d whatever the passage length, so the
   search cost is the same.
3. recall: the bundled company documents and the labeled queries (dev, held-out test):
   recall@1/5/10 and MRR, dense and hybrid.
4. grounded: SmolLM2-135M-Instruct (and each ``--model``, e.g. the quickstart's INT8
   model) answers the 33 held-out customer questions (customer_service/test_questions.jsonl)
   served without and with ``--kb company``; an answer is right when it contains every
   keyword of the reference (95% Wilson interval). With the knowledge base, citation
   precision: of the right answers, the share whose cited passage holds every keyword
   (the passages the server's ``citations`` field marks ``cited_by: marker``, or
   ``content`` when the answer has no marker), as ``lmforge eval --kb`` scores it.

Run: python benchmarks/bench_kb.py [--only build|query|recall|grounded] [--model REF]
     (~15 min on 2 cores; the quickstart's model: --model registry:brightnest-support@production
     with the quickstart's LMFORGE_HOME)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from common import append_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from bench_serve import run_server  # noqa: E402
from tests.servers import free_port  # noqa: E402

CACHE = Path.home() / ".cache" / "lmforge-bench" / "kb"
DATASETS = ROOT / "src" / "lmforge" / "assets" / "datasets"
EMBED = "all-minilm-l6-v2"
BIG = 100_000


def sentences() -> list[str]:
    """Every sentence of the bundled domain texts, reviews and dialogs (about 6,000)."""
    texts = []
    for name in ("domain_text", "sentiment"):
        for split in ("train", "validation", "test"):
            lines = (DATASETS / name / f"{split}.jsonl").read_text().splitlines()
            texts += [json.loads(line)["text"] for line in lines]
    for line in (DATASETS / "customer_service" / "train.jsonl").read_text().splitlines():
        texts += [m["content"] for m in json.loads(line)["messages"] if m["role"] != "system"]
    found = {s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+", t)}
    return sorted(s for s in found if len(s.split()) >= 4)


def write_corpus(folder: Path, files: int, paragraphs: int, per_paragraph: int) -> list[Path]:
    """``files`` text files of ``paragraphs`` paragraphs, each ``per_paragraph`` random
    sentences (seeded); already written ones are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    pool, rng = sentences(), random.Random(1729)
    paths = []
    for number in range(files):
        path = folder / f"doc{number:05d}.txt"
        paragraphs_text = [" ".join(rng.sample(pool, per_paragraph)) for _ in range(paragraphs)]
        if not path.exists():
            path.write_text("\n\n".join(paragraphs_text) + "\n")
        paths.append(path)
    return paths


def use_home(home: Path) -> None:
    os.environ["LMFORGE_HOME"] = str(home)


# --- 1. build ------------------------------------------------------------------------


def baseline_build(files: list[Path], out: Path) -> tuple[int, int, float]:
    """What a user writes with sentence-transformers and faiss: (passages, tokens, s)."""
    import faiss
    from sentence_transformers import SentenceTransformer

    from lmforge.hub import resolve

    model = SentenceTransformer(str(resolve(EMBED).path), device="cpu")
    started = time.perf_counter()
    passages, total_tokens = [], 0
    for path in files:
        for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
            current: list[str] = []
            size = 0
            for sentence in re.split(r"(?<=[.!?])\s+", paragraph.strip()):
                tokens = len(model.tokenizer(sentence, add_special_tokens=False)["input_ids"])
                if current and size + tokens > 128:
                    passages.append({"source": str(path), "text": " ".join(current)})
                    current, size = [], 0
                current.append(sentence)
                size += tokens
                total_tokens += tokens
            if current:
                passages.append({"source": str(path), "text": " ".join(current)})
    vectors = model.encode([p["text"] for p in passages], batch_size=64,
                           normalize_embeddings=True, convert_to_numpy=True)  # fmt: skip
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "index.faiss"))
    with (out / "passages.jsonl").open("w") as handle:
        handle.writelines(json.dumps(p) + "\n" for p in passages)
    return len(passages), total_tokens, time.perf_counter() - started


def bench_build() -> None:
    from lmforge.retrieve.kb import KnowledgeBase, embedder_for

    files = write_corpus(CACHE / "build-corpus", files=60, paragraphs=10, per_paragraph=6)
    use_home(CACHE / "build-home")
    embedder_for(EMBED)  # load the model outside the timing, as the baseline does
    # No overlap: the baseline's passages do not repeat sentences either.
    kb = KnowledgeBase.create("build", embed_ref=EMBED, overlap=0, replace=True)
    report = kb.add(files)
    tokens = sum(int(c["tokens"]) for c in kb.chunks)
    count, their_tokens, seconds = baseline_build(files, CACHE / "build-baseline")
    print(f"build: lmforge {report.chunks} passages ({tokens} tokens) in {report.seconds:.1f} s; "
          f"baseline {count} ({their_tokens} tokens) in {seconds:.1f} s")  # fmt: skip
    append_result("kb build: the same 60 documents, 128-token passages, all-MiniLM-L6-v2", {
        "lmforge s": f"{report.seconds:.1f}",
        "lmforge passages (tokens)": f"{report.chunks} ({tokens})",
        "sentence-transformers + faiss s": f"{seconds:.1f}",
        "baseline passages (tokens)": f"{count} ({their_tokens})",
        "lmforge tokens/s": f"{tokens / report.seconds:.0f}",
        "baseline tokens/s": f"{their_tokens / seconds:.0f}",
        "ratio (baseline s / lmforge s)": f"{seconds / report.seconds:.2f}x",
    })  # fmt: skip


# --- 2. query latency ----------------------------------------------------------------


def big_kb() -> Any:
    """The 100k-passage knowledge base, built once and cached (about 15 minutes)."""
    from lmforge.errors import LmforgeError
    from lmforge.retrieve.kb import KnowledgeBase

    use_home(CACHE / "big-home")
    try:
        kb = KnowledgeBase.open("big")
    except LmforgeError:
        kb = KnowledgeBase.create("big", embed_ref=EMBED, chunk_tokens=32, overlap=0)
    started, files = time.perf_counter(), 0
    while len(kb.chunks) < BIG:  # 100 more files (about 8,000 passages) at a time
        files += 100
        paths = write_corpus(CACHE / "big-corpus", files=files, paragraphs=105, per_paragraph=1)
        kb.add(paths[-100:])
        print(f"  big kb: {len(kb.chunks)} passages, {time.perf_counter() - started:.0f} s")
    return kb


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_query() -> None:
    import faiss
    from sentence_transformers import SentenceTransformer

    from lmforge.hub import resolve

    kb = big_kb()
    queries = []
    for split in ("dev", "test"):
        lines = (DATASETS / "kb_queries" / f"{split}.jsonl").read_text().splitlines()
        queries += [json.loads(line)["query"] for line in lines]
    queries = (queries * 2)[:200]
    timings: dict[str, list[float]] = {"dense": [], "hybrid": [], "baseline": []}
    for query in queries[:10]:  # warm up
        kb.search(query, 5)
        kb.search(query, 5, hybrid=True)
    for query in queries:
        for mode in ("dense", "hybrid"):
            started = time.perf_counter()
            kb.search(query, 5, hybrid=mode == "hybrid")
            timings[mode].append(time.perf_counter() - started)
    model = SentenceTransformer(str(resolve(EMBED).path), device="cpu")
    flat = faiss.IndexFlatIP(kb.vectors.shape[1])
    flat.add(kb.vectors)
    for query in queries[:10]:
        flat.search(model.encode([query], normalize_embeddings=True), 5)
    for query in queries:
        started = time.perf_counter()
        flat.search(model.encode([query], normalize_embeddings=True), 5)
        timings["baseline"].append(time.perf_counter() - started)
    ms = {mode: (1000 * percentile(t, 0.5), 1000 * percentile(t, 0.99))
          for mode, t in timings.items()}  # fmt: skip
    print("query ms (p50, p99):", {k: (round(a, 1), round(b, 1)) for k, (a, b) in ms.items()})
    append_result("kb query: 100k passages, top 5, query embedding included", {
        "passages": str(len(kb.chunks)),
        "index": kb.stats()["index"],
        "queries": str(len(queries)),
        "lmforge dense p50 / p99 ms": f"{ms['dense'][0]:.1f} / {ms['dense'][1]:.1f}",
        "lmforge hybrid p50 / p99 ms": f"{ms['hybrid'][0]:.1f} / {ms['hybrid'][1]:.1f}",
        "sentence-transformers + faiss flat p50 / p99 ms":
            f"{ms['baseline'][0]:.1f} / {ms['baseline'][1]:.1f}",
        "p50 ratio (baseline / lmforge dense)": f"{ms['baseline'][0] / ms['dense'][0]:.2f}x",
    })  # fmt: skip


# --- 3. recall -----------------------------------------------------------------------


def company_kb() -> Any:
    from lmforge.retrieve.kb import KnowledgeBase

    use_home(CACHE / "company-home")
    kb = KnowledgeBase.create("company", embed_ref=EMBED, replace=True)
    kb.add([DATASETS / "company"])
    return kb


def bench_recall() -> None:
    from lmforge.retrieve.evaluate import evaluate_retrieval, read_queries

    kb = company_kb()
    for split in ("dev", "test"):
        queries = read_queries(DATASETS / "kb_queries" / f"{split}.jsonl")
        for hybrid in (False, True):
            metrics = evaluate_retrieval(kb, queries, hybrid=hybrid).metrics
            print(split, "hybrid" if hybrid else "dense", metrics)
            append_result("kb recall: bundled company documents, labeled queries", {
                "split": f"{split} ({len(queries)} queries)",
                "search": "hybrid (vectors + BM25, RRF)" if hybrid else "dense",
                "passages": str(len(kb.chunks)),
                "recall@1": f"{metrics['recall@1']:.3f}",
                "recall@5": f"{metrics['recall@5']:.3f}",
                "recall@10": f"{metrics['recall@10']:.3f}",
                "MRR": f"{metrics['mrr']:.3f}",
            })  # fmt: skip


# --- 4. grounded answers -------------------------------------------------------------


def grounded_answers(
    base: str, questions: list[dict[str, Any]], system: str
) -> list[tuple[bool, float | None]]:
    """For each question: whether the answer is right, and (right and grounded) whether
    a passage it cites holds every keyword."""
    import openai

    from lmforge.evaluate.metrics import cites_keywords, contains_all

    client = openai.OpenAI(base_url=base + "/v1", api_key="none")
    results = []
    for record in questions:
        reply = client.chat.completions.create(
            model="smollm2", max_tokens=96, temperature=0,
            messages=[{"role": "system", "content": system},
                      {"role": "user", "content": record["question"]}],
        )  # fmt: skip
        right = bool(contains_all(reply.choices[0].message.content or "", record["keywords"]))
        citations = (reply.model_extra or {}).get("citations")
        cited_right = None
        if right and citations is not None:
            cited = [c for c in citations if c.get("cited_by") == "marker"] or [
                c for c in citations if c.get("cited_by") == "content"
            ]
            texts = [f"{c['title'] or ''}\n{c['text']}" for c in cited]
            cited_right = cites_keywords(texts, record["keywords"])
        results.append((right, cited_right))
    return results


def bench_grounded(models: list[str]) -> None:
    from lmforge.hub import resolve
    from lmforge.stats import wilson_interval

    # Resolved in the caller's LMFORGE_HOME (a registry: ref lives there), served from here.
    served = {"smollm2-135m-instruct": "smollm2-135m-instruct"}
    served |= {ref: str(resolve(ref).path) for ref in models}
    company_kb()
    lines = (DATASETS / "customer_service" / "test_questions.jsonl").read_text().splitlines()
    questions = [json.loads(line) for line in lines]
    dialog = json.loads((DATASETS / "customer_service" / "test.jsonl").read_text().splitlines()[0])
    system = dialog["messages"][0]["content"]
    for ref, path in served.items():
        for label, extra in (("none", []), ("--kb company (top 3)", ["--kb", "company"])):
            port = free_port()
            command = [sys.executable, "-m", "lmforge.cli.main", "serve", path,
                       "--served-name", "smollm2", "--port", str(port), "--no-access-log",
                       *extra]  # fmt: skip
            process = run_server(command, "/ready", CACHE / "grounded-server.log")
            try:
                results = grounded_answers(f"http://127.0.0.1:{port}", questions, system)
            finally:
                process.terminate()
                process.wait()
            right = sum(r for r, _ in results)
            low, high = wilson_interval(right, len(results))
            cited = [c for _, c in results if c is not None]
            precision = (f"{sum(cited) / len(cited):.3f} ({sum(cited):.0f}/{len(cited)})"
                         if extra and cited else "-")  # fmt: skip
            print(ref, label, f"{right}/{len(results)}", precision)
            append_result("kb grounded answers: 33 held-out customer questions, with intervals "
                          "and citation precision", {
                "model": ref,
                "knowledge base": label,
                "right": f"{right}/{len(results)}",
                "keyword accuracy (95% Wilson)": f"{right / len(results):.3f} "
                                                 f"({low:.3f} to {high:.3f})",
                "citation precision (of right answers)": precision,
                "judge": "the answer contains every reference keyword (case-insensitive)",
                "decoding": "greedy, 96 tokens, the dialogs' system prompt",
            })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["build", "query", "recall", "grounded"])
    parser.add_argument(
        "--model", action="append", default=[], help="grounded: also serve this model (repeatable)"
    )
    args = parser.parse_args()
    steps = {"build": bench_build, "query": bench_query, "recall": bench_recall,
             "grounded": lambda: bench_grounded(args.model)}  # fmt: skip
    for name, step in steps.items():
        if args.only in (None, name):
            step()


if __name__ == "__main__":
    main()
