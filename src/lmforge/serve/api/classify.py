"""POST /v1/classify and /v1/explain (lmforge extensions): label probabilities from a
served classifier, and which words made it decide."""

from __future__ import annotations

from typing import Any

from lmforge.explain import explain_text
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.api.images import ImageSearch
from lmforge.serve.errors import ApiError, lmforge_errors_as
from lmforge.serve.protocol import ClassifyRequest, ExplainRequest


class Classification(EndpointFamily):
    """The classifiers a server serves (``--classifier``, or a classifier served alone)."""

    needs = "classifiers"

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        return {"root": model.model_ref, "parent": None, "labels": model.labels}

    async def classify(self, body: ClassifyRequest) -> dict[str, Any]:
        """Each input's label probabilities, most likely first (images: zero-shot with a
        served image index's text-image model)."""
        if body.model in self.served.backends.get("images", {}):
            return await self.served.family(ImageSearch).classify(body)
        classifier = self.model(body.model)
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts or any(not isinstance(text, str) or not text.strip() for text in texts):
            raise ApiError(400, "input must be non-empty text", param="input")
        rows = await self.served.compute(classifier.classify, texts)
        return {
            "object": "list",
            "model": body.model,
            "data": [
                {"object": "classification", "index": i, "label": next(iter(probabilities)),
                 "probabilities": probabilities}
                for i, probabilities in enumerate(rows)
            ],
        }  # fmt: skip

    async def explain(self, body: ExplainRequest) -> dict[str, Any]:
        """What ``lmforge explain`` prints as JSON: word weights and faithfulness."""
        classifier = self.model(body.model)
        if not body.input.strip():
            raise ApiError(400, "input must be non-empty text", param="input")
        with lmforge_errors_as(400, param="label" if body.label else "input"):
            explanation = await self.served.compute(
                lambda: explain_text(classifier, body.input, body.method, label=body.label,
                                     num_samples=body.num_samples, steps=body.steps)
            )  # fmt: skip
        return {"object": "explanation", "model": body.model, **explanation.to_dict()}

    def not_served(self, name: str) -> ApiError:
        """A 404 that lists the served classifiers, or how to serve one."""
        served = ", ".join(self.served.understanding.classifiers)
        served = served or "none (start the server with --classifier REF)"
        return ApiError(404, f"no classifier '{name}' is served; served: {served}",
                        param="model", code="model_not_found")  # fmt: skip

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/classify")
        async def classify(body: ClassifyRequest, owner: str | None = routes.authorized) -> Any:
            return await routes.family(cls).classify(body)

        @routes.app.post("/v1/explain")
        async def explain(body: ExplainRequest, owner: str | None = routes.authorized) -> Any:
            return await routes.family(cls).explain(body)
