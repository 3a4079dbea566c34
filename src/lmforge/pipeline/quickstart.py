"""The main job: the bundled quickstart pipeline, then the promoted model served.

``lmforge quickstart`` runs ``assets/pipelines/quickstart.yaml`` (also at
``examples/pipelines/quickstart.yaml``) on the embedded defaults: check the support
dialogs, build the knowledge base, adapt SmolLM2 with LoRA (to the dialogs and to
answering from retrieved passages), compress it to INT8, evaluate before and after on
held-out questions answered with the knowledge base, register it with a promotion gate,
and write the serving specs. It then shows what the adaptation changed (the held-out
metrics with confidence intervals, and one grounded question before and after), serves
the production version behind the OpenAI-compatible API and web chat page, grounded in
the knowledge base, and ends with a summary table of run ids and the URL. Every step is
cached, so a second run with nothing changed skips them and goes straight to serving.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import torch
import uvicorn
from rich.console import Console
from rich.table import Table

from lmforge.data.bundled import dataset_path
from lmforge.evaluate.compare import compare_runs
from lmforge.hub import load_causal_lm, resolve
from lmforge.pipeline.load import load_pipeline
from lmforge.pipeline.report import ConsoleEvents, print_summary
from lmforge.pipeline.runner import run_pipeline
from lmforge.retrieve.kb import KnowledgeBase
from lmforge.serve.app import create_app
from lmforge.serve.chat import ChatSession
from lmforge.serve.config import ServeConfig
from lmforge.serve.generate import SamplingParams
from lmforge.serve.server import build_handler
from lmforge.serve.understand import Grounding

CHAT_MODEL = "smollm2-135m-instruct"
PIPELINE_FILE = Path(__file__).parent.parent / "assets" / "pipelines" / "quickstart.yaml"
REGISTERED = "brightnest-support"
SERVED_NAME = "brightnest"
KB_NAME = "brightnest"
# The adaptation: a question about the fictional company's return window (45 days), asked
# as the server asks it, with the knowledge base's top 3 passages in the system prompt
# (src/lmforge/assets/datasets/company holds the facts). Both models see the same passages,
# faq.md's "How long do I have to return something?" first; measured on an AVX2-only EPYC,
# the base model answered "The return window is 1 year." and the adapted INT8 one "The
# return window is 45 days of delivery [1]." Worded "How many days do I have to return
# something I bought?", the top 3 passages miss the window (they are about refunds) and
# both models answer with a refund delay: retrieval, not the adapter, fails there.
ADAPT_QUESTION = "How long is the return window?"
ADAPT_FACT = "45 days"
# A greedy answer can fork to a neighbouring number on another CPU's kernels, so the demo
# also shows how likely each window makes this answer to the question, before and after.
FACT_ANSWER = "You can return it within {days} days of delivery."
WINDOWS = ("7", "14", "30", "45", "60")  # every "N days" the support dialogs mention often
# The served model answers these from the knowledge base's passages, with citations.
KB_QUESTIONS = (
    ("How much is a Keystone Smart Lock?", "$219"),
    ("What is the price of the Aura Thermostat?", "$149"),
)


@dataclass
class QuickstartResult:
    """What the quickstart measured, for callers and tests."""

    pipeline_status: str
    steps: dict[str, str] = field(default_factory=dict)  # step -> ran | cached | skipped
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> its outputs
    answer_before: str = ""
    answer_after: str = ""
    passages: list[str] = field(default_factory=list)  # the chunk ids ADAPT_QUESTION retrieves
    # log-probability of FACT_ANSWER for each of WINDOWS, base model and production version
    window_before: dict[str, float] = field(default_factory=dict)
    window_after: dict[str, float] = field(default_factory=dict)
    grounded_answers: list[str] = field(default_factory=list)  # to KB_QUESTIONS, over HTTP
    citations: list[list[dict[str, Any]]] = field(default_factory=list)  # for each answer
    url: str = ""
    run_id: str | None = None  # the pipeline's MLflow run
    seconds: float = 0.0


def run_quickstart(
    console: Console,
    *,
    track: bool = True,
    serve: bool = True,
    keep_serving: bool = False,
    port: int = 8000,
) -> QuickstartResult:
    """Run the quickstart pipeline, show the adaptation, serve the production version.

    Args:
        track: log the pipeline and its steps to MLflow.
        serve: end by serving the production version (and asking it two questions over HTTP).
        keep_serving: then keep the server up until Ctrl-C (the CLI does so in a terminal).
        port: where to serve (a free port is taken when this one is busy).
    """
    started = time.perf_counter()
    pipeline = load_pipeline(PIPELINE_FILE)
    console.print(f"[bold]lmforge quickstart[/bold]: pipeline {PIPELINE_FILE.name} "
                  f"({len(pipeline.order)} steps, cached when unchanged)")  # fmt: skip
    ran = run_pipeline(pipeline, track=track, events=ConsoleEvents(console))
    result = QuickstartResult(
        ran.status,
        steps={record.name: record.status for record in ran.steps},
        outputs={record.name: record.outputs for record in ran.steps},
        run_id=ran.run_id,
    )
    production = f"registry:{REGISTERED}@production"
    console.rule("[bold]What the adaptation changed")
    _show_eval(console, result.outputs)
    with console.status("Asking the base model and the production version..."):
        hits = Grounding(KnowledgeBase.open(KB_NAME)).retrieve(ADAPT_QUESTION)
        system = Grounding.system_prompt(_system_prompt(), hits)
        result.passages = [hit.chunk["id"] for hit in hits]
        result.answer_before, result.window_before = _ask(CHAT_MODEL, system)
        result.answer_after, result.window_after = _ask(production, system)
    table = Table(title=f"user: {ADAPT_QUESTION!r}, with the passages "
                  f"{', '.join(result.passages)}", show_lines=True)  # fmt: skip
    table.add_column("model")
    table.add_column("answer (greedy)")
    table.add_row(f"{CHAT_MODEL}, before", result.answer_before)
    table.add_row(f"{production} (LoRA + INT8), after", result.answer_after)
    console.print(table)
    _show_windows(console, result)
    if serve:
        console.rule("[bold]Serve the production version, grounded in the knowledge base")
        served = _serve_step(console, production, keep_serving, port, summary=(ran, started))
        result.grounded_answers, result.citations, result.url = served
    result.seconds = time.perf_counter() - started
    if not serve:
        print_summary(console, ran)
        console.print(f"quickstart finished in {result.seconds:.0f} s")
    return result


def _show_eval(console: Console, outputs: dict[str, dict[str, Any]]) -> None:
    """The held-out metrics before and after, with paired bootstrap intervals."""
    before, after = outputs.get("eval-before", {}), outputs.get("eval-after", {})
    if before.get("run_id") and after.get("run_id"):
        _, diffs = compare_runs(before["run_id"], after["run_id"])
        table = Table(title=f"held-out questions ({after.get('examples')}): base model vs "
                      "LoRA + INT8, 95% paired bootstrap intervals")  # fmt: skip
        for column in ("metric", "before", "after", "after - before", "95% CI"):
            table.add_column(column)
        for diff in diffs:
            table.add_row(diff.metric, f"{diff.a:.3f}", f"{diff.b:.3f}", f"{diff.diff:+.3f}",
                          f"{diff.low:+.3f} to {diff.high:+.3f}")  # fmt: skip
        console.print(table)
        return
    for name in ("eval-before", "eval-after"):  # untracked: no per-example tables to pair
        metrics = outputs.get(name, {}).get("metrics", {})
        console.print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))


def _system_prompt() -> str:
    first = dataset_path("customer_service", "train").read_text().splitlines()[0]
    return str(json.loads(first)["messages"][0]["content"])


def _ask(ref: str, system: str) -> tuple[str, dict[str, float]]:
    """Model ``ref``'s greedy answer to ADAPT_QUESTION under the system prompt ``system``
    (which holds the retrieved passages), and the log-probability it gives FACT_ANSWER as
    the answer for each of WINDOWS."""
    model, tokenizer = load_causal_lm(resolve(ref))
    session = ChatSession(model, tokenizer, model_ref=ref, system=system)
    greedy = SamplingParams(max_tokens=48, temperature=0.0)
    answer = session.ask(ADAPT_QUESTION, greedy).run().text
    messages = [{"role": "system", "content": system}, {"role": "user", "content": ADAPT_QUESTION}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    start = len(tokenizer(prompt)["input_ids"])
    scores = {}
    for days in WINDOWS:
        ids = torch.tensor([tokenizer(prompt + FACT_ANSWER.format(days=days))["input_ids"]])
        with torch.no_grad():
            log_probs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
        scores[days] = float(log_probs[start - 1 :].gather(1, ids[0, start:, None]).sum())
    return answer, scores


def _show_windows(console: Console, result: QuickstartResult) -> None:
    table = Table(title=f"log-probability of {FACT_ANSWER.format(days='N')!r} as the answer")
    for column in ("N days", "before", "after", "after - before"):
        table.add_column(column)
    for days in WINDOWS:
        before, after = result.window_before[days], result.window_after[days]
        mark = " (the policy)" if f"{days} days" == ADAPT_FACT else ""
        table.add_row(days + mark, f"{before:.1f}", f"{after:.1f}", f"{after - before:+.1f}")
    console.print(table)


def _serve_step(
    console: Console, ref: str, keep_serving: bool, port: int, summary: tuple[Any, float]
) -> tuple[list[str], list[list[dict[str, Any]]], str]:
    """Serve ``ref`` as "brightnest" (guardrails on with Brightnest's policy, which keeps
    the company's own contacts in answers; answers grounded in the knowledge base), ask
    it the knowledge-base questions through the official OpenAI client, print the
    summary with the URL, then stop or keep serving.

    Returns:
        The answers, their citations, and the URL.
    """
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:  # busy: take any free port
            with socket.socket() as free:
                free.bind(("127.0.0.1", 0))
                port = free.getsockname()[1]

    def load() -> Any:
        config = ServeConfig(model=ref, served_name=SERVED_NAME, guard="brightnest", kb=KB_NAME)
        return build_handler(config)

    app = create_app(load)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    with console.status(f"Loading {ref} behind {base} ..."):
        app.state.lmforge.loaded.wait(timeout=300)
    if app.state.lmforge.handler is None:
        server.should_exit = True
        raise RuntimeError(f"the server did not start: {app.state.lmforge.error}")
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=2)
    console.print(f"Serving {ref} as model '{SERVED_NAME}' (guardrails on, answers grounded "
                  f"in knowledge base '{KB_NAME}').")  # fmt: skip
    answers, citations = [], []
    for question, _ in KB_QUESTIONS:
        reply = client.chat.completions.create(
            model=SERVED_NAME, max_tokens=48, temperature=0,
            messages=[{"role": "system", "content": _system_prompt()},
                      {"role": "user", "content": question}],
        )  # fmt: skip
        answers.append(reply.choices[0].message.content or "")
        citations.append((reply.model_extra or {}).get("citations", []))
        console.print(f"  {question!r} -> {answers[-1]!r}", highlight=False)
        for citation in citations[-1]:
            mark = "cited" if citation.get("cited") else "retrieved"
            console.print(f"    [{citation['index']}] {citation['source']}, "
                          f"{citation['title']!r} ({mark})", highlight=False)  # fmt: skip
    ran, started = summary
    console.rule("[bold]Summary")
    print_summary(console, ran)
    console.print(f"quickstart finished in {time.perf_counter() - started:.0f} s")
    console.print(f"  web chat page: [bold]{base}/[/bold]   OpenAI API: {base}/v1")
    try:
        if keep_serving:
            console.print("[dim]Ctrl-C stops the server.[/dim]")
            while thread.is_alive():
                thread.join(timeout=0.5)
        else:
            console.print("[dim]Stopped (run `lmforge quickstart` in a terminal to keep it up, "
                          "or `lmforge serve`).[/dim]")  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return answers, citations, base
