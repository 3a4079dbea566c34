"""POST /v1/kb/{name}/search (an lmforge extension): the passages of a knowledge base
nearest to a query, from the version on disk now."""

from __future__ import annotations

from typing import Any

from lmforge.retrieve.kb import KnowledgeBase, kb_root
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler, Routes
from lmforge.serve.errors import ApiError, lmforge_errors_as
from lmforge.serve.protocol import KbSearchRequest


class CurrentKnowledgeBases:
    """Knowledge bases opened once each, and reopened when their ``CURRENT`` version on
    disk changed (``lmforge kb add`` while the server runs): reading one is hundreds of
    MB for a large base, checking its version one small file."""

    def __init__(self) -> None:
        self._opened: dict[str, KnowledgeBase] = {}

    def get(self, name: str) -> KnowledgeBase:
        """Knowledge base ``name`` at its current version.

        Raises:
            LmforgeError: there is no such knowledge base, or it cannot be read.
        """
        opened = self._opened.get(name)
        if opened is None or not self._is_current(name, opened.version):
            opened = self._opened[name] = KnowledgeBase.open(name)
        return opened

    @staticmethod
    def _is_current(name: str, version: str) -> bool:
        current = kb_root() / name / "CURRENT"
        return current.is_file() and current.read_text().strip() == version


class KnowledgeBaseSearch(EndpointFamily):
    """Search of any knowledge base under ``$LMFORGE_HOME/kb``, not only ``--kb``'s."""

    def __init__(self, served: OpenAIHandler) -> None:
        super().__init__(served)
        self.knowledge_bases = CurrentKnowledgeBases()

    async def search(self, name: str, body: KbSearchRequest) -> dict[str, Any]:
        """The ``k`` passages of knowledge base ``name`` nearest to the query."""
        if not body.query.strip():
            raise ApiError(400, "query must be non-empty text", param="query")
        kb = await self.served.compute(self._open, name)
        hits = await self.served.compute(lambda: kb.search(body.query, body.k, hybrid=body.hybrid))
        return {"object": "list", "kb": name, "embed_model": kb.embed_model,
                "data": [hit.to_dict() for hit in hits]}  # fmt: skip

    def _open(self, name: str) -> KnowledgeBase:
        """Knowledge base ``name`` at its current version, or a 404 naming the ones there are."""
        with lmforge_errors_as(404, code="kb_not_found"):
            return self.knowledge_bases.get(name)

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/kb/{name}/search")
        async def kb_search(
            name: str, body: KbSearchRequest, owner: str | None = routes.authorized
        ) -> Any:
            return await routes.family(cls).search(name, body)
