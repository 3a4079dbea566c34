"""/v1/sessions (an lmforge extension): conversations stored on the server, which chat
requests continue with ``session_id``. A session belongs to the API key that created it."""

from __future__ import annotations

from typing import Any

from lmforge.serve.api.base import EndpointFamily, Routes, no_session
from lmforge.serve.protocol import SessionCreateRequest


class Sessions(EndpointFamily):
    """Create, read and delete stored conversations."""

    def create(
        self, owner: str | None, system: str | None, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        return self.served.require_store().create_session(owner, system, metadata).to_api()

    def get(self, session_id: str, owner: str | None) -> dict[str, Any]:
        return self.served.session(session_id, owner).to_api()

    def delete(self, session_id: str, owner: str | None) -> dict[str, Any]:
        if not self.served.require_store().delete_session(session_id, owner):
            raise no_session(session_id)
        return {"id": session_id, "object": "session.deleted", "deleted": True}

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/sessions")
        async def create_session(
            body: SessionCreateRequest | None = None, owner: str | None = routes.authorized
        ) -> Any:
            body = body or SessionCreateRequest()
            return routes.family(cls).create(owner, body.system, body.metadata)

        @routes.app.get("/v1/sessions/{session_id}")
        async def get_session(session_id: str, owner: str | None = routes.authorized) -> Any:
            return routes.family(cls).get(session_id, owner)

        @routes.app.delete("/v1/sessions/{session_id}")
        async def delete_session(session_id: str, owner: str | None = routes.authorized) -> Any:
            return routes.family(cls).delete(session_id, owner)
