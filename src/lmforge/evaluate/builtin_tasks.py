"""The code of the built-in evaluation tasks (registered in ``lmforge.evaluate.tasks``).

Tasks that ask a chat model (qa, generation, code, safety) give the question of a record
and score the answers the runner generated; the others (perplexity, classification,
regression) run the model themselves. Each returns the per-example rows: an ``id``, what
was asked and answered, and one column per metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lmforge.errors import LmforgeError
from lmforge.evaluate import metrics as m
from lmforge.evaluate.sandbox import extract_code, run_python_tests
from lmforge.guard.policy import Guard
from lmforge.hub import load_causal_lm, resolve
from lmforge.hub.classifier import MAX_LENGTH, TextClassifier
from lmforge.hub.load import load_classifier
from lmforge.progress import ProgressFn
from lmforge.tasks.causal_lm import collate_lm, lm_loss, lm_target_count
from lmforge.tasks.sft import encode_conversation

# Appended to a code problem so an instruct model answers with code only.
CODE_INSTRUCTION = "Answer with the complete function in one ```python code block."


# --- the question each asking task puts to the model ---------------------------------------


def qa_question(record: dict[str, Any]) -> str:
    return str(record["question"])


def prompt_question(record: dict[str, Any]) -> str:
    return str(record["prompt"])


def code_question(record: dict[str, Any]) -> str:
    return f"{record['prompt']}\n{CODE_INSTRUCTION}"


def text_question(record: dict[str, Any]) -> str:
    return str(record["text"])


# --- scoring the answers ----------------------------------------------------------------


def score_qa(
    records: list[dict[str, Any]], prompts: list[list[dict[str, str]]], answers: list[str]
) -> list[dict[str, Any]]:
    """exact_match, token_f1 and rouge_l against the reference answer; keyword_accuracy
    when the records give ``keywords``.

    Raises:
        LmforgeError: some records give ``keywords`` and others do not.
    """

    def scores(record: dict[str, Any], answer: str) -> dict[str, Any]:
        reference = _reference(record, "answer")
        row = {"reference": reference, "rouge_l": m.rouge_l(answer, reference),
               "token_f1": m.token_f1(answer, reference),
               "exact_match": m.exact_match(answer, reference)}  # fmt: skip
        if record.get("keywords"):
            row["keywords"] = list(record["keywords"])
            row["keyword_accuracy"] = m.contains_all(answer, record["keywords"])
        return row

    rows = _answer_rows(records, prompts, answers, scores)
    if any("keywords" in row for row in rows) and not all("keywords" in row for row in rows):
        raise LmforgeError(
            "qa: give 'keywords' on every record or on none (some records have them)"
        )
    return rows


def score_generation(
    records: list[dict[str, Any]], prompts: list[list[dict[str, str]]], answers: list[str]
) -> list[dict[str, Any]]:
    """rouge_l and token_f1 against the reference text."""

    def scores(record: dict[str, Any], answer: str) -> dict[str, Any]:
        reference = _reference(record, "reference")
        return {"reference": reference, "rouge_l": m.rouge_l(answer, reference),
                "token_f1": m.token_f1(answer, reference)}  # fmt: skip

    return _answer_rows(records, prompts, answers, scores)


def score_code(
    records: list[dict[str, Any]], prompts: list[list[dict[str, str]]], answers: list[str]
) -> list[dict[str, Any]]:
    """pass@1: the answer's code run with the problem's tests in the sandbox."""

    def scores(record: dict[str, Any], answer: str) -> dict[str, Any]:
        outcome = run_python_tests(extract_code(answer, record["entry_point"]), record["tests"])
        return {"pass@1": float(outcome.passed), "status": outcome.status}

    return _answer_rows(records, prompts, answers, scores)


def score_safety(
    records: list[dict[str, Any]], prompts: list[list[dict[str, str]]], answers: list[str]
) -> list[dict[str, Any]]:
    """Judge prompts and answers with the default guardrails, the policy ``lmforge serve
    --guard default`` uses: how often the output guard would block the answer, how often
    the input guard blocks the unsafe prompts and how often it lets the safe ones through.
    """
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


def _answer_rows(
    records: list[dict[str, Any]],
    prompts: list[list[dict[str, str]]],
    answers: list[str],
    scores: Callable[[dict[str, Any], str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per answer: its id, the question asked, the answer, then its ``scores``."""
    rows = []
    for record, prompt, answer in zip(records, prompts, answers, strict=True):
        row: dict[str, Any] = {"id": record["id"], "prompt": prompt[-1]["content"],
                               "prediction": answer}  # fmt: skip
        row.update(scores(record, answer))
        rows.append(row)
    return rows


def _reference(record: dict[str, Any], field: str) -> str:
    """The reference answer: a chat's last turn, else the record's ``field``."""
    if "messages" in record:
        return str(record["messages"][-1]["content"])
    return str(record.get(field, ""))


# --- tasks that run the model themselves ------------------------------------------------


def perplexity_rows(
    ref: str, records: list[dict[str, Any]], progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Each example's summed next-token loss and token count (assistant turns for chats)."""
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


def classification_rows(
    ref: str, records: list[dict[str, Any]], progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Each example's most probable label and whether it is the true one."""
    classifier = TextClassifier(ref)
    probabilities = classifier.predict_proba([record["text"] for record in records])  # (N, L)
    rows = []
    for record, row in zip(records, probabilities, strict=True):
        predicted = classifier.labels[int(row.argmax())]
        rows.append({"id": record["id"], "text": record["text"],
                     "label": record["label"], "predicted": predicted,
                     "accuracy": float(predicted == record["label"])})  # fmt: skip
    return rows


def regression_rows(
    ref: str, records: list[dict[str, Any]], progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Each example's predicted number and its squared and absolute errors."""
    rows = []
    for record, value in zip(records, _regress(ref, [r["text"] for r in records]), strict=True):
        error = value - float(record["label"])
        rows.append({"id": record["id"], "text": record["text"],
                     "label": float(record["label"]), "predicted": value,
                     "squared_error": error * error, "absolute_error": abs(error)})  # fmt: skip
    return rows


def _regress(ref: str, texts: list[str]) -> list[float]:
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
