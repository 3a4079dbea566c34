"""Grounded chat (--kb), /v1/kb/{name}/search, /v1/classify, /v1/explain and sentiment
in sessions (--sentiment), on a real server over loopback with the tiny models.

The tiny models are random, so answers are gibberish; the tests check what a client
sees: passages in the prompt and citations in the response, classifier labels and
probabilities, and the escalate rule over a session's turns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import lmforge
from lmforge.hub.classifier import TextClassifier
from lmforge.retrieve.kb import Hit, KnowledgeBase
from lmforge.serve.understand import Grounding, attribute, verify_citations
from tests.servers import lmforge_server, request

ANGRY = "This is the worst lock I have ever bought."


@pytest.fixture(scope="module")
def negative_label(tiny_classifier: Path) -> str:
    """The label the tiny classifier gives ANGRY: the server treats it as negative."""
    return next(iter(TextClassifier(str(tiny_classifier)).classify([ANGRY])[0]))


@pytest.fixture(scope="module")
def calm(tiny_classifier: Path, negative_label: str) -> str:
    """A text the tiny classifier labels differently from ANGRY."""
    classifier = TextClassifier(str(tiny_classifier))
    candidates = [f"Thanks, question number {i} about my order." for i in range(40)]
    labels = classifier.classify(candidates)
    return next(text for text, p in zip(candidates, labels, strict=True)
                if next(iter(p)) != negative_label)  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tiny_causal_lm: Path, tiny_encoder: Path, tiny_classifier: Path, negative_label: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:  # fmt: skip
    home = tmp_path_factory.mktemp("understand-home")
    docs = tmp_path_factory.mktemp("docs")
    (docs / "policies.md").write_text(
        "## Returns\n\nWe accept returns within 45 days of delivery.\n\n"
        "## Warranty\n\nThe XQ-77 sensor has a 3-year warranty.\n"
    )
    env = {"LMFORGE_HOME": str(home)}
    from lmforge.retrieve.kb import KnowledgeBase

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(home))
        KnowledgeBase.create("policies", embed_ref=str(tiny_encoder)).add([docs])
    args = (
        str(tiny_causal_lm), "--served-name", "tiny", "--kb", "policies", "--kb-top-k", "2",
        "--kb-hybrid", "--classifier", f"mood={tiny_classifier}", "--sentiment", "mood",
        "--negative-labels", negative_label,
    )  # fmt: skip
    with lmforge_server(*args, env=env) as base:
        yield base


def test_chat_answers_carry_citations_of_the_retrieved_passages(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="none")
    question = [{"role": "user", "content": "What is the XQ-77 warranty?"}]
    reply = client.chat.completions.create(model="tiny", messages=question, max_tokens=3)
    citations = reply.model_extra["citations"]
    assert [c["index"] for c in citations] == [1, 2]
    assert "XQ-77" in citations[0]["text"]  # hybrid search: the keyword passage ranks first
    assert {c["source"] for c in citations} == {"policies.md"}
    assert all(c["cited"] == (c["cited_by"] is not None) for c in citations)
    # The passages are in the prompt: it is far longer than the question alone.
    assert reply.usage.prompt_tokens > 40
    # Whole answers have their markers checked (verify_citations, tested below).
    assert isinstance(reply.model_extra["citation_repairs"], list)

    stream = client.chat.completions.create(
        model="tiny", messages=question, max_tokens=3, stream=True
    )
    chunks = list(stream)
    assert chunks[0].model_extra["citations"][0]["text"] == citations[0]["text"]
    # The first chunk comes before the answer: nothing to say yet about what it cites.
    assert "cited" not in chunks[0].model_extra["citations"][0]


# --- which passages an answer used (the citations' "cited" and "cited_by") -------------

COMPANY = Path(lmforge.__file__).parent / "assets" / "datasets" / "company"


@pytest.fixture(scope="module")
def products(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The bundled products.md, chunked as ``lmforge kb build`` chunks it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(tmp_path_factory.mktemp("products-home")))
        kb = KnowledgeBase.create("products", embed_ref=str(tiny_encoder))
        kb.add([COMPANY / "products.md"])
    return kb


def _passage(kb: KnowledgeBase, title: str, contains: str) -> Hit:
    """The passage titled ``title`` holding ``contains``, as a search would return it."""
    chunk = next(c for c in kb.chunks if c["title"] == title and contains in c["text"])
    return Hit(rank=1, score=0.5, chunk=chunk)


def _cited_by(kb: KnowledgeBase, hits: list[Hit], answer: str) -> list[str | None]:
    rows = Grounding(kb).citations(hits, answer)
    assert [row["cited"] for row in rows] == [row["cited_by"] is not None for row in rows]
    return [row["cited_by"] for row in rows]


def test_an_answer_stating_the_price_without_a_marker_cites_its_passage(
    products: KnowledgeBase,
) -> None:
    lock = _passage(products, "Keystone Smart Lock", "Price: $219")
    thermostat = _passage(products, "Aura Thermostat", "Price: $149")
    hub = _passage(products, "Brightnest Hub Mini", "Price: $79")
    hits = [lock, thermostat, hub]
    for answer in (
        "The BrightNest Keystone Smart Lock costs $219.",
        "The BrightNest smart lock costs $219.",
        "It costs $219.00.",  # only one passage holds the number
        "The Keystone Smart Lock costs 219 dollars.",
        # What SmolLM2-135M-Instruct answered, grounded in the bundled documents:
        "The Keystone Smart Lock is a smart lock that can be used to lock and unlock your "
        "home. It is available for $219, which is a bit higher than the other two Keystone "
        "Smart Lock products.",
    ):
        assert _cited_by(products, hits, answer) == ["content", None, None], answer
    assert _cited_by(products, [thermostat, hub, lock], "It's $219 [3].") == [
        None, None, "marker"
    ]  # fmt: skip


def test_a_price_two_passages_hold_cites_those_about_the_same_product(
    products: KnowledgeBase,
) -> None:
    table = _passage(
        products, "Brightnest Home products", "| Keystone Smart Lock | Security | $219"
    )
    lock = _passage(products, "Keystone Smart Lock", "Price: $219")
    leak = _passage(products, "Aura Leak Sensor", "Price: $29")
    doorbell = _passage(products, "Porchlight Video Doorbell", "Porchlight Chime costs $29")
    answer = "The BrightNest Keystone Smart Lock costs $219."
    assert _cited_by(products, [table, lock, leak], answer) == ["content", "content", None]
    # Both say $29, but the doorbell's passage is about a chime, not the leak sensor.
    answer = "The Aura Leak Sensor costs $29."
    assert _cited_by(products, [doorbell, leak], answer) == [None, "content"]
    # Nothing in the sentence tells the two apart: neither is claimed.
    assert _cited_by(products, [doorbell, leak], "That is $29.") == [None, None]


def test_an_answer_quoting_a_passage_cites_it(products: KnowledgeBase) -> None:
    lock = _passage(products, "Keystone Smart Lock", "It works over Bluetooth without a hub")
    hub = _passage(products, "Brightnest Hub Mini", "Price: $79")
    quoted = "Yes: it works over Bluetooth without a hub, but remote unlocking needs one."
    assert _cited_by(products, [hub, lock], quoted) == [None, "content"]
    unrelated = "I'm not sure; I can connect you with our support team."
    assert _cited_by(products, [hub, lock], unrelated) == [None, None]


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("Returns are accepted [1].", [1]),
        ("Returns are accepted [Source 2].", [2]),
        ("Returns are accepted (1).", [1]),
        ("Returns are accepted [1][2].", [1, 2]),
        ("Returns are accepted [1, 3].", [1, 3]),
        ("Returns are accepted [1-3].", [1, 2, 3]),
        ("Returns are accepted, see source 2.", [2]),
        ("Returns are accepted (see passages 1 and 3)", [1, 3]),
        ("Returns are accepted.[^2]", [2]),
        ("(1) Pack the item. (2) Print the label.", []),  # an enumeration, no citation
        ("Returns are accepted [7].", []),  # no passage 7
    ],
)
def test_citation_markers_in_the_forms_models_write_them(answer: str, cited: list[int]) -> None:
    passages = ["Returns: send it back.", "Refunds reach you.", "Exchanges are free."]
    how = attribute(answer, passages)
    assert [i for i, h in enumerate(how, start=1) if h == "marker"] == cited
    assert "content" not in how


# Passages as the server retrieved them for the held-out questions where the quickstart's
# INT8 model stated the right fact and cited the wrong passage (2026-12-03).
SHIPPING = "Shipping\nStandard: 3 to 5 business days, $5.99. Expedited: $12.99. Overnight: $24.99."
RETURN_LABEL = "Returns\nTo start a return, go to brightnesthome.com/returns. Labels are free."
SHIPPING_FAQ = "How much does shipping cost?\nStandard costs $5.99, Expedited $12.99."
LOCK = "Keystone Smart Lock\n- Price: $219\n- Product line: Security, warranty of 2 years"
LOCK_FIT = "Keystone Smart Lock\n- Features: It fits doors from 1-3/8 to 2-1/4 inches thick."
EMAIL = "What is the support email?\nsupport@brightnesthome.com. We reply within 1 business day."
RESET = "I did not get the password reset email.\nCheck your spam folder for no-reply@b.com."


@pytest.mark.parametrize(
    ("answer", "passages", "served", "repairs"),
    [
        # the marker names a passage without the fact: pointed at those holding it
        (
            "Overnight delivery is $24.99 [3].",
            [SHIPPING, RESET, RETURN_LABEL],
            "Overnight delivery is $24.99 [1].",
            [([3], [1])],
        ),
        (
            "The $5.99 standard shipping fee is $12.99 [2].",
            [SHIPPING, RETURN_LABEL, SHIPPING_FAQ],
            "The $5.99 standard shipping fee is $12.99 [1, 3].",
            [([2], [1, 3])],
        ),
        # a cited passage holds part of what the sentence states: left as it is
        (
            "The Keystone Smart Lock is $219, and it fits doors from 1-3/8 inches [2].",
            [LOCK, LOCK_FIT, RESET],
            None,
            [],
        ),
        # a marker beyond the passages is a wrong marker too
        (
            "Standard shipping is $5.99 [5].",
            [RETURN_LABEL, SHIPPING_FAQ],
            "Standard shipping is $5.99 [2].",
            [([], [2])],
        ),
        # right already, nothing checkable, no marker, or two markers: left as written
        ("Overnight delivery is $24.99 [1].", [SHIPPING, RESET], None, []),
        ("I'm not sure, sorry [2].", [SHIPPING, RESET], None, []),
        ("Overnight delivery is $24.99.", [RESET, SHIPPING], None, []),
        ("Overnight is $24.99 [2] and standard $5.99 [2].", [SHIPPING, RESET], None, []),
        # only the sentence with the wrong marker changes
        (
            "Sorry for the wait! We reply within 1 business day [2]. Thanks.",
            [EMAIL, RESET],
            "Sorry for the wait! We reply within 1 business day [1]. Thanks.",
            [([2], [1])],
        ),
    ],
)
def test_verify_citations_points_markers_at_the_passages_holding_the_facts(
    answer: str, passages: list[str], served: str | None, repairs: list[tuple[list[int], ...]]
) -> None:
    text, made = verify_citations(answer, passages)
    assert text == (served or answer)
    assert [(r["was"], r["now"]) for r in made] == [(list(w), list(n)) for w, n in repairs]
    if made:  # the repaired sentence, as served
        assert made[-1]["sentence"] in text


def test_kb_search_endpoint(server: str) -> None:
    status, text = request(server + "/v1/kb/policies/search",
                           {"query": "XQ-77", "k": 1, "hybrid": True})  # fmt: skip
    assert status == 200, text
    body = json.loads(text)
    assert body["kb"] == "policies" and len(body["data"]) == 1
    assert "XQ-77" in body["data"][0]["text"] and body["data"][0]["rank"] == 1
    status, text = request(server + "/v1/kb/nope/search", {"query": "x"})
    assert status == 404 and "no knowledge base 'nope'" in json.loads(text)["error"]["message"]


def test_classify_and_models_list_the_classifier(server: str, negative_label: str) -> None:
    status, text = request(server + "/v1/classify", {"model": "mood", "input": [ANGRY, "ok"]})
    assert status == 200, text
    data = json.loads(text)["data"]
    assert data[0]["label"] == negative_label
    for row in data:
        assert set(row["probabilities"]) == {"negative", "neutral", "positive"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    status, text = request(server + "/v1/classify", {"model": "nope", "input": "x"})
    assert status == 404 and "served: mood" in text
    models = json.loads(request(server + "/v1/models")[1])["data"]
    assert {"id": "mood", "labels": ["negative", "neutral", "positive"]}.items() <= next(
        m for m in models if m["id"] == "mood"
    ).items()


def test_explain_endpoint_weighs_every_word(server: str) -> None:
    body = {"model": "mood", "input": ANGRY, "method": "lime", "num_samples": 40}
    status, text = request(server + "/v1/explain", body)
    assert status == 200, text
    explanation = json.loads(text)
    assert [t["token"] for t in explanation["tokens"]] != []
    assert {t["token"] for t in explanation["tokens"]} <= set(ANGRY.rstrip(".").split())
    assert {"comprehensiveness", "sufficiency"} <= set(explanation["faithfulness"])


def test_two_negative_turns_in_a_row_escalate_the_session(server: str, calm: str) -> None:
    session_id = json.loads(request(server + "/v1/sessions", {"system": "Be kind."})[1])["id"]

    def say(content: str) -> dict:
        body = {"model": "tiny", "session_id": session_id, "max_tokens": 2,
                "messages": [{"role": "user", "content": content}]}  # fmt: skip
        status, text = request(server + "/v1/chat/completions", body)
        assert status == 200, text
        return json.loads(text)

    assert say(ANGRY)["escalate"] is False  # one negative turn
    assert say(calm)["escalate"] is False  # the run is broken
    assert say(ANGRY)["escalate"] is False
    last = say(ANGRY)
    assert last["escalate"] is True and last["sentiment"]["negative"] is True
    record = json.loads(request(server + f"/v1/sessions/{session_id}")[1])
    trend = record["metadata"]["sentiment"]
    assert [t["negative"] for t in trend["turns"]] == [True, False, True, True]
    assert trend["escalate"] is True and trend["rule"].startswith("2 ")


def test_tool_results_are_not_the_customers_words(server: str, calm: str) -> None:
    """A tool's result comes back as a user turn in the prompt (data/tools.py), but the
    sentiment is the customer's: scored on their last own message, not on the result."""

    def sentiment(messages: list[dict]) -> dict:
        body = {"model": "tiny", "max_tokens": 2, "messages": messages}
        status, text = request(server + "/v1/chat/completions", body)
        assert status == 200, text
        return json.loads(text)["sentiment"]

    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order_id": "BN-1042"}'},
    }
    customer = {"role": "user", "content": calm}
    after_tool = sentiment([customer, {"role": "assistant", "content": None, "tool_calls": [call]},
                            {"role": "tool", "tool_call_id": "c1", "content": ANGRY}])  # fmt: skip
    assert after_tool == sentiment([customer])  # the same text scored: the customer's


def test_a_classifier_is_served_on_its_own(tiny_classifier: Path, tmp_path: Path) -> None:
    env = {"LMFORGE_HOME": str(tmp_path / "home")}
    with lmforge_server(str(tiny_classifier), "--served-name", "reviews", env=env) as base:
        status, text = request(base + "/v1/classify", {"model": "reviews", "input": "fine"})
        assert status == 200 and json.loads(text)["data"][0]["object"] == "classification"
        body = {"model": "reviews", "messages": [{"role": "user", "content": "hi"}]}
        status, text = request(base + "/v1/chat/completions", body)
        assert status == 404 and "serves only the classifier 'reviews'" in text


def test_the_web_page_shows_sources_moods_and_the_escalate_banner(server: str) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_serve_web import CHROMIUM, FLAGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            options = page.locator("#model option").all_inner_texts()
            assert options == ["tiny"]  # the classifier is not offered for chat
            for turn in (1, 2):
                page.fill("#input", ANGRY)
                page.click("#send")
                page.wait_for_function(
                    f"document.querySelectorAll('.sources').length === {turn} && "
                    "!document.getElementById('send').disabled"
                )
            assert page.locator(".mood").first.inner_text().startswith("sentiment: ")
            assert "policies.md" in page.locator(".sources summary").first.inner_text()
            banner = page.locator("#escalate")
            assert banner.is_visible() and "Escalate: 2 " in banner.inner_text()
            page.reload()  # the session's stored trend brings the banner back
            page.wait_for_function("document.querySelectorAll('.msg').length >= 4")
            assert page.locator("#escalate").is_visible()
        finally:
            browser.close()
