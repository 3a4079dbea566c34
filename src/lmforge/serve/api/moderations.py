"""POST /v1/moderations: OpenAI's moderation response, from the guard's classifier."""

from __future__ import annotations

import uuid
from typing import Any

from lmforge.guard.policy import Guard
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import ModerationRequest


class Moderations(EndpointFamily):
    """Moderation on every server: with the server's guard (``--guard``), else with the
    default guard, loaded on the first request."""

    def __init__(self, served: OpenAIHandler) -> None:
        super().__init__(served)
        self.moderator: Guard | None = served.guard

    async def create(self, body: ModerationRequest) -> dict[str, Any]:
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise ApiError(400, "input must not be empty", param="input")
        return {
            "id": f"modr-{uuid.uuid4().hex}",
            "model": body.model or "lmforge-guard",
            "results": await self.served.compute(self._moderate, texts),
        }

    def _moderate(self, texts: list[str]) -> list[dict[str, Any]]:
        if self.moderator is None:  # loaded on first use, on the thread that runs it
            self.moderator = Guard()
        return self.moderator.moderate(texts)

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/moderations")
        async def moderations(
            body: ModerationRequest, owner: str | None = routes.authorized
        ) -> Any:
            return await routes.family(cls).create(body)
