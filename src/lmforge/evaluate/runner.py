"""``lmforge eval``: score a model on a labeled file, per example, and log it to MLflow.

One function, ``evaluate_model``, reads the data for the task, asks the model, scores
each example, and aggregates. The per-example table (``examples.jsonl``) is what makes a
result comparable later: ``eval compare`` resamples it for confidence intervals.

Tasks and the data each reads (JSON Lines, one object per line):

| task | fields | metrics |
|---|---|---|
| ``perplexity`` | ``text``, or ``messages`` (assistant turns scored) | perplexity |
| ``qa`` | ``question`` + ``answer`` [+ ``keywords``], or ``messages`` | exact_match, token_f1, |
| | | rouge_l [, keyword_accuracy] |
| ``generation`` | ``prompt`` + ``reference``, or ``messages`` | rouge_l, token_f1 |
| ``classification`` | ``text`` + ``label`` | accuracy, macro_f1 |
| ``regression`` | ``text`` + numeric ``label`` | rmse, mae |
| ``code`` | ``prompt`` + ``tests`` + ``entry_point`` | pass@1 (greedy, run in a sandbox) |
| ``safety`` | ``text`` + ``label`` (``safe`` or a category) | unsafe_answer_rate, |
| | | unsafe_prompt_block_rate, safe_prompt_pass_rate |

With a knowledge base (``kb``), qa and generation questions are asked the way ``lmforge
serve --kb`` asks them: the top passages for the question are written into the system
prompt by the server's own ``Grounding``. qa then also reports ``citation_precision``: of
the answers with every keyword right, the share whose cited passage (a marker such as
[2], or the passages whose facts the answer states when it has no marker, as the server's
``citations`` field says) holds every keyword. ``keyword_accuracy``,
``citation_precision`` and classification ``accuracy`` get Wilson score intervals; the
other metrics bootstrap ones.

The safety task asks the model each prompt and judges with lmforge's default guardrails
(``guard/``, the policy ``lmforge serve --guard default`` uses): how often the output
guard would block the model's answer, how often the input guard blocks the unsafe
prompts before they reach the model, and how often it lets the safe ones through. The
bundled ``guard/test.jsonl`` is such a set.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.errors import LmforgeError
from lmforge.evaluate import metrics as m
from lmforge.progress import ProgressFn
from lmforge.stats import wilson_interval

if TYPE_CHECKING:
    from lmforge.retrieve.kb import Hit
    from lmforge.serve.understand import Grounding
    from lmforge.track.prompts import PromptTemplate

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "perplexity": ("perplexity",),
    "qa": ("exact_match", "token_f1", "rouge_l", "keyword_accuracy", "citation_precision"),
    "generation": ("rouge_l", "token_f1"),
    "classification": ("accuracy", "macro_f1"),
    "regression": ("rmse", "mae"),
    "code": ("pass@1",),
    "safety": ("unsafe_answer_rate", "unsafe_prompt_block_rate", "safe_prompt_pass_rate"),
}
TASKS = tuple(TASK_METRICS)
GROUNDED_TASKS = ("qa", "generation")  # the tasks a knowledge base can ground
# Proportions of 0/1 outcomes: a Wilson interval instead of a bootstrap one.
WILSON_METRICS = ("keyword_accuracy", "citation_precision", "accuracy")
EXAMPLES_ARTIFACT = "examples.jsonl"
EVAL_EXPERIMENT = "eval"
# Appended to a code problem so an instruct model answers with code only.
CODE_INSTRUCTION = "Answer with the complete function in one ```python code block."


@dataclass
class EvalResult:
    """What one evaluation measured."""

    task: str
    model_ref: str
    data: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    seconds: float = 0.0


def task_metrics(task: str) -> tuple[str, ...]:
    """The metrics ``task`` reports (qa's ``keyword_accuracy`` needs ``keywords`` in the data).

    Raises:
        LmforgeError: an unknown task.
    """
    if task not in TASK_METRICS:
        raise LmforgeError(f"--task: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return TASK_METRICS[task]


def evaluate_model(
    ref: str,
    data: Path | str,
    task: str,
    *,
    max_examples: int | None = None,
    max_tokens: int = 128,
    system: str | None = None,
    template: PromptTemplate | None = None,
    track: bool = True,
    experiment: str = EVAL_EXPERIMENT,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    kb: str | None = None,
    kb_top_k: int = 3,
) -> EvalResult:
    """Score model ``ref`` on ``data`` for ``task``; logs a run with the per-example table.

    Args:
        ref: any model reference (zoo name, path, adapter, ``registry:``, ``run:``).
        data: a JSON Lines file with the fields the task reads (see the module docstring).
        task: one of ``TASKS``.
        max_examples: score only the first N examples.
        max_tokens: generation tasks: the longest answer (greedy decoding).
        system: generation tasks: a system prompt put before every example's question.
        template: generation tasks: a prompt template rendered with each example's fields
            into the user message (and system prompt, if it has one).
        tags: extra MLflow run tags.
        progress: called with (examples done, total, "examples").
        kb: qa and generation: a knowledge base whose top ``kb_top_k`` passages for each
            question go into the system prompt, as ``lmforge serve --kb`` does.

    Raises:
        LmforgeError: unknown task, unreadable data (naming the line and field), a
            model of the wrong kind for the task, a knowledge base for another task or
            one that does not exist.
    """
    from lmforge.track import start_run

    task_metrics(task)
    grounding = _grounding(kb, kb_top_k, task)
    data = Path(data)
    records = read_eval_data(data, task)[:max_examples]
    started = time.perf_counter()
    if task == "perplexity":
        rows = _perplexity_rows(ref, records, progress)
    elif task in {"classification", "regression"}:
        rows = _predictor_rows(ref, records, task)
    else:
        prompts = [_messages(record, task, system, template) for record in records]
        passages = [grounding.retrieve(_last_user(p)) for p in prompts] if grounding else []
        if grounding is not None:
            prompts = [
                grounding.with_passages(p, h) for p, h in zip(prompts, passages, strict=True)
            ]
        answers = generate_answers(ref, prompts, max_tokens=max_tokens, progress=progress)
        rows = _score_answers(task, records, prompts, answers)
        if grounding is not None:
            _score_citations(grounding, rows, passages)
    names = [
        n for n in TASK_METRICS[task]
        if (n != "keyword_accuracy" or "keywords" in rows[0])
        and (n != "citation_precision" or (grounding is not None and "keywords" in rows[0]))
    ]  # fmt: skip
    result = EvalResult(
        task=task,
        model_ref=ref,
        data=str(data),
        metrics={name: m.aggregate(name, rows) for name in names},
        intervals={name: _interval(name, rows) for name in names},
        examples=rows,
        seconds=time.perf_counter() - started,
    )
    run_tags = {"lmforge.eval.task": task, "lmforge.eval.model": ref, **(tags or {})}
    with start_run(experiment, run_name=run_name or f"eval-{task}", tags=run_tags,
                   enabled=track) as tracker:  # fmt: skip
        tracker.log_params({"model": ref, "data": str(data), "task": task,
                            "examples": len(rows), "max_tokens": max_tokens,
                            "system": system or "",
                            "template": template.ref if template else "",
                            "kb": kb or "", "kb_top_k": kb_top_k if kb else ""})  # fmt: skip
        tracker.log_metrics({**result.metrics, "eval_seconds": result.seconds})
        if tracker.run_id is not None:
            _log_examples(tracker, rows)
        result.run_id = tracker.run_id
    return result


def _interval(metric: str, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Wilson for the 0/1 metrics in ``WILSON_METRICS``, a bootstrap for the others."""
    if metric in WILSON_METRICS:
        values = [row[metric] for row in rows if metric in row]
        return wilson_interval(sum(values), len(values))
    return m.bootstrap_ci(metric, rows)


def _grounding(kb: str | None, top_k: int, task: str) -> Grounding | None:
    """The server's ``Grounding`` over knowledge base ``kb`` (None without one).

    Raises:
        LmforgeError: ``kb`` for a task that reads no passages, a ``top_k`` below 1, or no
            such knowledge base.
    """
    if kb is None:
        return None
    if task not in GROUNDED_TASKS:
        raise LmforgeError(
            f"kb: the {task} task reads no passages; a knowledge base grounds "
            f"{' and '.join(GROUNDED_TASKS)} answers (leave kb unset)"
        )
    if top_k < 1:
        raise LmforgeError(f"kb_top_k: must be at least 1 (got {top_k})")
    from lmforge.retrieve.kb import KnowledgeBase
    from lmforge.serve.understand import Grounding

    return Grounding(KnowledgeBase.open(kb), top_k)


def _last_user(messages: list[dict[str, str]]) -> str:
    """The newest user turn: what the server retrieves passages for."""
    users = [x["content"] for x in messages if x["role"] == "user" and x["content"].strip()]
    if not users:
        raise LmforgeError("kb: an example has no user turn to retrieve passages for")
    return users[-1]


def _score_citations(
    grounding: Grounding, rows: list[dict[str, Any]], passages: list[list[Hit]]
) -> None:
    """Add each row's passages and citations; a right qa answer also gets
    ``citation_precision``: 1.0 when a passage it cites holds every keyword."""
    for row, hits in zip(rows, passages, strict=True):
        citations = grounding.citations(hits, row["prediction"])
        cited = [c for c in citations if c["cited_by"] == "marker"] or [
            c for c in citations if c["cited_by"] == "content"
        ]  # markers first: content attribution only speaks for an answer without any
        row["passages"] = [c["id"] for c in citations]
        row["cited"] = [c["index"] for c in cited]
        row["cited_by"] = cited[0]["cited_by"] if cited else None
        if row.get("keyword_accuracy") == 1.0:
            texts = [f"{c['title'] or ''}\n{c['text']}" for c in cited]
            row["citation_precision"] = m.cites_keywords(texts, row["keywords"])


def read_eval_data(path: Path, task: str) -> list[dict[str, Any]]:
    """The records of a JSON Lines eval file, each checked for the fields ``task`` reads.

    Raises:
        LmforgeError: a missing or empty file, a line that is not a JSON object, or a
            record without the task's fields (naming the file, line and fields).
    """
    from lmforge.retrieve.documents import json_lines

    if not path.is_file():
        raise LmforgeError(f"--data: no such file {str(path)!r} (cwd {Path.cwd()}); "
                           "pass a JSON Lines file")  # fmt: skip
    records = []
    for number, record in json_lines(path, path.read_text(encoding="utf-8")):
        problem = _record_problem(record, task)
        if problem:
            raise LmforgeError(f"{path}:{number}: {problem}")
        records.append(record)
    if not records:
        raise LmforgeError(f"{path}: no records; the {task} task needs at least one line")
    _give_ids(records)
    return records


def _give_ids(records: list[dict[str, Any]]) -> None:
    """An ``id`` for each record: its own, or a hash of its content. ``eval compare`` pairs
    two runs' examples by id, so a reordered or edited file never pairs unrelated
    examples."""
    import hashlib

    seen: dict[str, int] = {}
    for record in records:
        if "id" in record:
            base = str(record["id"])
        else:
            text = json.dumps(record, sort_keys=True, ensure_ascii=False)
            base = hashlib.sha256(text.encode()).hexdigest()[:12]
        seen[base] = seen.get(base, 0) + 1
        record["id"] = base if seen[base] == 1 else f"{base}#{seen[base]}"


def _record_problem(record: Any, task: str) -> str | None:
    """Why ``record`` cannot be scored for ``task``, or ``None``."""
    if not isinstance(record, dict):
        return "expected a JSON object per line"

    def has(*names: str) -> bool:
        return all(isinstance(record.get(n), str) and record[n].strip() for n in names)

    messages = record.get("messages")
    if isinstance(messages, list) and task in {"perplexity", "qa", "generation"}:
        if not messages or not all(isinstance(x, dict) for x in messages):
            return "'messages' must be a non-empty list of {role, content} objects"
        if task != "perplexity" and messages[-1].get("role") != "assistant":
            return "the last message must be the assistant's reference answer"
        return None
    needs = {
        "perplexity": ("text",),
        "qa": ("question", "answer"),
        "generation": ("prompt", "reference"),
        "classification": ("text", "label"),
        "regression": ("text",),
        "code": ("prompt", "tests", "entry_point"),
        "safety": ("text", "label"),
    }[task]
    if task == "classification" and isinstance(record.get("label"), int | float):
        record["label"] = str(record["label"])
    if not has(*needs):
        also = " (or 'messages')" if task in {"perplexity", "qa", "generation"} else ""
        return f"the {task} task needs non-empty string fields {', '.join(needs)}{also}"
    if task == "regression" and not isinstance(record.get("label"), int | float):
        return "the regression task needs a numeric 'label'"
    return None


# --- generation tasks ---------------------------------------------------------------------


def _messages(
    record: dict[str, Any], task: str, system: str | None, template: PromptTemplate | None
) -> list[dict[str, str]]:
    """The chat messages that ask ``record``'s question (the reference answer left out)."""
    if template is not None:
        messages = template.render(record)
    elif "messages" in record:
        messages = [dict(x) for x in record["messages"][:-1]]
    elif task == "safety":
        messages = [{"role": "user", "content": record["text"]}]
    else:
        question = record["question"] if task == "qa" else record["prompt"]
        if task == "code":
            question = f"{question}\n{CODE_INSTRUCTION}"
        messages = [{"role": "user", "content": question}]
    if system is not None:
        messages = [{"role": "system", "content": system}] + [
            x for x in messages if x["role"] != "system"
        ]
    return messages


def _reference(record: dict[str, Any], task: str) -> str:
    if "messages" in record:
        return str(record["messages"][-1]["content"])
    return str(record["answer"] if task == "qa" else record.get("reference", ""))


def generate_answers(
    ref: str,
    prompts: Sequence[list[dict[str, str]]],
    *,
    max_tokens: int = 128,
    max_batch: int = 8,
    progress: ProgressFn | None = None,
) -> list[str]:
    """Greedy answers of chat model ``ref`` to each list of messages, batched.

    The prompts go through the serving engine (continuous batching), so ``max_batch``
    answers are decoded at once; greedy decoding makes each answer independent of what
    it was batched with.
    """
    import threading

    from lmforge.data.chat import render_chat
    from lmforge.hub import load_causal_lm, resolve
    from lmforge.serve.engine import Engine, Event, Request, RequestParams

    model, tokenizer = load_causal_lm(resolve(ref))
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: merged, the same outputs faster
        model = model.merge_and_unload()
    prompt_ids = [render_chat(tokenizer, messages, model_ref=ref) for messages in prompts]
    longest = max(len(ids) for ids in prompt_ids) + max_tokens + 1
    engine = Engine(model, tokenizer, max_batch=max_batch, max_len=longest, kept_slots=0)
    answers: list[str] = [""] * len(prompt_ids)
    errors: list[str] = []
    finished = threading.Semaphore(0)
    params = RequestParams(max_tokens=max_tokens, temperature=0.0)

    def emit_for(index: int) -> Callable[[Event], None]:
        def emit(event: Event) -> None:
            answers[index] += event.text
            if event.finish_reason is not None:
                if event.error:
                    errors.append(f"example {index + 1}: {event.error}")
                finished.release()

        return emit

    engine.start()
    try:
        for index, ids in enumerate(prompt_ids):
            engine.submit(Request(ids, params, emit_for(index)))
        for done in range(1, len(prompt_ids) + 1):
            finished.acquire()
            if progress is not None:
                progress(done, len(prompt_ids), "examples")
    finally:
        engine.stop()
    if errors:
        raise LmforgeError(f"generation failed for {ref}: {'; '.join(errors[:3])}")
    return [answer.strip() for answer in answers]


def _score_answers(
    task: str,
    records: list[dict[str, Any]],
    prompts: list[list[dict[str, str]]],
    answers: list[str],
) -> list[dict[str, Any]]:
    if task == "safety":
        return _safety_rows(records, answers)
    rows = []
    for record, prompt, answer in zip(records, prompts, answers, strict=True):
        row: dict[str, Any] = {"id": record["id"], "prompt": prompt[-1]["content"],
                               "prediction": answer}  # fmt: skip
        if task == "code":
            from lmforge.evaluate.sandbox import extract_code, run_python_tests

            outcome = run_python_tests(extract_code(answer, record["entry_point"]), record["tests"])
            row.update({"pass@1": float(outcome.passed), "status": outcome.status})
        else:
            reference = _reference(record, task)
            row.update({"reference": reference, "rouge_l": m.rouge_l(answer, reference),
                        "token_f1": m.token_f1(answer, reference)})  # fmt: skip
            if task == "qa":
                row["exact_match"] = m.exact_match(answer, reference)
                if record.get("keywords"):
                    row["keywords"] = list(record["keywords"])
                    row["keyword_accuracy"] = m.contains_all(answer, record["keywords"])
        rows.append(row)
    if (
        task == "qa"
        and any("keywords" in row for row in rows)
        and not all("keywords" in row for row in rows)
    ):
        raise LmforgeError(
            "qa: give 'keywords' on every record or on none (some records have them)"
        )
    return rows


def _safety_rows(records: list[dict[str, Any]], answers: list[str]) -> list[dict[str, Any]]:
    """Judge prompts and answers with the default guardrails (see the module docstring)."""
    from lmforge.guard.policy import Guard

    guard = Guard()

    def blocked(texts: list[str], categories: Sequence[str]) -> list[bool]:
        return [any(r["categories"][c] for c in categories) for r in guard.moderate(texts)]

    prompt_flags = blocked([r["text"] for r in records], guard.policy.input_block)
    answer_flags = blocked([a or " " for a in answers], guard.policy.output_block)
    rows = []
    for index, (record, answer) in enumerate(zip(records, answers, strict=True)):
        unsafe = record["label"] != "safe"
        row: dict[str, Any] = {"id": record["id"], "prompt": record["text"],
                               "label": record["label"], "prediction": answer,
                               "unsafe_answer_rate": float(answer_flags[index])}  # fmt: skip
        if unsafe:
            row["unsafe_prompt_block_rate"] = float(prompt_flags[index])
        else:
            row["safe_prompt_pass_rate"] = float(not prompt_flags[index])
        rows.append(row)
    return rows


# --- scoring without generation -----------------------------------------------------------


def _perplexity_rows(
    ref: str, records: list[dict[str, Any]], progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Each example's summed next-token loss and token count (assistant turns for chats)."""
    import torch

    from lmforge.hub import load_causal_lm, resolve
    from lmforge.tasks.causal_lm import collate_lm, lm_loss, lm_target_count
    from lmforge.tasks.sft import encode_conversation

    model, tokenizer = load_causal_lm(resolve(ref))
    rows = []
    with torch.inference_mode():
        for index, record in enumerate(records):
            if "messages" in record:
                example = encode_conversation(tokenizer, record["messages"])
            else:
                ids = tokenizer(record["text"])["input_ids"]
                example = {"input_ids": ids, "labels": list(ids)}
            batch = collate_lm([example], tokenizer.pad_token_id)
            tokens = lm_target_count(batch)
            nll = float(lm_loss(model, batch)) if tokens else 0.0
            perplexity = math.exp(nll / tokens) if tokens else float("nan")
            rows.append({"id": record["id"], "nll_sum": nll, "tokens": tokens,
                         "perplexity": perplexity})  # fmt: skip
            if progress is not None:
                progress(index + 1, len(records), "examples")
    return rows


def _predictor_rows(ref: str, records: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    texts = [record["text"] for record in records]
    rows = []
    if task == "classification":
        from lmforge.hub.classifier import TextClassifier

        classifier = TextClassifier(ref)
        probabilities = classifier.predict_proba(texts)  # (N, L)
        for record, row in zip(records, probabilities, strict=True):
            predicted = classifier.labels[int(row.argmax())]
            rows.append({"id": record["id"], "text": record["text"],
                         "label": record["label"], "predicted": predicted,
                         "accuracy": float(predicted == record["label"])})  # fmt: skip
        return rows
    for record, value in zip(records, _regress(ref, texts), strict=True):
        error = value - float(record["label"])
        rows.append({"id": record["id"], "text": record["text"],
                     "label": float(record["label"]), "predicted": value,
                     "squared_error": error * error, "absolute_error": abs(error)})  # fmt: skip
    return rows


def _regress(ref: str, texts: list[str]) -> list[float]:
    import torch

    from lmforge.hub import resolve
    from lmforge.hub.classifier import MAX_LENGTH
    from lmforge.hub.load import load_classifier

    model, tokenizer = load_classifier(resolve(ref))
    if int(model.config.num_labels) != 1:
        raise LmforgeError(
            f"{ref!r} has {model.config.num_labels} outputs; the regression task needs a model "
            "trained with task regress (one output). Use --task classification for classifiers."
        )
    values: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(texts[start : start + 64], padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")  # fmt: skip
            values.extend(model(**batch).logits[:, 0].float().tolist())  # logits: (B, 1)
    return values


def _log_examples(tracker: Any, rows: list[dict[str, Any]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lmforge-eval-") as tmp:
        path = Path(tmp) / EXAMPLES_ARTIFACT
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        tracker.log_artifact(path)
