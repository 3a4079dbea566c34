"""GET /v1/models: the models this server serves, with what clients need to use them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmforge.serve.api.base import EndpointFamily, Routes


class Models(EndpointFamily):
    """The model list: every served model of every kind (``OpenAIHandler.backends``),
    each described by the first family that needs its kind."""

    def list_models(self, families: Sequence[type[EndpointFamily]]) -> dict[str, Any]:
        served = self.served
        card = {"object": "model", "created": served.created, "owned_by": "lmforge"}
        data = []
        for kind, models in served.backends.items():
            describer = next((f for f in families if f.needs == kind), EndpointFamily)
            for name, model in models.items():
                data.append({"id": name, **card, **describer.describe_model(served, name, model)})
        return {"object": "list", "data": data}

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.get("/v1/models")
        async def models(owner: str | None = routes.authorized) -> dict[str, Any]:
            return routes.family(cls).list_models(routes.families)
