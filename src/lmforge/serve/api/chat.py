"""POST /v1/chat/completions: chat answers, continuing a stored session when the request
names one, grounded in a knowledge base (``--kb``) and with the customer's sentiment
(``--sentiment``) on a server that has them."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from lmforge.data.chat import render_chat
from lmforge.data.tools import (
    CALL_OPEN,
    calls_grammar,
    is_tool_result,
    parse_calls,
    partial_calls,
    plain_messages,
    tools_prompt,
)
from lmforge.retrieve.kb import Hit
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
from lmforge.serve.errors import ApiError, lmforge_errors_as
from lmforge.serve.protocol import ChatCompletionRequest
from lmforge.serve.requests import Grammar, RequestParams, TokenLogprob
from lmforge.serve.store import Session
from lmforge.serve.understand import Grounding

SESSION_ANSWER_RESERVE = 512  # tokens kept free for the answer when max_tokens is not given


class ChatPrompts(GenerationFamily):
    """What the families that answer conversations share (chat completions, responses):
    a conversation's prompt through the model's chat template."""

    def render(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt's token ids, through the model's chat template."""
        with lmforge_errors_as(400, param="messages"):
            return render_chat(self.served.tokenizer, messages, model_ref=self.served.model_name)

    def fit_session(
        self, system: str | None, history: list[dict[str, str]], max_tokens: int | None
    ) -> list[int]:
        """The session prompt that fits the context with room for the answer.

        The system prompt always stays; whole exchanges are dropped oldest first (from
        one user message to the next), so the model never sees half a turn.
        """
        context = self.served.llm().max_len
        reserve = max_tokens or min(self.served.max_tokens_limit, SESSION_ANSWER_RESERVE)
        head = [{"role": "system", "content": system}] if system else []
        start = 0
        while True:
            prompt = self.render(head + history[start:])
            if len(prompt) + reserve <= context:
                return prompt
            later_users = [
                i for i in range(start + 1, len(history)) if history[i]["role"] == "user"
            ]
            if not later_users:
                raise ApiError(
                    400,
                    f"the system prompt and the newest message take {len(prompt)} tokens; with "
                    f"{reserve} for the answer that exceeds the model's context of "
                    f"{context} tokens. Send a shorter message or ask for fewer "
                    "max_tokens.",
                    param="messages",
                    code="context_length_exceeded",
                )
            start = later_users[0]


class Chat(ChatPrompts):
    """Chat completions for the served model and its adapters."""

    async def create(
        self, body: ChatCompletionRequest, owner: str | None = None, client: Request | None = None
    ) -> dict[str, Any] | AsyncIterator[str]:
        """A chat completion; with ``session_id`` the stored conversation (of ``owner``,
        the caller's API key id) comes first and the answer is stored after it. With the
        ``client``'s HTTP request, a client that leaves cancels the generation."""
        adapter = self.adapter(body.model)
        top = body.top_logprobs or 0
        if top and not body.logprobs:
            raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        served = self.served
        tools = body.callable_tools()
        new_messages = body.conversation()
        if served.guard is not None:
            new_messages = await served.screen_input(new_messages)
        session, history = None, new_messages
        if body.session_id is not None:
            session = served.session(body.session_id, owner)
            history = session.messages + history
        hits, extra, trend = await self._understand(new_messages, session)
        if session is not None:
            system = Grounding.system_prompt(session.system, hits) if hits else session.system
            if tools:
                system = "\n\n".join([*([system] if system else []), tools_prompt(tools)])
            prompt = self.fit_session(system, history, body.requested_max_tokens())
        else:
            grounded = Grounding.with_passages(history, hits) if hits else history
            prompt = self.render(plain_messages(grounded, tools))
        max_tokens = served.max_tokens(body.requested_max_tokens(), len(prompt), "messages")
        params = body.params(max_tokens, logprobs=body.logprobs, top_logprobs=top)
        # A grammar problem is the response format's, else the tools' (their grammar)
        blamed = body.grammar_param() if params.grammar is not None else "tools"
        params = with_tool_grammar(params, tools, required=body.tool_choice == "required",
                                   named=body.named_tool(),
                                   parallel=body.parallel_tool_calls)  # fmt: skip
        params = await self.checked(params, blamed)
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        events = self.submit([prompt] * body.n, params, adapter)

        def remember(choices: list[Choice]) -> None:
            """Store the turn (the first choice's answer) once it is complete."""
            if session is not None and choices[0].finish_reason in {"stop", "length"}:
                session.messages = [*history, {"role": "assistant", "content": choices[0].text}]
                if trend is not None:
                    escalate, rule = extra["escalate"], extra["escalate_rule"]
                    session.metadata["sentiment"] = {"turns": trend, "escalate": escalate,
                                                     "rule": rule}  # fmt: skip
                assert served.store is not None
                served.store.save_messages(session)

        grounding = served.understanding.grounding
        if body.stream:
            if grounding is not None:
                extra["citations"] = grounding.citations(hits)
            stream = self._stream(response_id, body.model, events, body.n, body.include_usage(),
                                  remember, extra, calls=bool(tools))  # fmt: skip
            return closing(stream, events)
        choices = await collect(events, body.n, client)
        if grounding is not None:
            for choice in choices:  # markers pointed at the passages holding the facts
                choice.text, repairs = grounding.verify(choice.text, hits)
                if choice.index == 0:
                    extra["citation_repairs"] = repairs
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
            "system_fingerprint": self.served.system_fingerprint,
            "choices": [
                {
                    "index": c.index,
                    "message": assistant_message(c.text, calls=bool(tools)),
                    "logprobs": chat_logprobs(c.logprobs) if body.logprobs else None,
                    "finish_reason": finish_reason(c, calls=bool(tools)),
                }
                for c in choices
            ],
            "usage": token_usage(choices, len(prompt), body.n),
        }

    async def _stream(
        self,
        response_id: str,
        model: str,
        events: Any,
        count: int,
        include_usage: bool,
        on_complete: Callable[[list[Choice]], None],
        extra: dict[str, Any],
        calls: bool = False,
    ) -> AsyncIterator[str]:
        """The chunks of a streamed chat answer; the first carries the ``extra`` fields
        (citations, sentiment), which are known before the answer starts. With ``calls``
        (tools were given) the text from a ``<tool_call>`` tag on is never content: each
        call is streamed as ``tool_calls`` deltas in OpenAI's shape, its id, type and name
        once the name is written, then its arguments' text as it is generated."""
        prompt_tokens = len(events.requests[0].prompt_ids)
        created, fingerprint = int(time.time()), self.served.system_fingerprint
        choices = [Choice(i) for i in range(count)]

        def chat_chunk(choice_list: list[dict[str, Any]], usage: Any = None, **fields: Any) -> str:
            return chunk(response_id, "chat.completion.chunk", created, model, choice_list,
                         include_usage, usage, fingerprint, **fields)  # fmt: skip

        for index in range(count):
            yield chat_chunk([{"index": index, "delta": {"role": "assistant", "content": ""},
                               "logprobs": None, "finish_reason": None}],
                             **(extra if index == 0 else {}))  # fmt: skip
        sent = [0] * count  # characters of each choice's text sent as content
        streamed: list[list[CallStream]] = [[] for _ in range(count)]  # each choice's calls
        async for index, event in events:
            choice = choices[index]
            choice.add(event)
            if not (event.text or event.logprobs or event.finish_reason):
                continue
            logprobs = chat_logprobs(event.logprobs) if event.logprobs else None
            end, reason = len(choice.text), event.finish_reason
            if calls and not event.finish_reason:
                end = _before_call(choice.text)
            elif calls:
                before, found = parse_calls(choice.text)
                end = len(before) if found else end
                reason = finish_reason(choice, calls=True)
            content = choice.text[sent[index] : max(end, sent[index])]
            sent[index] += len(content)
            delta: dict[str, Any] = {"content": content} if content else {}
            tool_calls = _call_deltas(choice.text, streamed[index]) if calls else []
            if tool_calls:
                delta["tool_calls"] = tool_calls
            if delta or logprobs or reason:
                yield chat_chunk([{"index": index, "delta": delta, "logprobs": logprobs,
                                   "finish_reason": reason}])  # fmt: skip
        on_complete(choices)
        if include_usage:
            yield chat_chunk([], usage=token_usage(choices, prompt_tokens, count))
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
        compute, understanding = self.served.compute, self.served.understanding
        users = [m["content"] for m in new_messages  # the user's own words, not tool results
                 if m["role"] == "user" and m["content"] and not is_tool_result(m)]  # fmt: skip
        grounding, monitor = understanding.grounding, understanding.sentiment
        hits = await compute(grounding.retrieve, users[-1]) if grounding and users else []
        if monitor is None or not users:
            return hits, {}, None
        scored = await compute(monitor.score, users)
        earlier = session.metadata.get("sentiment", {}).get("turns", []) if session else []
        trend = [*earlier, *scored]
        fields = {"sentiment": scored[-1], "escalate": monitor.escalate(trend),
                  "escalate_rule": monitor.rule}  # fmt: skip
        return hits, fields, trend

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/chat/completions")
        async def chat(
            body: ChatCompletionRequest, request: Request, owner: str | None = routes.authorized
        ) -> Any:
            request.state.prompt = body.conversation() if routes.log_prompts else None
            return respond(await routes.family(cls).create(body, owner, request))


def chat_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """Chat logprobs: each token with its bytes and its most likely alternatives."""
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


def with_tool_grammar(
    params: RequestParams,
    tools: list[dict[str, Any]],
    *,
    required: bool,
    named: str | None,
    parallel: bool,
) -> RequestParams:
    """``params`` constrained for ``tools``: when a call is ``required`` or the function
    ``named``, the whole answer is calls, their arguments valid under each function's
    schema; else (``auto``) the model may write text, and once it opens a call the rest is
    constrained. One call unless ``parallel``."""
    if not tools:
        return params
    if required or named is not None:
        if params.grammar is not None:
            raise ApiError(400, "tool_choice: a required or named tool call cannot have a "
                           "response format or structured_outputs too",
                           param="tool_choice")  # fmt: skip
        if named is not None:
            tools = [t for t in tools if t["function"]["name"] == named]
        grammar = Grammar("lark", calls_grammar(tools, parallel=parallel))
        return dataclasses.replace(params, grammar=grammar)
    if params.grammar is not None:  # a response format rules the text: no calls
        return params
    opened = Grammar("lark", calls_grammar(tools, parallel=parallel, opened=True))
    return dataclasses.replace(params, grammar_after=(CALL_OPEN, opened))


def tool_call_list(text: str) -> tuple[str, list[dict[str, Any]]]:
    """The content before the calls and the calls in OpenAI's shape (ids are new)."""
    before, calls = parse_calls(text)
    return before, openai_calls(calls)


def openai_calls(
    calls: Sequence[dict[str, Any]], streamed: Sequence[CallStream] = ()
) -> list[dict[str, Any]]:
    """Parsed calls (``parse_calls``) in chat's ``tool_calls`` shape, arguments as JSON
    text; the first ones keep the ids they were streamed with (``streamed``)."""
    ids = [call.id for call in streamed]
    ids += [CallStream(call["name"]).id for call in calls[len(ids) :]]
    return [{"id": call_id, "type": "function", "function": {"name": call["name"],
             "arguments": json.dumps(call["arguments"], ensure_ascii=False)}}
            for call_id, call in zip(ids, calls, strict=False)]  # fmt: skip


def assistant_message(text: str, *, calls: bool) -> dict[str, Any]:
    """The answer as an assistant message: with ``calls``, its tool calls parsed out."""
    if not calls:
        return {"role": "assistant", "content": text}
    before, tool_calls = tool_call_list(text)
    if not tool_calls:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": before or None, "tool_calls": tool_calls}


def finish_reason(choice: Choice, *, calls: bool) -> str | None:
    """``tool_calls`` when a finished answer holds calls, else the engine's reason."""
    if calls and choice.finish_reason == "stop" and parse_calls(choice.text)[1]:
        return "tool_calls"
    return choice.finish_reason


@dataclass
class CallStream:
    """One tool call as it is streamed: its name, its ids (chat's call id, and the
    Responses API's output item id) and how much of its arguments' text has been sent."""

    name: str
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    item_id: str = field(default_factory=lambda: f"fc_{uuid.uuid4().hex}")
    sent: int = 0


def call_progress(text: str, streamed: list[CallStream]) -> list[tuple[int, bool, str]]:
    """What brings ``streamed`` (updated) up to the calls that a growing answer ``text``
    has opened: for each call that changed, its index, whether it is new, and its
    arguments' text added since the last time."""
    changes = []
    for index, (name, arguments) in enumerate(partial_calls(text)):
        new = index == len(streamed)
        if new:
            streamed.append(CallStream(name))
        call = streamed[index]
        added = arguments[call.sent :]
        call.sent += len(added)
        if new or added:
            changes.append((index, new, added))
    return changes


def _call_deltas(text: str, streamed: list[CallStream]) -> list[dict[str, Any]]:
    """The ``tool_calls`` deltas that bring ``streamed`` up to the calls in ``text``: a
    new call's id, type and name (with empty arguments), then the arguments' text added."""
    deltas: list[dict[str, Any]] = []
    for index, new, added in call_progress(text, streamed):
        call = streamed[index]
        if new:
            deltas.append({"index": index, "id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": ""}})  # fmt: skip
        if added:
            deltas.append({"index": index, "function": {"arguments": added}})
    return deltas


def _before_call(text: str) -> int:
    """How much of ``text`` may stream as content: up to an opened ``<tool_call>``, or up
    to a tail that could still become one."""
    opened = text.find(CALL_OPEN)
    if opened >= 0:
        return opened
    for keep in range(min(len(CALL_OPEN) - 1, len(text)), 0, -1):
        if CALL_OPEN.startswith(text[-keep:]):
            return len(text) - keep
    return len(text)
