"""POST /v1/score/{name} and GET /v1/score/{name}/drift (lmforge extensions): real-time
scoring of table rows by a served tabular model (``lmforge.serve.scoring``) or of sensor
windows by a remaining-useful-life model (``lmforge.serve.series_scoring``), each answer
with its reasons, and the drift of what was scored against the training data."""

from __future__ import annotations

from typing import Any

from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.errors import ApiError, lmforge_errors_as
from lmforge.serve.protocol import ScoreRequest
from lmforge.serve.scoring import Scorer
from lmforge.serve.series_scoring import SeriesScorer

MAX_ROWS = 1024  # per request


class Scoring(EndpointFamily):
    """The scoring models a server serves (``--scorer NAME=REF``, or one served alone)."""

    needs = "scoring"

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        return {"root": model.ref, "parent": None, "features": model.features,
                "architecture": model.kind, "compiled": model.compiled}  # fmt: skip

    async def score(self, name: str, body: ScoreRequest) -> dict[str, Any]:
        """Each row's (or unit's) score, decision, and reasons."""
        scorer: Scorer | SeriesScorer = self.model(name)
        rows = [body.input] if isinstance(body.input, dict) else list(body.input)
        if not rows or len(rows) > MAX_ROWS:
            raise ApiError(400, f"input: {len(rows)} rows; send 1 to {MAX_ROWS}", param="input")
        with lmforge_errors_as(400, param="input"):
            scored = await scorer.score(rows, explain=body.explain, top_k=body.top_k)
        return {
            "object": "list",
            "model": name,
            "data": [{"object": "score", "index": i, **row} for i, row in enumerate(scored)],
        }

    def drift(self, name: str) -> dict[str, Any]:
        scorer: Scorer | SeriesScorer = self.model(name)
        return {"object": "drift", "model": name, **scorer.drift()}

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/score/{name}")
        async def score(
            name: str, body: ScoreRequest, owner: str | None = routes.authorized
        ) -> Any:
            return await routes.family(cls).score(name, body)

        @routes.app.get("/v1/score/{name}/drift")
        async def drift(name: str, owner: str | None = routes.authorized) -> Any:
            return routes.family(cls).drift(name)
