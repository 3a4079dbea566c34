"""Explanations: LIME and integrated gradients weigh the same words, the faithfulness
metrics compute ERASER's formulas, the HTML page is escaped and self-contained, and the
CLI explains one text or a dataset (tracked in MLflow). Runs on the tiny classifier."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.errors import LmforgeError
from lmforge.explain import (
    Explanation,
    evaluate_explanations,
    explain_tabular,
    explain_text,
    faithfulness,
    render_html,
    words_of,
)
from lmforge.explain.faithfulness import deletion_steps
from lmforge.hub.classifier import TextClassifier

TEXT = "The lock jammed twice, but support replaced it within a week."
WORDS = [
    "The",
    "lock",
    "jammed",
    "twice",
    "but",
    "support",
    "replaced",
    "it",
    "within",
    "a",
    "week",
]
LABELS = ["negative", "neutral", "positive"]
runner = CliRunner()


@pytest.fixture(scope="module")
def classifier(tiny_classifier: Path) -> TextClassifier:
    return TextClassifier(str(tiny_classifier))


# --- LIME and integrated gradients ---------------------------------------------------------


@pytest.mark.parametrize("method", ["lime", "ig"])
def test_each_method_weighs_every_word_of_the_text(classifier: TextClassifier, method: str) -> None:
    explanation = explain_text(classifier, TEXT, method, num_samples=100, steps=16)
    probabilities = classifier.predict_proba([TEXT])[0]
    assert [word for word, _ in explanation.weights] == WORDS
    assert any(weight != 0 for _, weight in explanation.weights)
    assert explanation.label == LABELS[int(np.argmax(probabilities))]
    assert list(explanation.probabilities) == LABELS
    np.testing.assert_allclose(list(explanation.probabilities.values()), probabilities, atol=1e-6)
    curve = explanation.faithfulness["deletion_curve"]
    assert [point["removed"] for point in curve] == list(range(len(WORDS) + 1))
    assert curve[0]["probability"] == pytest.approx(explanation.probabilities[explanation.label])
    assert explanation.seconds > 0


def test_lime_is_reproducible_and_explains_the_label_asked_for(
    classifier: TextClassifier,
) -> None:
    first = explain_text(classifier, TEXT, "lime", label="neutral", num_samples=100)
    second = explain_text(classifier, TEXT, "lime", label="neutral", num_samples=100)
    assert first.label == "neutral"
    assert first.weights == second.weights
    assert first.details["num_samples"] == 100


def test_ig_attributions_add_up_to_the_probability_change_from_the_baseline(
    classifier: TextClassifier,
) -> None:
    text = "the thermostat stopped working after the update"  # no punctuation
    explanation = explain_text(classifier, text, "ig", steps=50)
    label = LABELS.index(explanation.label)
    ids = classifier.tokenizer(text, return_tensors="pt")["input_ids"]  # (1, T)
    pad = classifier.tokenizer.pad_token_id
    baseline = torch.tensor([[ids[0, 0].item()] + [pad] * (ids.shape[1] - 2) + [ids[0, -1].item()]])
    with torch.no_grad():
        p_baseline = torch.softmax(classifier.model(input_ids=baseline).logits, -1)[0, label]
    p_text = explanation.probabilities[explanation.label]
    delta = explanation.details["convergence_delta"]
    # Completeness: the attributions add up to p(x) - p(baseline), up to captum's delta;
    # [CLS] and [SEP] equal the baseline, so only the words carry attribution.
    assert explanation.details["non_word_attribution"] == 0.0
    assert explanation.details["baseline_probability"] == pytest.approx(float(p_baseline), 1e-5)
    total = sum(weight for _, weight in explanation.weights)
    assert total == pytest.approx(p_text - float(p_baseline) + delta, abs=1e-5)
    assert abs(delta) < 0.01


def test_ig_adds_up_subwords_repeats_and_punctuation(classifier: TextClassifier) -> None:
    text = "firmware broke: firmware, I said."
    assert classifier.tokenizer.tokenize("firmware") == ["firm", "##ware"]
    explanation = explain_text(classifier, text, "ig", steps=8)
    assert [word for word, _ in explanation.weights] == ["firmware", "broke", "I", "said"]
    details = explanation.details
    assert details["non_word_attribution"] != 0.0  # ":", "," and "." are tokens too
    # Every token's attribution lands in exactly one place: a word or the punctuation.
    total = sum(weight for _, weight in explanation.weights) + details["non_word_attribution"]
    expected = explanation.probabilities[explanation.label] - details["baseline_probability"]
    assert total == pytest.approx(expected + details["convergence_delta"], abs=1e-5)


def test_bad_requests_name_the_problem(classifier: TextClassifier) -> None:
    with pytest.raises(
        LmforgeError, match="unknown explanation method 'shap'; pick one of lime, ig"
    ):
        explain_text(classifier, TEXT, "shap")
    with pytest.raises(LmforgeError, match="text: empty"):
        explain_text(classifier, "  ")
    with pytest.raises(LmforgeError, match=re.escape("no words in '!!! ...'")):
        explain_text(classifier, "!!! ...")
    with pytest.raises(LmforgeError, match=r"'happy' is not one of .*negative, neutral, positive"):
        explain_text(classifier, TEXT, label="happy")
    with pytest.raises(LmforgeError, match="num_samples: 1 is too few"):
        explain_text(classifier, TEXT, num_samples=1)


def test_ig_refuses_a_quantized_model_and_lime_still_explains_it(tiny_classifier: Path) -> None:
    from lmforge.hub.quantized import quantize_layers

    quantized = TextClassifier(str(tiny_classifier))
    quantize_layers(quantized.model, "int8-dynamic")
    with pytest.raises(LmforgeError, match=r"is quantized .* explain it with method 'lime'"):
        explain_text(quantized, TEXT, "ig")
    assert len(explain_text(quantized, TEXT, "lime", num_samples=50).weights) == len(WORDS)


def test_ig_refuses_an_onnx_export_and_lime_still_explains_it(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    from lmforge.compress.onnx import export_onnx
    from lmforge.hub import resolve

    export_onnx(resolve(str(tiny_classifier)), tmp_path / "onnx", quant="none")
    exported = TextClassifier(str(tmp_path / "onnx"))
    with pytest.raises(LmforgeError, match=r"is an ONNX export, .* explain it with method 'lime'"):
        explain_text(exported, TEXT, "ig")
    with pytest.raises(LmforgeError, match="is an ONNX export"):  # before any LIME work
        evaluate_explanations(exported, [{"text": TEXT}], ("lime", "ig"), track=False)
    assert len(explain_text(exported, TEXT, "lime", num_samples=50).weights) == len(WORDS)


# --- faithfulness --------------------------------------------------------------------------

REVIEW = "good film and good cast but bad end"  # 8 words, 7 distinct ("good" twice)


def fraction_good(texts: list[str]) -> np.ndarray:
    """A classifier whose p(positive) is the fraction of the words that are "good"."""
    rows = []
    for text in texts:
        words = re.findall(r"\w+", text)
        positive = words.count("good") / len(words) if words else 0.0
        rows.append([1 - positive, positive])
    return np.array(rows)


def test_faithfulness_computes_erasers_formulas_exactly() -> None:
    calls = []

    def predict(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return fraction_good(texts)

    # "good" last: removing the other words *raises* p(positive).
    ranking = ["film", "and", "cast", "but", "bad", "end", "good"]
    weights = [(word, float(len(ranking) - i)) for i, word in enumerate(ranking)]
    scores = faithfulness(predict, REVIEW, weights, label_index=1)
    assert calls == [1 + 5 + 5 + 7]  # one batch: x, 5 bins removed, 5 bins kept, 7 steps
    # 7 words: bins of 1, 5, 10 and 20% hold 1 word, 50% holds 3 (at least one a bin).
    without_top = [2 / 7] * 4 + [2 / 5]  # "good" twice among the words left
    only_top = [0.0] * 5  # the top words hold no "good"
    assert scores["comprehensiveness"] == pytest.approx(np.mean([0.25 - p for p in without_top]))
    assert scores["sufficiency"] == pytest.approx(np.mean([0.25 - p for p in only_top]))
    curve = [2 / 7, 2 / 6, 2 / 5, 2 / 4, 2 / 3, 2 / 2, 0.0]  # last: every word removed
    assert scores["aopc_deletion"] == pytest.approx(np.mean([0.25 - p for p in curve]))
    assert scores["deletion_curve"] == [
        {"removed": removed, "probability": pytest.approx(p)}
        for removed, p in enumerate([0.25, *curve])
    ]


def test_the_faithful_ranking_scores_better_on_all_three_metrics() -> None:
    faithful = [
        ("good", 1.0),
        ("film", 0.0),
        ("and", 0.0),
        ("cast", 0.0),
        ("but", 0.0),
        ("bad", -0.5),
        ("end", 0.0),
    ]
    backwards = [(word, -weight) for word, weight in faithful]
    good = faithfulness(fraction_good, REVIEW, faithful, label_index=1)
    bad = faithfulness(fraction_good, REVIEW, backwards, label_index=1)
    assert good["comprehensiveness"] == pytest.approx(0.25)  # "good" gone: p drops to 0
    assert good["sufficiency"] == pytest.approx(np.mean([-0.75] * 4 + [0.25 - 2 / 4]))
    assert good["comprehensiveness"] > bad["comprehensiveness"]
    assert good["sufficiency"] < bad["sufficiency"]
    assert good["aopc_deletion"] > bad["aopc_deletion"]


def test_long_texts_are_deleted_in_twenty_steps_and_every_word_needs_a_weight() -> None:
    assert deletion_steps(5) == [1, 2, 3, 4, 5]
    steps = deletion_steps(45)
    assert len(steps) == 20 and steps[0] == 1 and steps[-1] == 45
    with pytest.raises(LmforgeError, match=r"no weight for the words \['end'\]"):
        faithfulness(fraction_good, REVIEW, [(w, 1.0) for w in words_of(REVIEW)[:-1]], 1)


# --- HTML ----------------------------------------------------------------------------------


def test_html_is_escaped_self_contained_and_shows_both_methods(
    classifier: TextClassifier,
) -> None:
    text = 'Broken <script>alert("x")</script> & useless'
    lime = explain_text(classifier, text, "lime", num_samples=50)
    ig = explain_text(classifier, text, "ig", steps=8)
    page = render_html([lime, ig])
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page
    for paragraph in re.findall(r'<p class="text">(.*?)</p>', page):
        assert re.sub(r"<span [^>]*>|</span>", "", paragraph) == html.escape(text)
    assert not re.search(r"https?:|src=|href=|@import|url\(", page)
    assert "LIME: why" in page and "Integrated gradients: why" in page
    assert page.count("<span style=") >= 2 * len(words_of(text))
    for name in ("comprehensiveness", "sufficiency", "aopc_deletion"):
        assert page.count(name) == 2
    single = lime.to_html()
    assert "LIME: why" in single and "Integrated gradients" not in single


def test_html_colours_support_green_and_opposition_red_and_escapes_labels() -> None:
    explanation = Explanation(
        text="great price, awful battery",
        method="lime",
        label="<pos>",
        probabilities={"<pos>": 0.9, "neg": 0.1},
        weights=[("great", 0.4), ("price", 0.0), ("awful", -0.2), ("battery", 0.1)],
        model='run:"abc"',
    )
    page = explanation.to_html()
    assert "&lt;pos&gt;" in page and "<pos>" not in page and "run:&quot;abc&quot;" in page
    assert 'rgba(22, 163, 74, 0.90)" title="+0.4000">great</span>' in page
    assert 'rgba(220, 38, 38, 0.49)" title="-0.2000">awful</span>' in page


# --- tabular -------------------------------------------------------------------------------


def test_tabular_lime_ranks_the_only_feature_that_matters_first() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 4))  # (N, F)
    target = (features[:, 0] > 0).astype(int)  # only feature 0 decides
    model = LogisticRegression().fit(features, target)
    names = ["temperature", "load", "vibration", "humidity"]
    explanation = explain_tabular(
        model.predict_proba,
        features,
        names,
        features[0],
        class_names=["ok", "fault"],
        num_samples=500,
    )
    assert explanation.top(1)[0][0] == "temperature"
    assert [name for name, _ in explanation.weights] == names
    assert explanation.label == ["ok", "fault"][int(model.predict(features[:1])[0])]
    assert explanation.faithfulness == {} and explanation.unit == "feature"
    assert "temperature" in explanation.details["rules"]["temperature"]
    payload = explanation.to_dict()
    assert [t["token"] for t in payload["tokens"]] == names
    assert "top features by |weight|" in explanation.to_html()
    with pytest.raises(LmforgeError, match=r"row: shape \(3,\), but feature_names lists 4"):
        explain_tabular(model.predict_proba, features, names, features[0, :3])


# --- datasets and the CLI -----------------------------------------------------------------


def test_explain_text_json_is_the_to_dict_shape(tiny_classifier: Path) -> None:
    # Options may come before the arguments of the default command.
    result = runner.invoke(
        app, ["explain", "--json", "--samples", "50", str(tiny_classifier), TEXT]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "method",
        "label",
        "probabilities",
        "tokens",
        "faithfulness",
        "seconds",
        "details",
    }
    assert payload["method"] == "lime" and payload["label"] in LABELS
    assert [t["token"] for t in payload["tokens"]] == WORDS
    assert {"comprehensiveness", "sufficiency", "aopc_deletion"} <= set(payload["faithfulness"])


def test_explain_both_methods_prints_the_tables_and_writes_the_page(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    page = tmp_path / "why.html"
    # The explicit `text` subcommand reaches the same command as `explain REF TEXT`.
    result = runner.invoke(
        app,
        [
            "explain",
            "text",
            "--method",
            "both",
            str(tiny_classifier),
            TEXT,
            "--samples",
            "50",
            "--steps",
            "8",
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lime: why" in result.stdout and "ig: why" in result.stdout
    assert "comprehensiveness (higher is more faithful)" in result.stdout
    assert "sufficiency (lower is more faithful)" in result.stdout
    assert "Integrated gradients: why" in page.read_text()


def test_explain_errors_exit_2_with_the_fix(tiny_classifier: Path) -> None:
    result = runner.invoke(app, ["explain", str(tiny_classifier), TEXT, "--method", "shap"])
    assert result.exit_code == 2
    assert "--method: unknown 'shap'; pick lime, ig or both" in result.stderr
    result = runner.invoke(app, ["explain", str(tiny_classifier), TEXT, "--label", "happy"])
    assert result.exit_code == 2 and "negative, neutral, positive" in result.stderr
    assert "eval" in runner.invoke(app, ["explain", "--help"]).stdout


def test_explain_warns_when_integrated_gradients_did_not_converge(tiny_classifier: Path) -> None:
    few = runner.invoke(
        app, ["explain", str(tiny_classifier), TEXT, "--method", "ig", "--steps", "1"]
    )
    assert few.exit_code == 0, few.output
    assert "convergence delta is" in few.stderr and "try --steps 4" in few.stderr
    enough = runner.invoke(app, ["explain", str(tiny_classifier), TEXT, "--method", "ig"])
    assert enough.exit_code == 0 and "warning" not in enough.stderr


def test_explain_eval_compares_the_methods_and_logs_a_run(
    home: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from lmforge.track.mlflow_store import tracking_uri

    data = tmp_path / "reviews.jsonl"
    reviews = [
        {"text": TEXT, "label": "positive"},
        {"text": "Awful. It broke.", "label": "negative"},
        {"text": "never read", "label": "neutral"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in reviews))
    result = runner.invoke(
        app,
        [
            "explain",
            "eval",
            str(tiny_classifier),
            str(data),
            "--method",
            "lime,ig,random",
            "--samples",
            "40",
            "--steps",
            "8",
            "--limit",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    for method in ("lime", "ig", "random"):
        assert re.search(rf"│ {method} +│ 2 ", result.stdout), result.stdout
    run_id = re.search(r"MLflow run (\w+) \(experiment 'explain'\)", result.stdout).group(1)
    client = MlflowClient(tracking_uri())
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "explain"
    assert run.data.params["model"] == str(tiny_classifier)
    assert run.data.params["methods"] == '["lime","ig","random"]'
    assert run.data.params["n"] == "2" and run.data.params["num_samples"] == "40"
    for key in ("lime/comprehensiveness", "ig/sufficiency", "random/aopc_deletion", "lime/seconds"):
        assert key in run.data.metrics
    assert 0.0 <= run.data.metrics["accuracy"] <= 1.0
    local = client.download_artifacts(run_id, "explanations.jsonl", str(tmp_path))
    lines = [json.loads(line) for line in Path(local).read_text().splitlines()]
    assert [(line["index"], line["method"]) for line in lines] == [
        (i, m) for i in range(2) for m in ("lime", "ig", "random")
    ]
    assert lines[0]["text"] == TEXT and lines[0]["gold_label"] == "positive"


def test_explain_eval_without_tracking_and_a_record_without_text(
    classifier: TextClassifier, tiny_classifier: Path, tmp_path: Path
) -> None:
    data = tmp_path / "texts.jsonl"
    data.write_text(json.dumps({"text": "Great plug."}) + "\n")
    result = runner.invoke(
        app,
        ["explain", "eval", str(tiny_classifier), str(data), "--method", "random", "--no-track"],
    )
    assert result.exit_code == 0, result.output
    assert "random" in result.stdout and "MLflow run" not in result.stdout
    with pytest.raises(LmforgeError, match=r"records\[1\]: no 'text' string"):
        evaluate_explanations(classifier, [{"text": "ok"}, {"body": "x"}], track=False)
    with pytest.raises(LmforgeError, match=r"unknown explanation method.*'shap'"):
        evaluate_explanations(classifier, [{"text": "ok"}], ["shap"], track=False)
