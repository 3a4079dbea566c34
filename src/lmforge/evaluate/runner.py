"""``lmforge eval``: score a model on a labeled file, per example, and log it to MLflow.

One function, ``evaluate_model``, reads the data for the task, asks the model, scores
each example, and aggregates. The per-example table (``examples.jsonl``) is what makes a
result comparable later: ``eval compare`` resamples it for confidence intervals. The tasks,
the fields each reads and the metrics each reports are in the registry,
``lmforge.evaluate.tasks`` (docs/evaluate.md shows them as a table).

With a knowledge base (``kb``), the questions of the tasks it can ground (``grounded`` in
the registry) are asked the way ``lmforge serve --kb`` asks them: the top passages for the
question are written into the system prompt by the server's own ``Grounding``. Each example
then also records the passages it was shown and those its answer cites (a marker such as
[2], or the passages whose facts the answer states when it has no marker, as the server's
``citations`` field says); a task with keywords (qa) reports ``citation_precision``: of the
answers with every keyword right, the share whose cited passage holds every keyword.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from lmforge.data.chat import render_chat
from lmforge.data.fetch import data_file
from lmforge.errors import LmforgeError
from lmforge.evaluate import metrics as m
from lmforge.evaluate.image_generation import sample_grid
from lmforge.evaluate.tasks import EvalTask, eval_task, eval_tasks, kb_problem
from lmforge.hub import load_causal_lm, resolve
from lmforge.progress import ProgressFn
from lmforge.retrieve.documents import json_lines
from lmforge.retrieve.kb import KnowledgeBase
from lmforge.serve.engine import Engine
from lmforge.serve.requests import Event, Request, RequestParams
from lmforge.serve.runner import SlotRunner
from lmforge.serve.understand import Grounding
from lmforge.stats import wilson_interval
from lmforge.track import start_run

if TYPE_CHECKING:
    from lmforge.retrieve.kb import Hit
    from lmforge.serve.understand import Grounding
    from lmforge.track.prompts import PromptTemplate

EXAMPLES_ARTIFACT = "examples.jsonl"
EVAL_EXPERIMENT = "eval"


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
    label_templates: Sequence[str] | None = None,
    clip_model: str | None = None,
) -> EvalResult:
    """Score model ``ref`` on ``data`` for ``task``; logs a run with the per-example table.

    Args:
        ref: any model reference (zoo name, path, adapter, ``registry:``, ``run:``).
        data: a JSON Lines file with the fields the task reads (``EvalTask.fields``), or a
            bundled split (``bundled:digits/test``).
        task: a registered evaluation task (``lmforge.evaluate.tasks``).
        max_examples: score only the first N examples.
        max_tokens: tasks that ask the model: the longest answer (greedy decoding).
        system: tasks that ask the model: a system prompt put before every question.
        template: tasks that ask the model: a prompt template rendered with each example's
            fields into the user message (and system prompt, if it has one).
        tags: extra MLflow run tags.
        progress: called with (examples done, total, "examples").
        kb: tasks it can ground: a knowledge base whose top ``kb_top_k`` passages for each
            question go into the system prompt, as ``lmforge serve --kb`` does.
        label_templates: zero-shot tasks: the prompts made from each label (``{label}`` is
            replaced), averaged per label; the task's default when None.
        clip_model: image-generation: a text-image model (task ``clip``) that scores how
            well each image matches its prompt (CLIPScore).

    Raises:
        LmforgeError: unknown task, unreadable data (naming the line and field), a
            model of the wrong kind for the task, a knowledge base for another task or
            one that does not exist.
    """
    entry = eval_task(task)
    grounding = _grounding(kb, kb_top_k, entry)
    data = data_file(data, "test")
    records = read_eval_data(data, task)[:max_examples] if entry.predict_table is None else []
    started = time.perf_counter()
    if label_templates is not None and not entry.label_templates:
        raise LmforgeError(
            f"label templates: the {task} task does not read them; only "
            f"{', '.join(t.name for t in eval_tasks() if t.label_templates)} do"
        )
    if clip_model is not None and not entry.clip_model:
        raise LmforgeError(
            f"clip model: the {task} task does not use one; only "
            f"{', '.join(t.name for t in eval_tasks() if t.clip_model)} do"
        )
    if entry.predict_table is not None:
        rows = entry.predict_table(ref, data, progress)[:max_examples]
    elif entry.predict is not None:
        predict: Callable[..., list[dict[str, Any]]] = entry.predict
        if entry.label_templates and label_templates is not None:
            _check_templates(label_templates)
            predict = functools.partial(predict, templates=tuple(label_templates))
        if clip_model is not None:
            predict = functools.partial(predict, clip_model=clip_model)
        rows = predict(ref, records, progress)
    else:
        question, score = entry.question, entry.score
        assert question is not None and score is not None  # EvalTask checks it has both
        prompts = [_messages(record, question, system, template) for record in records]
        passages = [grounding.retrieve(_last_user(p)) for p in prompts] if grounding else []
        if grounding is not None:
            prompts = [
                grounding.with_passages(p, h) for p, h in zip(prompts, passages, strict=True)
            ]
        answers = generate_answers(ref, prompts, max_tokens=max_tokens, progress=progress)
        # The server's answer: its citation markers checked against the passages.
        served = [grounding.verify(a, h) for a, h in zip(answers, passages, strict=True)
                  ] if grounding else [(a, []) for a in answers]  # fmt: skip
        rows = score(records, prompts, [answer for answer, _ in served])
        if grounding is not None:
            _score_citations(grounding, rows, passages, answers, [fix for _, fix in served])
    # a metric is reported when the examples carry what it is computed from (qa's keywords)
    names = [n for n in entry.metrics if all(c in rows[0] for c in entry.metric_needs.get(n, ()))]
    result = EvalResult(
        task=task,
        model_ref=ref,
        data=str(data),
        metrics={name: m.aggregate(name, rows) for name in names},
        intervals={name: _interval(name, rows, entry) for name in names},
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
                            "kb": kb or "", "kb_top_k": kb_top_k if kb else "",
                            "label_templates": " | ".join(label_templates or ()),
                            "clip_model": clip_model or ""})  # fmt: skip
        tracker.log_metrics({**result.metrics, "eval_seconds": result.seconds})
        if tracker.run_id is not None:
            _log_examples(tracker, rows)
            if "generated_image" in rows[0]:
                _log_sample_grid(tracker, rows)
            if entry.figure is not None:
                with tempfile.TemporaryDirectory(prefix="lmforge-eval-") as tmp:
                    title = f"{ref} on {Path(data).name}"
                    tracker.log_artifact(entry.figure(rows, Path(tmp) / f"{task}.png", title))
        result.run_id = tracker.run_id
    return result


def _check_templates(templates: Sequence[str]) -> None:
    missing = [t for t in templates if "{label}" not in t]
    if not templates or missing:
        raise LmforgeError(f"label templates: {missing or 'none given'!r}: each needs "
                           "{label} where the label goes, e.g. 'a photo of a {label}'")  # fmt: skip


def _interval(metric: str, rows: list[dict[str, Any]], entry: EvalTask) -> tuple[float, float]:
    """Wilson for the task's 0/1 metrics (``EvalTask.wilson``), a bootstrap for the others."""
    if metric in entry.wilson:
        values = [row[metric] for row in rows if metric in row]
        return wilson_interval(sum(values), len(values))
    return m.bootstrap_ci(metric, rows)


def _grounding(kb: str | None, top_k: int, entry: EvalTask) -> Grounding | None:
    """The server's ``Grounding`` over knowledge base ``kb`` (None without one).

    Raises:
        LmforgeError: ``kb`` for a task that reads no passages, a ``top_k`` below 1, or no
            such knowledge base.
    """
    if kb is None:
        return None
    problem = kb_problem(entry)
    if problem:
        raise LmforgeError(problem)
    if top_k < 1:
        raise LmforgeError(f"kb_top_k: must be at least 1 (got {top_k})")
    return Grounding(KnowledgeBase.open(kb), top_k)


def _last_user(messages: list[dict[str, str]]) -> str:
    """The newest user turn: what the server retrieves passages for."""
    users = [x["content"] for x in messages if x["role"] == "user" and x["content"].strip()]
    if not users:
        raise LmforgeError("kb: an example has no user turn to retrieve passages for")
    return users[-1]


def _score_citations(
    grounding: Grounding,
    rows: list[dict[str, Any]],
    passages: list[list[Hit]],
    generated: list[str],
    repairs: list[list[dict[str, Any]]],
) -> None:
    """Add each row's passages and citations; a right answer (every keyword in it) also
    gets ``citation_precision``: 1.0 when a passage it cites holds every keyword, for the
    served answer (``row["prediction"]``, its markers verified) and, as
    ``generated_citation_precision``, for the markers the model ``generated``."""
    for row, hits, answer, fixed in zip(rows, passages, generated, repairs, strict=True):
        cited = _cited(grounding.citations(hits, row["prediction"]))
        row["passages"] = [hit.chunk["id"] for hit in hits]
        row["cited"] = [c["index"] for c in cited]
        row["cited_by"] = cited[0]["cited_by"] if cited else None
        if fixed:
            row["generated"], row["citation_repairs"] = answer, fixed
        if row.get("keyword_accuracy") == 1.0:
            row["citation_precision"] = _cites_keywords(cited, row["keywords"])
            own = _cited(grounding.citations(hits, answer))
            row["generated_citation_precision"] = _cites_keywords(own, row["keywords"])


def _cited(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages an answer cites: those it marks, or (an answer without any marker)
    those whose facts it states."""
    marked = [c for c in citations if c["cited_by"] == "marker"]
    return marked or [c for c in citations if c["cited_by"] == "content"]


def _cites_keywords(cited: list[dict[str, Any]], keywords: list[str]) -> float:
    return m.cites_keywords([f"{c['title'] or ''}\n{c['text']}" for c in cited], keywords)


def read_eval_data(path: Path, task: str) -> list[dict[str, Any]]:
    """The records of a JSON Lines eval file, each checked for the fields ``task`` reads.

    Raises:
        LmforgeError: an unknown task, a missing or empty file, a line that is not a JSON
            object, or a record without the task's fields (naming the file, line and
            fields).
    """
    entry = eval_task(task)
    if not path.is_file():
        raise LmforgeError(f"--data: no such file {str(path)!r} (cwd {Path.cwd()}); "
                           "pass a JSON Lines file")  # fmt: skip
    records = []
    for number, record in json_lines(path, path.read_text(encoding="utf-8")):
        problem = entry.problem(record)
        if problem:
            raise LmforgeError(f"{path}:{number}: {problem}")
        for name in entry.path_fields:
            where = (path.parent / record[name]).resolve()
            if not where.is_file():
                raise LmforgeError(
                    f"{path}:{number}: {name} {record[name]!r}: no such file (looked at "
                    f"{where}); paths are relative to the data file"
                )
        records.append(record)
    if not records:
        raise LmforgeError(f"{path}: no records; the {task} task needs at least one line")
    _give_ids(records)  # from the paths as written: the same ids on every machine
    for record in records:
        for name in entry.path_fields:
            record[name] = str((path.parent / record[name]).resolve())
    return records


def _give_ids(records: list[dict[str, Any]]) -> None:
    """An ``id`` for each record: its own, or a hash of its content. ``eval compare`` pairs
    two runs' examples by id, so a reordered or edited file never pairs unrelated
    examples."""
    seen: dict[str, int] = {}
    for record in records:
        if "id" in record:
            base = str(record["id"])
        else:
            text = json.dumps(record, sort_keys=True, ensure_ascii=False)
            base = hashlib.sha256(text.encode()).hexdigest()[:12]
        seen[base] = seen.get(base, 0) + 1
        record["id"] = base if seen[base] == 1 else f"{base}#{seen[base]}"


# --- asking the model -----------------------------------------------------------------------


def _messages(
    record: dict[str, Any],
    question: Callable[[dict[str, Any]], str],
    system: str | None,
    template: PromptTemplate | None,
) -> list[dict[str, str]]:
    """The chat messages that ask ``record``'s question (the reference answer left out)."""
    if template is not None:
        messages = template.render(record)
    elif "messages" in record:
        messages = [dict(x) for x in record["messages"][:-1]]
    else:
        messages = [{"role": "user", "content": question(record)}]
    if system is not None:
        messages = [{"role": "system", "content": system}] + [
            x for x in messages if x["role"] != "system"
        ]
    return messages


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
    answers are decoded at once, batch-invariant (``SlotRunner``): each answer is the one
    the model gives the prompt alone, whatever it was batched with.
    """
    model, tokenizer = load_causal_lm(resolve(ref))
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: merged, the same outputs faster
        model = model.merge_and_unload()
    prompt_ids = [render_chat(tokenizer, messages, model_ref=ref) for messages in prompts]
    longest = max(len(ids) for ids in prompt_ids) + max_tokens + 1
    engine = Engine(model, tokenizer, max_batch=max_batch, max_len=longest, kept_slots=0,
                    runner_class=functools.partial(SlotRunner, batch_invariant=True))  # fmt: skip
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


def _log_sample_grid(tracker: Any, rows: list[dict[str, Any]], count: int = 100) -> None:
    """The first ``count`` generated images as one picture, ``samples.png`` in the run."""
    images = [Image.open(row["generated_image"]) for row in rows[:count]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.png"
        sample_grid(images).save(path)
        tracker.log_artifact(path)


def _log_examples(tracker: Any, rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="lmforge-eval-") as tmp:
        path = Path(tmp) / EXAMPLES_ARTIFACT
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        tracker.log_artifact(path)
