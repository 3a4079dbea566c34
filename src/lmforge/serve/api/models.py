"""GET /v1/models: the models this server serves, with what clients need to use them."""

from __future__ import annotations

from typing import Any

from lmforge.serve.api.base import EndpointFamily, Routes


class Models(EndpointFamily):
    """The model list: the generation model and its adapters, the encoder, the
    classifiers."""

    def list_models(self) -> dict[str, Any]:
        served = self.served
        card = {"object": "model", "created": served.created, "owned_by": "lmforge"}
        data = []
        if served.engine is not None:
            generation = {**card, "max_model_len": served.llm().max_len, "root": served.model_name}
            data.append({"id": served.model_name, **generation, "parent": None})
            data += [{"id": a, **generation, "parent": served.model_name} for a in served.adapters]
        if served.embedder is not None:
            data.append({"id": served.embed_name, **card, "root": served.embed_name,
                         "parent": None, "dimensions": served.embedder.dimension})  # fmt: skip
        for name, classifier in served.understanding.classifiers.items():
            data.append({"id": name, **card, "root": classifier.model_ref, "parent": None,
                         "labels": classifier.labels})  # fmt: skip
        return {"object": "list", "data": data}

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.get("/v1/models")
        async def models(owner: str | None = routes.authorized) -> dict[str, Any]:
            return routes.family(cls).list_models()
