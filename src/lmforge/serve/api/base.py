"""What every endpoint family shares, and how a family plugs into the server.

``OpenAIHandler`` holds what one server serves (the engine and its tokenizer, the
embedding model, the classifiers, the guard, the session store) and the steps several
endpoints take: running model code on the engine's thread, screening input with the
guard, fitting ``max_tokens`` into the context, finding a stored session.

``EndpointFamily`` is one family of endpoints (chat, embeddings, ...): its OpenAI
semantics over the shared handler, and its routes. Family methods take validated request
bodies and return a response dict, or an async iterator of server-sent-event lines for
streams; errors are ``ApiError`` with the status and the OpenAI error fields, so tests
call the families without HTTP. The server's families are listed once, in
``lmforge.serve.api.FAMILIES``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI

from lmforge.guard.policy import Guard
from lmforge.hub.embed import SentenceEmbedder
from lmforge.serve.errors import ApiError
from lmforge.serve.requests import GenerationBackend
from lmforge.serve.store import ServeStore, Session
from lmforge.serve.understand import Understanding

Family = TypeVar("Family", bound="EndpointFamily")


class OpenAIHandler:
    """What one server serves, shared by every endpoint family.

    Args:
        engine: the running engine; None on a server that only embeds or classifies.
        model_name: the id clients put in ``model`` for the base model.
        adapters: LoRA adapter names loaded in the engine's model; ``model`` picks one.
        max_tokens_limit: the most tokens one request may ask to generate.
        store: where sessions live; None serves no sessions.
        embedder: an encoder for ``/v1/embeddings``, served as ``embed_name``.
        guard: content filtering of inputs and outputs (``--guard``).
        understanding: a knowledge base that grounds chat answers, classifiers for
            ``/v1/classify`` and ``/v1/explain``, a sentiment model for conversations.
        images: image indexes by name for ``/v1/images/search`` (their text-image models
            also classify images on ``/v1/classify``).
        image_models: text-to-image models by name for ``/v1/images/generations``.
        scorers: tabular and remaining-useful-life models by name for ``/v1/score/{name}``.
        system_fingerprint: what every completion reports as ``system_fingerprint``
            (``serve.server.system_fingerprint``: model, backend and quantisation).
        agent_db: the support agent's order database (``--agent``): ``/v1/agent/turns``.
    """

    def __init__(
        self,
        engine: GenerationBackend | None,
        model_name: str,
        *,
        adapters: Sequence[str] = (),
        max_tokens_limit: int = 4096,
        store: ServeStore | None = None,
        embedder: SentenceEmbedder | None = None,
        embed_name: str | None = None,
        guard: Guard | None = None,
        understanding: Understanding | None = None,
        images: Mapping[str, Any] | None = None,
        image_models: Mapping[str, Any] | None = None,
        scorers: Mapping[str, Any] | None = None,
        system_fingerprint: str = "fp_lmforge",
        agent_db: sqlite3.Connection | None = None,
    ) -> None:
        self.engine = engine
        self.agent_db = agent_db  # the support agent's orders (--agent); None: no agent
        self.system_fingerprint = system_fingerprint
        self.understanding = understanding or Understanding()
        self.tokenizer: Any = engine.tokenizer if engine is not None else None
        self.embedder = embedder
        self.guard = guard  # blocks and redacts per its policy; None: no filtering
        self.embed_name = embed_name or model_name
        self.model_name = model_name
        self.adapters = list(adapters)
        self.store = store
        self.max_tokens_limit = max_tokens_limit
        self.created = int(time.time())
        # The served models by the kind a family ``needs``, then by the name requests give
        # in ``model``. A loader adds the kinds of new families here (images, scoring).
        generation = [model_name, *self.adapters] if engine is not None else []
        self.backends: dict[str, Mapping[str, Any]] = {
            "generation": dict.fromkeys(generation, engine),
            "embeddings": {self.embed_name: embedder} if embedder is not None else {},
            "classifiers": self.understanding.classifiers,
            "images": dict(images or {}),
            "image_generation": dict(image_models or {}),
            "scoring": dict(scorers or {}),
        }
        self._families: dict[type[EndpointFamily], EndpointFamily] = {}

    def family(self, family: type[Family]) -> Family:
        """The one handler of ``family`` over what this server serves, made on first use
        (so a family keeps its state, such as opened knowledge bases, between requests)."""
        if family not in self._families:
            self._families[family] = family(self)
        found = self._families[family]
        assert isinstance(found, family)
        return found

    def llm(self) -> GenerationBackend:
        """The generation engine, or a 404 that says what a server without one serves."""
        if self.engine is None:
            message = "this server serves no text generation model (see GET /v1/models)"
            if self.embedder is not None:
                message = (
                    f"this server serves only the embedding model '{self.embed_name}' "
                    "(POST /v1/embeddings)"
                )
            elif self.understanding.classifiers:
                message = (
                    f"this server serves only the classifier '{self.model_name}' "
                    "(POST /v1/classify, /v1/explain)"
                )
            elif self.backends["image_generation"]:
                names = ", ".join(self.backends["image_generation"])
                message = (
                    f"this server serves only the image models {names} "
                    "(POST /v1/images/generations)"
                )
            elif self.backends["scoring"]:
                names = ", ".join(self.backends["scoring"])
                message = (
                    f"this server serves only the scoring models {names} (POST /v1/score/NAME)"
                )
            elif self.backends["images"]:
                indexes = ", ".join(self.backends["images"])
                message = (
                    f"this server serves only the image indexes {indexes} "
                    "(POST /v1/images/search, /v1/classify with images)"
                )
            raise ApiError(404, message, param="model", code="model_not_found")
        return self.engine

    async def compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the engine's thread, which owns torch (see ``Engine.call``)."""
        if self.engine is None:  # an embeddings-only server: no decode loop to disturb
            return await asyncio.to_thread(fn, *args)
        return await asyncio.wrap_future(self.engine.call(fn, *args))

    # --- guardrails -----------------------------------------------------------------

    async def screen_input(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """Block a request whose user messages break the input policy; redact PII."""
        assert self.guard is not None
        for message in messages:
            if message["role"] == "user":
                await self.screen_text(message["content"], "messages")
        return [{**m, "content": self.guard.redact(m["content"])} for m in messages]

    async def screen_prompt(self, prompt: str | list[int]) -> str | list[int]:
        """A text prompt checked and redacted like a user message; token ids pass."""
        if isinstance(prompt, list):
            return prompt
        await self.screen_text(prompt, "prompt")
        assert self.guard is not None
        return self.guard.redact(prompt)

    async def screen_text(self, text: str, param: str) -> None:
        """A 400 naming ``param`` when ``text`` breaks the input policy."""
        assert self.guard is not None
        blocked = await self.compute(self.guard.blocked, text, "input")
        if blocked:
            raise ApiError(
                400,
                f"the request was blocked by the content filter ({', '.join(blocked)}).",
                param=param,
                code="content_filter",
            )

    # --- limits ---------------------------------------------------------------------

    def max_tokens(self, requested: int | None, prompt_tokens: int, prompt_param: str) -> int:
        """The tokens to generate: ``requested`` if the context and the server's limit
        allow it, else a 400; without a request, as many as both allow."""
        context = self.llm().max_len
        if prompt_tokens + 1 > context:
            raise ApiError(
                400,
                f"This model's maximum context length is {context} tokens. However, your "
                f"{prompt_param} resulted in {prompt_tokens} tokens. Please reduce the length "
                f"of the {prompt_param}.",
                param=prompt_param,
                code="context_length_exceeded",
            )
        if requested is None:
            return min(self.max_tokens_limit, context - prompt_tokens)
        if requested > self.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens is {requested} but this server allows at most "
                f"{self.max_tokens_limit}; ask for fewer tokens.",
                param="max_tokens",
            )
        if prompt_tokens + requested > context:
            raise ApiError(
                400,
                f"This model's maximum context length is {context} tokens. However, you "
                f"requested {prompt_tokens + requested} tokens ({prompt_tokens} in the "
                f"{prompt_param}, {requested} in the completion). Please reduce the length "
                f"of the {prompt_param} or completion.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested

    # --- sessions -------------------------------------------------------------------

    def require_store(self) -> ServeStore:
        """The session store, or a 404 on a server that keeps no sessions."""
        if self.store is None:
            raise ApiError(404, "this server keeps no sessions", code="sessions_disabled")
        return self.store

    def session(self, session_id: str, owner: str | None) -> Session:
        """The stored session ``session_id`` of ``owner`` (an API key id), or a 404."""
        session = self.require_store().get_session(session_id, owner)
        if session is None:  # someone else's session is not found either
            raise no_session(session_id)
        return session


def no_session(session_id: str) -> ApiError:
    """The 404 for a session that does not exist or belongs to another API key."""
    return ApiError(
        404,
        f"no session '{session_id}' (sessions belong to the API key that created them; "
        "create one with POST /v1/sessions)",
        param="session_id",
        code="session_not_found",
    )


@dataclass(frozen=True)
class Routes:
    """What a family adds its routes with."""

    app: FastAPI
    # The FastAPI dependency every /v1 route takes: the caller's API key id, checked.
    # A default rather than Annotated[...]: annotations are strings in these modules
    # (``from __future__ import annotations``) and FastAPI cannot see local names in them.
    authorized: Any
    loaded: Callable[[], OpenAIHandler]  # the loaded handler; a 503 while the model loads
    log_prompts: bool  # routes that take a prompt put it in request.state.prompt if true
    families: tuple[type[EndpointFamily], ...] = ()  # every family the server serves

    def family(self, family: type[Family]) -> Family:
        """The loaded server's handler of ``family`` (503 while the model loads)."""
        return self.loaded().family(family)


class EndpointFamily(ABC):
    """One family of endpoints: its OpenAI semantics over the shared handler, its routes.

    A family names the kind of model it ``needs`` (a key of ``OpenAIHandler.backends``;
    None: it needs none) and finds the one a request asks for with ``model``: a server
    started without it answers 404 (``not_served``) and serves its other families. The
    first family that needs a kind describes its models in ``GET /v1/models``.
    """

    needs: ClassVar[str | None] = None

    def __init__(self, served: OpenAIHandler) -> None:
        self.served = served

    def model(self, name: str) -> Any:
        """The served model ``name`` of the kind this family needs.

        Raises:
            ApiError: 404 when this server does not serve it (see ``not_served``).
        """
        model = self.served.backends.get(self.needs or "", {}).get(name)
        if model is None:
            raise self.not_served(name)
        return model

    def not_served(self, name: str) -> ApiError:
        """The error for a ``model`` this server does not serve; a family may word its own."""
        served = ", ".join(self.served.backends.get(self.needs or "", {}))
        message = (
            f"the model '{name}' is not served here; ask for one of its {self.needs} "
            f"models: {served}"
            if served
            else f"the model '{name}' is not loaded: this server serves no {self.needs} "
            "models (start it with one to use this endpoint)"
        )
        return ApiError(404, message, param="model", code="model_not_found")

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        """What ``GET /v1/models`` says of ``model``, served as ``name`` for this family's
        kind, besides its id: by default it is its own root, with no parent."""
        return {"root": name, "parent": None}

    @classmethod
    @abstractmethod
    def add_routes(cls, routes: Routes) -> None:
        """Add the family's routes to ``routes.app``; each reaches the family's handler
        with ``routes.family(cls)``."""
