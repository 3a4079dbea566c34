"""What chat and text completions share: one engine request per choice, their merged
events (screened by the guard's output check when the server has one), the choices they
add up to, usage, and the server-sent-event chunks of a stream."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, StreamingResponse

from lmforge.errors import LmforgeError
from lmforge.serve.api.base import EndpointFamily, OpenAIHandler
from lmforge.serve.errors import ApiError, api_error, lmforge_errors_as
from lmforge.serve.guarded import GuardedEvents
from lmforge.serve.requests import Event, Request, RequestParams, TokenLogprob

DONE = "data: [DONE]\n\n"


class GenerationFamily(EndpointFamily):
    """A family that generates text with the engine: ``model`` names the base model or
    one of its LoRA adapters."""

    needs = "generation"

    @classmethod
    def describe_model(cls, served: OpenAIHandler, name: str, model: Any) -> dict[str, Any]:
        """The base model and each adapter (whose parent is the base), with the context."""
        parent = None if name == served.model_name else served.model_name
        return {"max_model_len": model.max_len, "root": served.model_name, "parent": parent}

    def adapter(self, name: str) -> str | None:
        """The adapter a ``model`` field asks for (None: the base model); a 404 for a
        model this server does not serve."""
        self.model(name)
        return None if name == self.served.model_name else name

    async def checked(self, params: RequestParams, param: str) -> RequestParams:
        """``params`` once the engine can honour them: their grammar compiles (else a 400
        that names ``param``, the field it came from, and what is wrong or unsupported) and
        ``logit_bias`` names tokens of the model's vocabulary."""
        engine = self.served.llm()
        grammars = getattr(engine, "grammars", None)  # a GrammarCompiler (serve/grammar.py)
        wanted = [params.grammar, params.grammar_after[1] if params.grammar_after else None]
        for grammar in (g for g in wanted if g is not None):
            if grammars is None:
                raise ApiError(400, "this server's backend cannot constrain decoding",
                               param=param, code="unsupported_value")  # fmt: skip
            with lmforge_errors_as(400, param=param, code="unsupported_value"):
                await asyncio.to_thread(grammars.check, grammar)  # the first: ~0.6 s
        vocab = grammars.vocab_size if grammars is not None else len(engine.tokenizer)
        outside = [token for token, _ in params.logit_bias if not 0 <= token < vocab]
        if outside:
            raise ApiError(400, f"logit_bias: token id {outside[0]} is not in the model's "
                           f"vocabulary (0 to {vocab - 1})", param="logit_bias")  # fmt: skip
        return params

    def not_served(self, name: str) -> ApiError:
        """A 404 that lists the base model and its adapters."""
        self.served.llm()  # a server that does not generate says what it serves instead
        served = ", ".join([self.served.model_name, *self.served.adapters])
        return ApiError(
            404,
            f"The model '{name}' does not exist; this server serves: {served} "
            "(see GET /v1/models).",
            param="model",
            code="model_not_found",
        )

    def submit(self, prompts: list[list[int]], params: RequestParams, adapter: str | None) -> Any:
        """Queue one engine request per choice; returns their merged events (``Events``,
        or ``GuardedEvents`` over them on a server with a guard)."""
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
                self.served.llm().submit(request)
        except LmforgeError as error:  # the queue is full, or the prompt fills the context
            for request in requests:
                request.cancelled.set()
            raise api_error(error, 400, code="context_length_exceeded") from error
        events = Events(queue, requests)
        guard = self.served.guard
        return events if guard is None else GuardedEvents(events, guard, self.served.compute)


@dataclass
class Choice:
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


class Events:
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


async def collect(events: Any, count: int, client: HttpRequest | None = None) -> list[Choice]:
    """The ``count`` choices of a whole (not streamed) answer. With the ``client``'s HTTP
    request, a client that disconnects first cancels the generation at once (its slot is
    free after the engine's current step) and gets a 499."""
    choices = [Choice(i) for i in range(count)]

    async def gather() -> None:
        async for index, event in events:
            choices[index].add(event)

    try:
        if client is None:
            await gather()
            return choices
        work, gone = asyncio.ensure_future(gather()), asyncio.ensure_future(_left(client))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not work.done():
            work.cancel()
            raise ApiError(499, "the client closed the connection before the answer",
                           code="client_closed_request")  # fmt: skip
        work.result()  # raises what generation raised
        return choices
    finally:
        events.cancel()


async def _left(client: HttpRequest) -> None:
    """Return when ``client`` disconnects (its request body was already read)."""
    while (await client.receive())["type"] != "http.disconnect":
        pass


async def closing(stream: AsyncIterator[str], events: Any) -> AsyncIterator[str]:
    """``stream``, cancelling generation when the client goes away mid-stream."""
    try:
        async for line in stream:
            yield line
    except ApiError as error:  # headers are sent: report in the stream, then end it
        yield sse(error.body())
        yield DONE
    finally:
        events.cancel()


def token_usage(choices: list[Choice], prompt_tokens: int, n: int) -> dict[str, Any]:
    """Token counts; ``prompt_tokens`` counts each distinct prompt once, as OpenAI does."""
    completion = sum(c.completion_tokens for c in choices)
    cached = sum(c.cached_tokens for c in choices if c.index % n == 0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def chunk(
    response_id: str,
    kind: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    include_usage: bool,
    usage: Any,
    system_fingerprint: str,
    **fields: Any,
) -> str:
    """One streamed chunk; with include_usage every chunk carries ``usage`` (null until
    the last), as OpenAI sends it. ``fields`` are lmforge's extensions (e.g. citations)."""
    data = {"id": response_id, "object": kind, "created": created, "model": model,
            "system_fingerprint": system_fingerprint, "choices": choices, **fields}  # fmt: skip
    if include_usage:
        data["usage"] = usage
    return sse(data)


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def respond(result: dict[str, Any] | AsyncIterator[str]) -> Any:
    """A JSON response, or a server-sent-event stream."""
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream")
