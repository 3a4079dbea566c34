"""OpenAI semantics over the engine: prompts, limits, choices, streaming chunks, usage.

Nothing here knows about HTTP: methods take validated request bodies and return a
response dict, or an async iterator of server-sent-event lines for streams. Errors are
``ApiError`` with the status and the OpenAI error fields, so tests can call the handler
directly.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmforge.data.chat import render_chat
from lmforge.errors import LmforgeError
from lmforge.guard.policy import Guard
from lmforge.hub.embed import SentenceEmbedder
from lmforge.serve.engine import (
    Event,
    GenerationBackend,
    QueueFull,
    Request,
    RequestParams,
    TokenLogprob,
)
from lmforge.serve.errors import ApiError
from lmforge.serve.guarded import GuardedEvents
from lmforge.serve.protocol import (
    ChatCompletionRequest,
    ClassifyRequest,
    CompletionRequest,
    EmbeddingRequest,
    ExplainRequest,
    KbSearchRequest,
    ModerationRequest,
)
from lmforge.serve.store import ServeStore, Session
from lmforge.serve.understand import Grounding, Understanding

if TYPE_CHECKING:
    from lmforge.retrieve.kb import Hit

DONE = "data: [DONE]\n\n"
SESSION_ANSWER_RESERVE = 512  # tokens kept free for the answer when max_tokens is not given


@dataclass
class _Choice:
    """What one generated sequence has produced so far."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def add(self, event: Event) -> None:
        self.text += event.text
        self.logprobs += event.logprobs
        self.finish_reason = event.finish_reason or self.finish_reason
        self.prompt_tokens = event.prompt_tokens or self.prompt_tokens
        self.completion_tokens = event.completion_tokens
        self.cached_tokens = event.cached_tokens


class OpenAIHandler:
    """Chat and text completions for one served model.

    Args:
        engine: the running engine.
        model_name: the id clients put in ``model`` for the base model.
        adapters: LoRA adapter names loaded in the engine's model; ``model`` picks one.
        max_tokens_limit: the most tokens one request may ask to generate.
        store: where sessions live; None serves no sessions.
        embedder: an encoder for ``/v1/embeddings``, served as ``embed_name``.
        guard: content filtering of inputs and outputs (``--guard``).
        understanding: a knowledge base that grounds chat answers, classifiers for
            ``/v1/classify`` and ``/v1/explain``, a sentiment model for conversations.
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
    ) -> None:
        self.engine = engine
        self.understanding = understanding or Understanding()
        self._kbs: dict[str, Any] = {}  # knowledge bases opened for /v1/kb/{name}/search
        self.tokenizer: Any = engine.tokenizer if engine is not None else None
        self.embedder = embedder
        self.guard = guard  # blocks and redacts per its policy; None: no filtering
        self.moderator: Guard | None = guard  # /v1/moderations (loaded on first use)
        self.embed_name = embed_name or model_name
        self.model_name = model_name
        self.adapters = list(adapters)
        self.store = store
        self.max_tokens_limit = max_tokens_limit
        self.created = int(time.time())

    # --- models ---------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        card = {"object": "model", "created": self.created, "owned_by": "lmforge"}
        data = []
        if self.engine is not None:
            generation = {**card, "max_model_len": self._llm().max_len, "root": self.model_name}
            data.append({"id": self.model_name, **generation, "parent": None})
            data += [{"id": a, **generation, "parent": self.model_name} for a in self.adapters]
        if self.embedder is not None:
            data.append({"id": self.embed_name, **card, "root": self.embed_name, "parent": None,
                         "dimensions": self.embedder.dimension})  # fmt: skip
        for name, classifier in self.understanding.classifiers.items():
            data.append({"id": name, **card, "root": classifier.model_ref, "parent": None,
                         "labels": classifier.labels})  # fmt: skip
        return {"object": "list", "data": data}

    def _llm(self) -> GenerationBackend:
        """The generation engine, or a 404 on a server that only embeds."""
        if self.engine is None:
            served = f"the classifier '{self.model_name}' (POST /v1/classify, /v1/explain)"
            if self.embedder is not None:
                served = f"the embedding model '{self.embed_name}' (POST /v1/embeddings)"
            raise ApiError(404, f"this server serves only {served}", param="model",
                           code="model_not_found")  # fmt: skip
        return self.engine

    def _adapter_for(self, name: str) -> str | None:
        """The adapter a ``model`` field asks for (None: the base model)."""
        self._llm()
        if name == self.model_name:
            return None
        if name in self.adapters:
            return name
        served = ", ".join([self.model_name, *self.adapters])
        raise ApiError(
            404,
            f"The model '{name}' does not exist; this server serves: {served} "
            "(see GET /v1/models).",
            param="model",
            code="model_not_found",
        )

    # --- chat -----------------------------------------------------------------------

    async def chat(
        self, body: ChatCompletionRequest, owner: str | None = None
    ) -> dict[str, Any] | AsyncIterator[str]:
        """A chat completion; with ``session_id`` the stored conversation (of ``owner``,
        the caller's API key id) comes first and the answer is stored after it."""
        adapter = self._adapter_for(body.model)
        json_object = body.response_format is not None and body.response_format.type != "text"
        if body.response_format is not None and body.response_format.type == "json_schema":
            raise ApiError(
                400,
                "response_format type 'json_schema' is not supported by this server; use "
                "'json_object' (the output is then always one valid JSON object).",
                param="response_format",
                code="unsupported_value",
            )
        top = body.top_logprobs or 0
        if top and not body.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        new_messages = body.conversation()
        if self.guard is not None:
            new_messages = await self._screen_input(new_messages)
        session, history = None, new_messages
        if body.session_id is not None:
            session = self._session(body.session_id, owner)
            history = session.messages + history
        hits, extra, trend = await self._understand(new_messages, session)
        if session is not None:
            system = Grounding.system_prompt(session.system, hits) if hits else session.system
            prompt = self._fit_session(system, history, body.requested_max_tokens())
        else:
            prompt = self._render(Grounding.with_passages(history, hits) if hits else history)
        max_tokens = self._max_tokens(body.requested_max_tokens(), len(prompt), "messages")
        params = body.params(
            max_tokens, logprobs=body.logprobs, top_logprobs=top, json_object=json_object
        )
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        events = self._guarded(self._submit([prompt] * body.n, params, adapter))

        def remember(choices: list[_Choice]) -> None:
            """Store the turn (the first choice's answer) once it is complete."""
            if session is not None and choices[0].finish_reason in {"stop", "length"}:
                session.messages = [*history, {"role": "assistant", "content": choices[0].text}]
                if trend is not None:
                    escalate, rule = extra["escalate"], extra["escalate_rule"]
                    session.metadata["sentiment"] = {"turns": trend, "escalate": escalate,
                                                     "rule": rule}  # fmt: skip
                assert self.store is not None
                self.store.save_messages(session)

        grounding = self.understanding.grounding
        if body.stream:
            if grounding is not None:
                extra["citations"] = grounding.citations(hits)
            stream = self._chat_stream(
                response_id, body.model, events, body.n, body.include_usage(), remember, extra
            )
            return _closing(stream, events)
        choices = await _collect(events, body.n)
        remember(choices)
        if grounding is not None:
            extra["citations"] = grounding.citations(hits, choices[0].text)
        if session is not None:
            extra["session_id"] = session.id
        return {
            **extra,
            "id": response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": _chat_logprobs(c.logprobs) if body.logprobs else None,
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            "usage": _usage(choices, len(prompt), body.n),
        }

    async def _chat_stream(
        self,
        response_id: str,
        model: str,
        events: Any,
        count: int,
        include_usage: bool,
        on_complete: Callable[[list[_Choice]], None],
        extra: dict[str, Any],
    ) -> AsyncIterator[str]:
        """The chunks of a streamed chat answer; the first carries the ``extra`` fields
        (citations, sentiment), which are known before the answer starts."""
        prompt_tokens = len(events.requests[0].prompt_ids)
        created = int(time.time())
        choices = [_Choice(i) for i in range(count)]

        def chunk(choice_list: list[dict[str, Any]], usage: Any = None, **fields: Any) -> str:
            return _chunk(response_id, "chat.completion.chunk", created, model, choice_list,
                          include_usage, usage, **fields)  # fmt: skip

        for index in range(count):
            yield chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                          "logprobs": None, "finish_reason": None}],
                        **(extra if index == 0 else {}))  # fmt: skip
        async for index, event in events:
            choices[index].add(event)
            if event.text or event.logprobs or event.finish_reason:
                logprobs = _chat_logprobs(event.logprobs) if event.logprobs else None
                delta = {"content": event.text} if event.text else {}
                yield chunk([{"index": index, "delta": delta, "logprobs": logprobs,
                              "finish_reason": event.finish_reason}])  # fmt: skip
        on_complete(choices)
        if include_usage:
            yield chunk([], usage=_usage(choices, prompt_tokens, count))
        yield DONE

    async def _understand(
        self, new_messages: list[dict[str, str]], session: Session | None
    ) -> tuple[list[Hit], dict[str, Any], list[dict[str, Any]] | None]:
        """Passages for the newest user turn (with ``--kb``) and the sentiment of the new
        user turns (with ``--sentiment``).

        Returns:
            The passages; the response's extension fields (``sentiment`` of the newest
            turn, ``escalate``); the conversation's sentiment trend to store, or None.
        """
        users = [m["content"] for m in new_messages if m["role"] == "user" and m["content"]]
        grounding, monitor = self.understanding.grounding, self.understanding.sentiment
        hits = await self._compute(grounding.retrieve, users[-1]) if grounding and users else []
        if monitor is None or not users:
            return hits, {}, None
        scored = await self._compute(monitor.score, users)
        earlier = session.metadata.get("sentiment", {}).get("turns", []) if session else []
        trend = [*earlier, *scored]
        fields = {"sentiment": scored[-1], "escalate": monitor.escalate(trend),
                  "escalate_rule": monitor.rule}  # fmt: skip
        return hits, fields, trend

    # --- guardrails -----------------------------------------------------------------

    def _guarded(self, events: _Events) -> Any:
        return events if self.guard is None else GuardedEvents(events, self.guard, self._compute)

    async def _compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the engine's thread, which owns torch (see ``Engine.call``)."""
        if self.engine is None:  # an embeddings-only server: no decode loop to disturb
            return await asyncio.to_thread(fn, *args)
        return await asyncio.wrap_future(self.engine.call(fn, *args))

    async def _screen_input(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """Block a request whose user messages break the input policy; redact PII."""
        assert self.guard is not None
        for message in messages:
            if message["role"] == "user":
                await self._screen_text(message["content"], "messages")
        return [{**m, "content": self.guard.redact(m["content"])} for m in messages]

    async def _screen_prompt(self, prompt: str | list[int]) -> str | list[int]:
        if isinstance(prompt, list):
            return prompt
        await self._screen_text(prompt, "prompt")
        assert self.guard is not None
        return self.guard.redact(prompt)

    async def _screen_text(self, text: str, param: str) -> None:
        assert self.guard is not None
        blocked = await self._compute(self.guard.blocked, text, "input")
        if blocked:
            raise ApiError(
                400,
                f"the request was blocked by the content filter ({', '.join(blocked)}).",
                param=param,
                code="content_filter",
            )

    async def moderations(self, body: ModerationRequest) -> dict[str, Any]:
        """OpenAI's moderation response, from the guard's classifier."""
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise ApiError(400, "input must not be empty", param="input")
        return {
            "id": f"modr-{uuid.uuid4().hex}",
            "model": body.model or "lmforge-guard",
            "results": await self._compute(self._moderate, texts),
        }

    def _moderate(self, texts: list[str]) -> list[dict[str, Any]]:
        if self.moderator is None:  # loaded on first use, on the thread that runs it
            self.moderator = self.guard or Guard()
        return self.moderator.moderate(texts)

    # --- embeddings -----------------------------------------------------------------

    async def embeddings(self, body: EmbeddingRequest) -> dict[str, Any]:
        embedder = self.embedder
        if embedder is None or body.model != self.embed_name:
            served = self.embed_name if embedder is not None else "none (start the server "
            served += "" if embedder is not None else "with --embed REF or an encoder)"
            raise ApiError(404, f"The embedding model '{body.model}' does not exist; served: "
                           f"{served}", param="model", code="model_not_found")  # fmt: skip
        if body.dimensions is not None and body.dimensions != embedder.dimension:
            raise ApiError(
                400,
                f"dimensions {body.dimensions} is not available; this model gives "
                f"{embedder.dimension}",
                param="dimensions",
            )
        texts = body.texts(embedder.tokenizer)
        if not texts or any(not text for text in texts):
            raise ApiError(400, "input must be non-empty text", param="input")
        vectors = await self._compute(embedder.encode, texts)  # (N, D)
        tokens = sum(len(ids) for ids in embedder.tokenizer(texts)["input_ids"])
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode_vector(v, body)}
                for i, v in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # --- classification, explanations, knowledge bases (lmforge extensions) ----------

    async def classify(self, body: ClassifyRequest) -> dict[str, Any]:
        """Each input's label probabilities, most likely first."""
        classifier = self._classifier(body.model)
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts or any(not text.strip() for text in texts):
            raise ApiError(400, "input must be non-empty text", param="input")
        rows = await self._compute(classifier.classify, texts)
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
        from lmforge.explain import explain_text

        classifier = self._classifier(body.model)
        if not body.input.strip():
            raise ApiError(400, "input must be non-empty text", param="input")
        try:
            explanation = await self._compute(
                lambda: explain_text(classifier, body.input, body.method, label=body.label,
                                     num_samples=body.num_samples, steps=body.steps)
            )  # fmt: skip
        except LmforgeError as error:
            raise ApiError(400, str(error), param="label" if body.label else "input") from None
        return {"object": "explanation", "model": body.model, **explanation.to_dict()}

    def _classifier(self, name: str) -> Any:
        classifiers = self.understanding.classifiers
        if name not in classifiers:
            served = ", ".join(classifiers) or "none (start the server with --classifier REF)"
            raise ApiError(404, f"no classifier '{name}' is served; served: {served}",
                           param="model", code="model_not_found")  # fmt: skip
        return classifiers[name]

    async def kb_search(self, name: str, body: KbSearchRequest) -> dict[str, Any]:
        """The ``k`` passages of knowledge base ``name`` nearest to the query."""
        if not body.query.strip():
            raise ApiError(400, "query must be non-empty text", param="query")
        kb = await self._compute(self._knowledge_base, name)
        hits = await self._compute(lambda: kb.search(body.query, body.k, hybrid=body.hybrid))
        return {"object": "list", "kb": name, "embed_model": kb.embed_model,
                "data": [hit.to_dict() for hit in hits]}  # fmt: skip

    def _knowledge_base(self, name: str) -> Any:
        """The knowledge base, opened once and reopened when ``lmforge kb add`` changed it."""
        from lmforge.retrieve.kb import KnowledgeBase, kb_root

        opened = self._kbs.get(name)
        current = kb_root() / name / "CURRENT"
        if opened is None or not current.is_file() or current.read_text().strip() != opened.version:
            try:
                opened = KnowledgeBase.open(name)
            except LmforgeError as error:
                raise ApiError(404, str(error), code="kb_not_found") from None
            self._kbs[name] = opened
        return opened

    # --- sessions -------------------------------------------------------------------

    def create_session(
        self, owner: str | None, system: str | None, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        return self._require_store().create_session(owner, system, metadata).to_api()

    def get_session(self, session_id: str, owner: str | None) -> dict[str, Any]:
        return self._session(session_id, owner).to_api()

    def delete_session(self, session_id: str, owner: str | None) -> dict[str, Any]:
        if not self._require_store().delete_session(session_id, owner):
            raise self._no_session(session_id)
        return {"id": session_id, "object": "session.deleted", "deleted": True}

    def _require_store(self) -> ServeStore:
        if self.store is None:
            raise ApiError(404, "this server keeps no sessions", code="sessions_disabled")
        return self.store

    def _session(self, session_id: str, owner: str | None) -> Session:
        session = self._require_store().get_session(session_id, owner)
        if session is None:  # someone else's session is not found either
            raise self._no_session(session_id)
        return session

    @staticmethod
    def _no_session(session_id: str) -> ApiError:
        return ApiError(
            404,
            f"no session '{session_id}' (sessions belong to the API key that created them; "
            "create one with POST /v1/sessions)",
            param="session_id",
            code="session_not_found",
        )

    def _render(self, messages: list[dict[str, str]]) -> list[int]:
        try:
            return render_chat(self.tokenizer, messages, model_ref=self.model_name)
        except LmforgeError as error:
            raise ApiError(400, str(error), param="messages") from error

    def _fit_session(
        self, system: str | None, history: list[dict[str, str]], max_tokens: int | None
    ) -> list[int]:
        """The session prompt that fits the context with room for the answer.

        The system prompt always stays; whole exchanges are dropped oldest first (from
        one user message to the next), so the model never sees half a turn.
        """
        reserve = max_tokens or min(self.max_tokens_limit, SESSION_ANSWER_RESERVE)
        head = [{"role": "system", "content": system}] if system else []
        start = 0
        while True:
            prompt = self._render(head + history[start:])
            if len(prompt) + reserve <= self._llm().max_len:
                return prompt
            later_users = [
                i for i in range(start + 1, len(history)) if history[i]["role"] == "user"
            ]
            if not later_users:
                raise ApiError(
                    400,
                    f"the system prompt and the newest message take {len(prompt)} tokens; with "
                    f"{reserve} for the answer that exceeds the model's context of "
                    f"{self._llm().max_len} tokens. Send a shorter message or ask for fewer "
                    "max_tokens.",
                    param="messages",
                    code="context_length_exceeded",
                )
            start = later_users[0]

    # --- text completions -----------------------------------------------------------

    async def completions(self, body: CompletionRequest) -> dict[str, Any] | AsyncIterator[str]:
        adapter = self._adapter_for(body.model)
        if body.suffix:
            raise ApiError(400, "suffix is not supported by this model", param="suffix")
        raw_prompts = body.prompts()
        if self.guard is not None:
            raw_prompts = [await self._screen_prompt(p) for p in raw_prompts]
        prompts = [self._tokens(p) for p in raw_prompts]
        if not prompts or any(not p for p in prompts):
            raise ApiError(400, "prompt must not be empty", param="prompt")
        longest = max(len(p) for p in prompts)
        max_tokens = self._max_tokens(body.max_tokens, longest, "prompt")
        top = body.logprobs or 0
        params = body.params(max_tokens, logprobs=body.logprobs is not None, top_logprobs=top)
        expanded = [p for p in prompts for _ in range(body.n)]  # choice i: prompt i // n
        echoes = [self.tokenizer.decode(p) if body.echo else "" for p in expanded]
        response_id = f"cmpl-{uuid.uuid4().hex}"
        events = self._guarded(self._submit(expanded, params, adapter))
        usage_prompt_tokens = sum(len(p) for p in prompts)
        if body.stream:
            stream = self._completion_stream(
                response_id, body.model, events, echoes, body.logprobs is not None,
                body.include_usage(), usage_prompt_tokens, body.n,
            )  # fmt: skip
            return _closing(stream, events)
        choices = await _collect(events, len(expanded))
        return {
            "id": response_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": c.index,
                    "text": echoes[c.index] + c.text,
                    "logprobs": (
                        _text_logprobs(c.logprobs, len(echoes[c.index]))
                        if body.logprobs is not None
                        else None
                    ),
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            "usage": _usage(choices, usage_prompt_tokens, body.n),
        }

    async def _completion_stream(
        self,
        response_id: str,
        model: str,
        events: Any,
        echoes: list[str],
        logprobs: bool,
        include_usage: bool,
        prompt_tokens: int,
        n: int,
    ) -> AsyncIterator[str]:
        created = int(time.time())
        choices = [_Choice(i) for i in range(len(echoes))]

        def chunk(choice_list: list[dict[str, Any]], usage: Any = None) -> str:
            return _chunk(response_id, "text_completion", created, model, choice_list,
                          include_usage, usage)  # fmt: skip

        sent = [0] * len(echoes)  # characters sent per choice
        async for index, event in events:
            choices[index].add(event)
            text = event.text if sent[index] else echoes[index] + event.text
            offset = sent[index] + len(text) - len(event.text)
            sent[index] += len(text)
            if text or event.logprobs or event.finish_reason:
                token_logprobs = _text_logprobs(event.logprobs, offset) if logprobs else None
                yield chunk([{"index": index, "text": text, "logprobs": token_logprobs,
                              "finish_reason": event.finish_reason}])  # fmt: skip
        if include_usage:
            yield chunk([], usage=_usage(choices, prompt_tokens, n))
        yield DONE

    # --- shared ---------------------------------------------------------------------

    def _tokens(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        vocab = len(self.tokenizer)
        if any(not 0 <= t < vocab for t in prompt):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        return list(prompt)

    def _max_tokens(self, requested: int | None, prompt_tokens: int, prompt_param: str) -> int:
        context = self._llm().max_len
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

    def _submit(
        self, prompts: list[list[int]], params: RequestParams, adapter: str | None
    ) -> _Events:
        """Queue one engine request per choice; returns their merged events."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        requests = []
        for index, prompt in enumerate(prompts):
            seeded = params
            if params.seed is not None and index:  # n > 1 with a seed: distinct, repeatable
                seeded = dataclasses.replace(params, seed=params.seed + index)

            def emit(event: Event, index: int = index) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, (index, event))

            requests.append(Request(prompt, seeded, emit, adapter=adapter))
        try:
            for request in requests:
                self._llm().submit(request)
        except QueueFull as error:
            for request in requests:
                request.cancelled.set()
            raise ApiError(503, f"{error}; retry shortly.", code="queue_full",
                           headers={"Retry-After": "1"}) from error  # fmt: skip
        except LmforgeError as error:
            raise ApiError(400, str(error), code="context_length_exceeded") from error
        return _Events(queue, requests)


class _Events:
    """(choice index, event) pairs until every choice has finished; cancels on close."""

    def __init__(self, queue: asyncio.Queue[tuple[int, Event]], requests: list[Request]) -> None:
        self.queue, self.requests = queue, requests
        self.open = len(requests)

    async def __aiter__(self) -> AsyncIterator[tuple[int, Event]]:
        try:
            while self.open:
                index, event = await self.queue.get()
                if event.finish_reason is not None:
                    self.open -= 1
                if event.finish_reason == "error":
                    raise ApiError(500, f"generation failed: {event.error}", code="engine_error")
                yield index, event
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop generating for every choice still running (client gone, or done)."""
        for request in self.requests:
            request.cancelled.set()


async def _closing(stream: AsyncIterator[str], events: Any) -> AsyncIterator[str]:
    """``stream``, cancelling generation when the client goes away mid-stream."""
    try:
        async for line in stream:
            yield line
    except ApiError as error:  # headers are sent: report in the stream, then end it
        yield _sse(error.body())
        yield DONE
    finally:
        events.cancel()


async def _collect(events: Any, count: int) -> list[_Choice]:
    choices = [_Choice(i) for i in range(count)]
    try:
        async for index, event in events:
            choices[index].add(event)
    finally:
        events.cancel()
    return choices


def _usage(choices: list[_Choice], prompt_tokens: int, n: int) -> dict[str, Any]:
    """Token counts; ``prompt_tokens`` counts each distinct prompt once, as OpenAI does."""
    completion = sum(c.completion_tokens for c in choices)
    cached = sum(c.cached_tokens for c in choices if c.index % n == 0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _chat_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.token.encode()),
                "top_logprobs": [
                    {"token": s, "logprob": lp, "bytes": list(s.encode())} for s, lp in t.top
                ],
            }
            for t in tokens
        ]
    }


def _text_logprobs(tokens: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """Legacy completions logprobs; ``offset`` is where the first token starts in the text."""
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


def _encode_vector(vector: Any, body: EmbeddingRequest) -> Any:
    if body.encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]


def _chunk(
    response_id: str,
    kind: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    include_usage: bool,
    usage: Any,
    **fields: Any,
) -> str:
    """One streamed chunk; with include_usage every chunk carries ``usage`` (null until
    the last), as OpenAI sends it. ``fields`` are lmforge's extensions (e.g. citations)."""
    data = {"id": response_id, "object": kind, "created": created, "model": model,
            "choices": choices, **fields}  # fmt: skip
    if include_usage:
        data["usage"] = usage
    return _sse(data)


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
