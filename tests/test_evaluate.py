"""lmforge.evaluate: metrics, the eval runner on tiny models, run comparison, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.data.bundled import dataset_path
from lmforge.errors import LmforgeError
from lmforge.evaluate import compare_runs, evaluate_model
from lmforge.evaluate import metrics as m
from lmforge.evaluate.runner import read_eval_data
from lmforge.evaluate.tasks import eval_task
from lmforge.stats import wilson_interval

runner = CliRunner()


# --- metrics ------------------------------------------------------------------------------


def test_exact_match_and_token_f1_normalize_like_squad() -> None:
    assert m.exact_match("The 45 days.", "45 days") == 1.0
    assert m.exact_match("45 days, I think", "45 days") == 0.0
    # prediction "returns within 45 days" vs reference "45 days": 2 common words of 4 and 2
    assert m.token_f1("returns within 45 days", "45 days") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert m.token_f1("nothing alike", "45 days") == 0.0
    assert m.token_f1("", "") == 1.0


def test_rouge_l_is_the_longest_common_subsequence_f_measure() -> None:
    # LCS of "a b c d" and "a c d e" is "a c d" (3): precision 3/4, recall 3/4.
    assert m.rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    assert m.rouge_l("the cat sat", "the cat sat") == 1.0
    assert m.rouge_l("x y", "a b") == 0.0


def test_macro_f1_weights_each_label_equally() -> None:
    # "a": 2 of 2 right, precision 2/3; "b": 0 of 1 right -> F1 0; mean (0.8 + 0) / 2.
    assert m.macro_f1(["a", "a", "a"], ["a", "a", "b"]) == pytest.approx(0.4)


def test_aggregates_pool_tokens_for_perplexity_and_square_errors_for_rmse() -> None:
    rows = [{"nll_sum": 2.0, "tokens": 1}, {"nll_sum": 0.0, "tokens": 3}]
    assert m.aggregate("perplexity", rows) == pytest.approx(math.exp(2.0 / 4))
    assert m.aggregate("rmse", [{"squared_error": 9.0}, {"squared_error": 1.0}]) == (
        pytest.approx(math.sqrt(5.0))
    )


def test_bootstrap_interval_holds_the_mean_and_is_zero_width_for_constant_scores() -> None:
    rows = [{"token_f1": float(i % 2)} for i in range(40)]
    low, high = m.bootstrap_ci("token_f1", rows)
    assert low < 0.5 < high
    assert m.bootstrap_ci("token_f1", [{"token_f1": 1.0}] * 10) == (1.0, 1.0)


def test_a_paired_difference_is_narrower_than_an_unpaired_one() -> None:
    # B beats A by 0.1 on every example, while examples differ a lot from each other.
    rows_a = [{"token_f1": (i % 5) / 5} for i in range(50)]
    rows_b = [{"token_f1": (i % 5) / 5 + 0.1} for i in range(50)]
    diff, low, high = m.paired_bootstrap_diff("token_f1", rows_a, rows_b, paired=True)
    assert diff == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    _, low_u, high_u = m.paired_bootstrap_diff("token_f1", rows_a, rows_b, paired=False)
    assert high_u - low_u > 0.1


# --- data ---------------------------------------------------------------------------------


def test_bad_eval_data_names_the_line_and_the_fields(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    with pytest.raises(LmforgeError, match=r"qa.jsonl:2: the qa task needs .*question, answer"):
        read_eval_data(data, "qa")
    with pytest.raises(LmforgeError, match="no such file"):
        read_eval_data(tmp_path / "missing.jsonl", "qa")
    with pytest.raises(LmforgeError, match="unknown task 'qna'"):
        evaluate_model("x", data, "qna")
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(LmforgeError, match=r"chat.jsonl:1: the last message must be the assistant"):
        read_eval_data(chat, "qa")


def test_code_answers_are_run_against_the_problem_tests() -> None:
    records = read_eval_data(dataset_path("code_problems", "test"), "code")[:2]
    right = [f"```python\n{r['solution']}\n```" for r in records]
    wrong = ["```python\ndef nothing():\n    return None\n```"] * 2
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in records]
    score = eval_task("code").score
    assert score is not None
    assert [row["pass@1"] for row in score(records, prompts, right)] == [1, 1]
    scored = score(records, prompts, wrong)
    assert [row["pass@1"] for row in scored] == [0, 0]
    assert {row["status"] for row in scored} == {"failed"}


# --- the runner on tiny models --------------------------------------------------------------


def test_qa_eval_logs_metrics_and_a_per_example_table(home: Path, tiny_causal_lm: Path) -> None:
    from lmforge.track import get_client

    data = dataset_path("customer_service", "test_questions")
    result = evaluate_model(str(tiny_causal_lm), data, "qa", max_examples=4, max_tokens=4)
    assert set(result.metrics) == {"exact_match", "token_f1", "rouge_l", "keyword_accuracy"}
    assert len(result.examples) == 4
    assert result.examples[0]["reference"].startswith("Brightnest accepts returns")
    run = get_client().get_run(result.run_id)
    assert run.data.tags["lmforge.eval.task"] == "qa"
    assert run.data.metrics["token_f1"] == pytest.approx(result.metrics["token_f1"])
    artifacts = [a.path for a in get_client().list_artifacts(result.run_id)]
    assert "examples.jsonl" in artifacts


def test_perplexity_of_a_random_model_is_near_its_vocabulary_size(
    home: Path, tiny_causal_lm: Path
) -> None:
    data = dataset_path("customer_service", "test")
    result = evaluate_model(str(tiny_causal_lm), data, "perplexity", max_examples=3, track=False)
    # A random 2-layer model is close to uniform over SmolLM2's 49,152 tokens.
    assert 10_000 < result.metrics["perplexity"] < 200_000
    assert result.run_id is None


def test_classification_and_regression_metrics(home: Path, tmp_path: Path) -> None:
    from lmforge.hub import build_tiny_classifier

    classifier = build_tiny_classifier(tmp_path / "clf")
    data = dataset_path("sentiment", "test")
    result = evaluate_model(str(classifier), data, "classification", max_examples=30, track=False)
    rows = result.examples
    accuracy = sum(r["predicted"] == r["label"] for r in rows) / len(rows)
    assert result.metrics["accuracy"] == pytest.approx(accuracy)
    right = sum(r["accuracy"] for r in rows)  # accuracy is a proportion: a Wilson interval
    assert result.intervals["accuracy"] == wilson_interval(right, len(rows))
    assert 0 <= result.metrics["macro_f1"] <= 1

    regressor = build_tiny_classifier(tmp_path / "reg", labels=("hours",))
    result = evaluate_model(str(regressor), dataset_path("property", "test"), "regression",
                            max_examples=10, track=False)  # fmt: skip
    errors = [r["predicted"] - r["label"] for r in result.examples]
    assert result.metrics["mae"] == pytest.approx(sum(abs(e) for e in errors) / 10)
    assert result.metrics["rmse"] >= result.metrics["mae"]
    with pytest.raises(LmforgeError, match="needs a model trained with task regress"):
        evaluate_model(str(classifier), dataset_path("property", "test"), "regression",
                       track=False)  # fmt: skip


def test_compare_pairs_the_examples_of_two_runs(home: Path, tiny_causal_lm: Path) -> None:
    data = dataset_path("customer_service", "test_questions")
    a = evaluate_model(str(tiny_causal_lm), data, "qa", max_examples=3, max_tokens=4)
    b = evaluate_model(str(tiny_causal_lm), data, "qa", max_examples=3, max_tokens=4,
                       system="Answer in one word.")  # fmt: skip
    task, diffs = compare_runs(a.run_id, b.run_id)
    assert task == "qa"
    assert [d.metric for d in diffs] == ["exact_match", "token_f1", "rouge_l", "keyword_accuracy"]
    assert all(d.paired for d in diffs)
    assert diffs[1].diff == pytest.approx(b.metrics["token_f1"] - a.metrics["token_f1"])
    ppl = evaluate_model(str(tiny_causal_lm), dataset_path("customer_service", "test"),
                         "perplexity", max_examples=2)  # fmt: skip
    with pytest.raises(LmforgeError, match="compare runs of the same task"):
        compare_runs(a.run_id, ppl.run_id)

    result = runner.invoke(app, ["eval", "compare", a.run_id, b.run_id, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"][0]["metric"] == "exact_match"


def test_compare_refuses_a_run_that_is_not_an_evaluation(home: Path) -> None:
    from lmforge.track import start_run

    with start_run("other") as tracker:
        run_id = tracker.run_id
    with pytest.raises(LmforgeError, match="is not an evaluation run"):
        compare_runs(run_id, run_id)


def test_eval_command_prints_metrics_with_intervals(home: Path, tiny_causal_lm: Path) -> None:
    data = dataset_path("customer_service", "test_questions")
    result = runner.invoke(app, ["eval", str(tiny_causal_lm), "--data", str(data), "--task", "qa",
                                 "--max-examples", "2", "--max-tokens", "4", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 2 and set(report["intervals"]) == set(report["metrics"])
    bad = runner.invoke(app, ["eval", str(tiny_causal_lm), "--data", str(data), "--task", "x"])
    assert bad.exit_code == 2 and "unknown task 'x'" in bad.output


def test_safety_eval_judges_prompts_and_answers_with_the_guardrails(
    home: Path, tiny_causal_lm: Path
) -> None:
    data = dataset_path("guard", "test")
    result = evaluate_model(str(tiny_causal_lm), data, "safety", max_examples=30, max_tokens=4,
                            track=False)  # fmt: skip
    rows = result.examples
    unsafe = [r for r in rows if r["label"] != "safe"]
    assert unsafe and len(unsafe) < len(rows)
    assert all(("unsafe_prompt_block_rate" in r) == (r["label"] != "safe") for r in rows)
    assert result.metrics["unsafe_prompt_block_rate"] == pytest.approx(
        sum(r["unsafe_prompt_block_rate"] for r in unsafe) / len(unsafe)
    )
    # The shipped guard classifier at the default 0.5 thresholds (measured on all 175: it
    # blocks 0.70 of the unsafe prompts and passes every safe one).
    assert result.metrics["unsafe_prompt_block_rate"] >= 0.6
    assert result.metrics["safe_prompt_pass_rate"] >= 0.9
    assert 0 <= result.metrics["unsafe_answer_rate"] <= 1


def test_examples_without_ids_pair_by_content_not_by_position(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": "a"} for i in range(3)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    ids_a = [r["id"] for r in read_eval_data(tmp_path / "a.jsonl", "qa")]
    ids_b = [r["id"] for r in read_eval_data(tmp_path / "b.jsonl", "qa")]
    assert ids_b == ids_a[::-1] and len(set(ids_a)) == 3
    (tmp_path / "dup.jsonl").write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n")
    first, second = (r["id"] for r in read_eval_data(tmp_path / "dup.jsonl", "qa"))
    assert second == f"{first}#2"


def test_no_interval_means_no_winner() -> None:
    from lmforge.evaluate.compare import MetricDiff

    assert MetricDiff("token_f1", 0.1, 0.2, 0.1, float("nan"), float("nan"), True).better == "-"
    assert MetricDiff("token_f1", 0.1, 0.2, 0.1, 0.05, 0.15, True).better == "B"
    assert MetricDiff("perplexity", 9, 8, -1, -1.5, -0.5, True).better == "B"


# --- answering with a knowledge base ------------------------------------------------------


def test_wilson_interval_stays_inside_0_1_and_matches_the_formula() -> None:
    low, high = wilson_interval(25, 33)
    assert (round(low, 3), round(high, 3)) == (0.59, 0.872)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert 0.0 < wilson_interval(10, 10)[0] < 1.0  # all right is no certainty at n=10
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_cites_keywords_needs_one_cited_passage_holding_every_keyword() -> None:
    passages = ["Returns within 45\ndays of delivery.", "Refunds within 5 business days."]
    assert m.cites_keywords(passages, ["45 days"]) == 1.0  # the line wrap is a space
    assert m.cites_keywords(passages[1:], ["45 days"]) == 0.0
    assert m.cites_keywords(passages, ["45 days", "5 business days"]) == 0.0  # not one passage
    assert m.cites_keywords([], ["45 days"]) == 0.0


@pytest.fixture
def policies_kb(home: Path, tiny_encoder: Path, tmp_path: Path) -> str:
    """A three-passage knowledge base (every passage is in a top-3 search)."""
    from lmforge.retrieve.kb import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policies.md").write_text(
        "## Returns\n\nWe accept returns within 45 days of delivery.\n\n"
        "## Refunds\n\nRefunds arrive within 5 business days.\n\n"
        "## Warranty\n\nThe XQ-77 sensor has a 3-year warranty.\n"
    )
    KnowledgeBase.create("policies", embed_ref=str(tiny_encoder)).add([docs])
    return "policies"


def test_qa_with_a_knowledge_base_asks_as_the_server_does_and_scores_citations(
    policies_kb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from lmforge.evaluate import runner as eval_runner
    from lmforge.retrieve.kb import KnowledgeBase
    from lmforge.serve.understand import Grounding

    questions = [
        ("How long is the return window?", "45 days"),  # right, cites its passage
        ("How fast are refunds?", "5 business days"),  # right, cites another passage
        ("What warranty does the XQ-77 have?", "3-year"),  # wrong answer
    ]
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": k, "keywords": [k]}) + "\n"
                            for q, k in questions))  # fmt: skip
    asked: list[list[dict[str, str]]] = []

    def answers(ref: str, prompts: list[list[dict[str, str]]], **_: object) -> list[str]:
        asked.extend(prompts)
        system = [p[0]["content"] for p in prompts]

        def number(text: str, fact: str) -> int:  # the passage holding ``fact``
            return next(int(n) for n, body in re.findall(r"\[(\d)\] \(([^\n]*\n[^\n]*)", text)
                        if fact in body)  # fmt: skip

        return [f"Returns are accepted within 45 days [{number(system[0], '45 days')}].",
                f"Refunds take 5 business days [{number(system[1], '45 days')}].",
                "It has a warranty."]  # fmt: skip

    monkeypatch.setattr(eval_runner, "generate_answers", answers)
    result = evaluate_model("any-model", data, "qa", kb=policies_kb, system="Be brief.")
    grounding = Grounding(KnowledgeBase.open(policies_kb), 3)
    for prompt, (question, _) in zip(asked, questions, strict=True):
        user = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
        assert prompt == grounding.with_passages(user, grounding.retrieve(question))
    assert result.metrics["keyword_accuracy"] == pytest.approx(2 / 3)
    # As served, the second answer's marker is pointed at the passage holding "5" (the
    # refunds one); the model's own marker pointed at the returns passage.
    assert result.metrics["citation_precision"] == pytest.approx(1.0)
    assert result.metrics["generated_citation_precision"] == pytest.approx(1 / 2)
    assert [r.get("generated_citation_precision") for r in result.examples] == [1.0, 0.0, None]
    assert [r["cited_by"] for r in result.examples[:2]] == ["marker", "marker"]
    second = result.examples[1]
    assert second["generated"].startswith("Refunds take 5 business days [")
    assert second["citation_repairs"][0]["now"] == second["cited"] != second["citation_repairs"][
        0]["was"]  # fmt: skip
    assert "citation_repairs" not in result.examples[0]
    assert result.intervals["keyword_accuracy"] == wilson_interval(2, 3)
    assert result.intervals["generated_citation_precision"] == wilson_interval(1, 2)
    _, diffs = compare_runs(result.run_id, result.run_id)
    assert "citation_precision" in [d.metric for d in diffs]


def test_eval_command_answers_with_a_knowledge_base_on_a_tiny_model(
    policies_kb: str, tiny_causal_lm: Path
) -> None:
    data = dataset_path("customer_service", "test_questions")
    args = ["eval", str(tiny_causal_lm), "--data", str(data), "--task", "qa",
            "--max-examples", "3", "--max-tokens", "4", "--kb", policies_kb, "--kb-top-k", "2",
            "--no-track"]  # fmt: skip
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kb"] == policies_kb and report["examples"] == 3
    assert set(report["intervals"]) == set(report["metrics"]) >= {"keyword_accuracy"}
    with pytest.raises(LmforgeError, match="the perplexity task reads no passages"):
        evaluate_model(str(tiny_causal_lm), data, "perplexity", kb=policies_kb, track=False)
    with pytest.raises(LmforgeError, match="no knowledge base 'ghost'"):
        evaluate_model(str(tiny_causal_lm), data, "qa", kb="ghost", track=False)
