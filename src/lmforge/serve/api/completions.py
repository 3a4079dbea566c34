"""POST /v1/completions: legacy text completions of one prompt or a batch of them, as
text or token ids."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from lmforge.serve.api.base import Routes
from lmforge.serve.api.generation import (
    DONE,
    Choice,
    GenerationFamily,
    chunk,
    closing,
    collect,
    respond,
    token_usage,
)
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import CompletionRequest, EngineCompletionRequest
from lmforge.serve.requests import TokenLogprob


class Completions(GenerationFamily):
    """Text completions for the served model and its adapters."""

    async def create(
        self, body: CompletionRequest, client: Request | None = None
    ) -> dict[str, Any] | AsyncIterator[str]:
        """``n`` completions of each prompt; choice ``i`` completes prompt ``i // n``; with
        the ``client``'s HTTP request, a client that leaves cancels the generation."""
        adapter = self.adapter(body.model)
        if body.suffix:
            raise ApiError(400, "suffix is not supported by this model", param="suffix")
        served = self.served
        raw_prompts = body.prompts()
        if served.guard is not None:
            raw_prompts = [await served.screen_prompt(p) for p in raw_prompts]
        prompts = [self.tokens(p) for p in raw_prompts]
        if not prompts or any(not p for p in prompts):
            raise ApiError(400, "prompt must not be empty", param="prompt")
        longest = max(len(p) for p in prompts)
        max_tokens = served.max_tokens(body.max_tokens, longest, "prompt")
        top = body.logprobs or 0
        params = await self.checked(
            body.params(max_tokens, logprobs=body.logprobs is not None, top_logprobs=top),
            body.grammar_param(),
        )
        expanded = [p for p in prompts for _ in range(body.n)]  # choice i: prompt i // n
        echoes = [served.tokenizer.decode(p) if body.echo else "" for p in expanded]
        response_id = f"cmpl-{uuid.uuid4().hex}"
        events = self.submit(expanded, params, adapter)
        usage_prompt_tokens = sum(len(p) for p in prompts)
        if body.stream:
            stream = self._stream(
                response_id, body.model, events, echoes, body.logprobs is not None,
                body.include_usage(), usage_prompt_tokens, body.n,
            )  # fmt: skip
            return closing(stream, events)
        choices = await collect(events, len(expanded), client)
        return {
            "id": response_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.model,
            "system_fingerprint": self.served.system_fingerprint,
            "choices": [
                {
                    "index": c.index,
                    "text": echoes[c.index] + c.text,
                    "logprobs": (
                        text_logprobs(c.logprobs, len(echoes[c.index]))
                        if body.logprobs is not None
                        else None
                    ),
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            "usage": token_usage(choices, usage_prompt_tokens, body.n),
        }

    async def _stream(
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
        created, fingerprint = int(time.time()), self.served.system_fingerprint
        choices = [Choice(i) for i in range(len(echoes))]

        def text_chunk(choice_list: list[dict[str, Any]], usage: Any = None) -> str:
            return chunk(response_id, "text_completion", created, model, choice_list,
                         include_usage, usage, fingerprint)  # fmt: skip

        sent = [0] * len(echoes)  # characters sent per choice
        async for index, event in events:
            choices[index].add(event)
            text = event.text if sent[index] else echoes[index] + event.text
            offset = sent[index] + len(text) - len(event.text)
            sent[index] += len(text)
            if text or event.logprobs or event.finish_reason:
                token_logprobs = text_logprobs(event.logprobs, offset) if logprobs else None
                yield text_chunk([{"index": index, "text": text, "logprobs": token_logprobs,
                                   "finish_reason": event.finish_reason}])  # fmt: skip
        if include_usage:
            yield text_chunk([], usage=token_usage(choices, prompt_tokens, n))
        yield DONE

    def tokens(self, prompt: str | list[int]) -> list[int]:
        """A prompt's token ids: a text tokenized, or ids checked against the vocabulary."""
        tokenizer = self.served.tokenizer
        if isinstance(prompt, str):
            return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        vocab = len(tokenizer)
        if any(not 0 <= t < vocab for t in prompt):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        return list(prompt)

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/completions")
        async def completions(
            body: CompletionRequest, request: Request, owner: str | None = routes.authorized
        ) -> Any:
            request.state.prompt = body.prompt if routes.log_prompts else None
            return respond(await routes.family(cls).create(body, request))

        @routes.app.post("/v1/engines/{engine}/completions")
        async def engine_completions(
            engine: str,
            body: EngineCompletionRequest,
            request: Request,
            owner: str | None = routes.authorized,
        ) -> Any:
            """The pre-1.0 ``openai`` library's ``openai.Completion.create(engine=...)``
            (still in many tutorials): a completion with ``model`` = ``engine``."""
            request.state.prompt = body.prompt if routes.log_prompts else None
            named = body.model_copy(update={"model": engine})
            return respond(await routes.family(cls).create(named, request))


def text_logprobs(tokens: list[TokenLogprob], offset: int) -> dict[str, Any]:
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
