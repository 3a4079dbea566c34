"""The serving layer's plug-in points: a new endpoint family served from one module and one
registration, one mapping of library errors to API errors, knowledge bases reopened when
a new version is saved."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lmforge.errors import LmforgeError
from lmforge.retrieve.kb import KnowledgeBase
from lmforge.serve import app as app_module
from lmforge.serve.api import FAMILIES
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.api.kb import CurrentKnowledgeBases, KnowledgeBaseSearch
from lmforge.serve.errors import ApiError, api_error
from lmforge.serve.protocol import KbSearchRequest
from lmforge.serve.requests import QueueFull
from lmforge.serve.store import ServeStore


class Forecasts(EndpointFamily):
    """A family a plug-in might add, POST /v1/forecast/{model}: it needs forecasting models
    (a kind no built-in family serves)."""

    needs = "forecasting"

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/forecast/{model}")
        async def score(model: str, body: dict[str, float], owner: Any = routes.authorized) -> Any:
            return {"model": model, "score": routes.family(cls).model(model)(body["x"])}


def test_a_new_family_serves_once_registered_and_answers_404_without_its_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "FAMILIES", (*FAMILIES, Forecasts))
    handler = OpenAIHandler(None, "churn")
    app = app_module.create_app(lambda: handler, store=ServeStore(tmp_path / "serve.db"))
    with TestClient(app) as client:
        app.state.lmforge.loaded.wait(30)
        missing = client.post("/v1/forecast/churn", json={"x": 2.0})
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "message": "the model 'churn' is not loaded: this server serves no forecasting models "
            "(start it with one to use this endpoint)",
            "type": "not_found_error",
            "param": "model",
            "code": "model_not_found",
        }
        handler.backends["forecasting"] = {"churn": lambda x: x / 4}  # what a loader would add
        assert client.post("/v1/forecast/churn", json={"x": 2.0}).json() == {
            "model": "churn",
            "score": 0.5,
        }
        unknown = client.post("/v1/forecast/fraud", json={"x": 2.0}).json()["error"]["message"]
        assert unknown == (
            "the model 'fraud' is not served here; ask for one of its forecasting models: churn"
        )
        # its models are listed with the rest, and the families it always had still answer
        assert client.get("/v1/models").json()["data"] == [
            {"id": "churn", "object": "model", "created": handler.created, "owned_by": "lmforge",
             "root": "churn", "parent": None}
        ]  # fmt: skip
        chat = client.post("/v1/chat/completions", json={"model": "churn", "messages": [
            {"role": "user", "content": "hi"}]})  # fmt: skip
        assert chat.status_code == 404 and "no text generation model" in chat.text


def test_library_errors_become_api_errors_in_one_place() -> None:
    named = api_error(LmforgeError("no knowledge base 'x'"), 404, code="kb_not_found")
    assert (named.status, named.message, named.code) == (
        404,
        "no knowledge base 'x'",
        "kb_not_found",
    )
    full = api_error(QueueFull("the queue is full (4 waiting requests)"), 400)
    assert (full.status, full.headers) == (503, {"Retry-After": "1"})
    assert full.message == "the queue is full (4 waiting requests); retry shortly."
    # an error no endpoint placed is the server's fault, and its message stays private
    for unexpected in (LmforgeError("/srv/secret/path is broken"), ValueError("x")):
        body = api_error(unexpected).body()["error"]
        assert body["message"] == f"internal error: {type(unexpected).__name__}"
        assert body["type"] == "server_error"
    passed = ApiError(400, "kept", param="input")
    assert api_error(passed) is passed


def test_a_knowledge_base_is_reopened_when_a_new_version_is_saved(
    home: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text("# Returns\n\nReturn an item within 45 days.\n")
    KnowledgeBase.create("policies", embed_ref=str(tiny_encoder)).add([docs])
    opened = CurrentKnowledgeBases()
    first = opened.get("policies")
    assert opened.get("policies") is first  # unchanged on disk: not read again
    (tmp_path / "shipping.md").write_text("# Shipping\n\nOrders ship within 2 days.\n")
    KnowledgeBase.open("policies").add([tmp_path / "shipping.md"])  # `lmforge kb add`
    second = opened.get("policies")
    assert second.version != first.version and len(second.chunks) == len(first.chunks) + 1
    with pytest.raises(LmforgeError, match="no knowledge base 'nope'"):
        opened.get("nope")
    search = OpenAIHandler(None, "x").family(KnowledgeBaseSearch)
    with pytest.raises(ApiError) as missing:
        asyncio.run(search.search("nope", KbSearchRequest(query="returns")))
    assert (missing.value.status, missing.value.code) == (404, "kb_not_found")
