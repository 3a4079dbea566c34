"""POST /v1/responses: OpenAI's Responses API, over the same engine and prompts as chat.

A request's ``input`` (a string, or messages, function calls and their outputs) becomes
chat messages rendered as a chat completion's are (tools in the system prompt, calls and
results in the default tool format of ``data/tools.py``). ``instructions`` is the system
message of this request only: as in OpenAI's API, a request that continues an earlier
one with ``previous_response_id`` does not inherit its instructions. With ``store`` (the
default) the response and its conversation are kept in the server's store under the
caller's API key, where ``previous_response_id`` and ``GET /v1/responses/{id}`` find them.

Streaming sends the Responses event types in their order (``response.created``,
``response.output_item.added``, ``response.output_text.delta``, ... ``response.completed``),
which the openai client's ``responses.stream`` helper accumulates into the final response.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import Request

from lmforge.data.tools import parse_calls, plain_messages, tools_prompt
from lmforge.serve.api.base import Routes
from lmforge.serve.api.chat import (
    CallStream,
    ChatPrompts,
    _before_call,
    call_progress,
    openai_calls,
    with_tool_grammar,
)
from lmforge.serve.api.generation import Choice, closing, collect, respond
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import ResponsesRequest

# Why an answer stopped early, as the Responses API says it (incomplete_details.reason)
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class Responses(ChatPrompts):
    """Responses for the served model and its adapters (a chat turn in another shape)."""

    async def create(
        self, body: ResponsesRequest, owner: str | None = None, client: Request | None = None
    ) -> dict[str, Any] | AsyncIterator[str]:
        """A response; continuing ``previous_response_id`` (of ``owner``) when given, and
        stored for later requests when ``store`` is true and the server keeps a store."""
        adapter = self.adapter(body.model)
        served = self.served
        tools = body.callable_tools()
        earlier: list[dict[str, Any]] = []
        if body.previous_response_id is not None:
            earlier = self.stored(body.previous_response_id, owner, "previous_response_id")[1]
        new = body.messages()
        if served.guard is not None:
            new = await served.screen_input(new)
        history = [*earlier, *new]
        prompt = self._prompt(body, history, tools)
        max_tokens = served.max_tokens(body.max_output_tokens, len(prompt), "input")
        params = body.params(max_tokens)
        # A grammar problem is the text format's, else the tools' (their grammar)
        blamed = "text.format" if params.grammar is not None else "tools"
        params = with_tool_grammar(params, tools, required=body.tool_choice == "required",
                                   named=body.named_tool(),
                                   parallel=body.parallel_tool_calls)  # fmt: skip
        params = await self.checked(params, blamed)
        events = self.submit([prompt], params, adapter)
        response_id, message_id = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
        created = int(time.time())
        keep = body.store and served.store is not None

        def finish(choice: Choice, streamed: Sequence[CallStream] = ()) -> dict[str, Any]:
            """The response object of a finished answer, stored when asked; its calls keep
            the ids they were ``streamed`` with."""
            output, calls = output_items(choice.text, message_id, calls=bool(tools),
                                         streamed=streamed)  # fmt: skip
            status = "incomplete" if choice.finish_reason in _INCOMPLETE else "completed"
            response = self._response(body, response_id, created, status, output, keep)
            if status == "incomplete":
                response["incomplete_details"] = {"reason": _INCOMPLETE[str(choice.finish_reason)]}
            response["usage"] = {
                "input_tokens": len(prompt),
                "input_tokens_details": {"cached_tokens": choice.cached_tokens},
                "output_tokens": choice.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": len(prompt) + choice.completion_tokens,
            }
            if keep:
                text = next((o["content"][0]["text"] for o in output if o["type"] == "message"), "")
                answer = {"role": "assistant", "content": text, "tool_calls": calls}
                assert served.store is not None
                served.store.save_response(response, owner, [*history, answer])
            return response

        if body.stream:
            draft = self._response(body, response_id, created, "in_progress", [], keep)
            stream = _events(events, draft, message_id, finish, calls=bool(tools))
            return closing(stream, events)
        choice = (await collect(events, 1, client))[0]
        return finish(choice)

    def stored(
        self, response_id: str, owner: str | None, param: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A stored response of ``owner`` and its conversation, or a 404 naming ``param``."""
        found = self.served.require_store().get_response(response_id, owner)
        if found is None:  # another key's response is not found either
            raise ApiError(404, f"Response with id '{response_id}' not found (responses "
                           "belong to the API key that created them, and are kept only "
                           "when created with store: true).", param=param,
                           code="not_found")  # fmt: skip
        return found

    def _prompt(
        self, body: ResponsesRequest, history: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> list[int]:
        """The prompt's token ids: the instructions, the tools and the conversation. With
        ``truncation: "auto"`` the oldest exchanges are dropped to fit the context, as in
        a session; by default a conversation too long for it is a 400."""
        if body.truncation == "auto":
            parts = [body.instructions] if body.instructions else []
            system = "\n\n".join([*parts, tools_prompt(tools)] if tools else parts) or None
            return self.fit_session(system, plain_messages(history), body.max_output_tokens)
        head = [{"role": "system", "content": body.instructions}] if body.instructions else []
        return self.render(plain_messages([*head, *history], tools))

    def _response(
        self,
        body: ResponsesRequest,
        response_id: str,
        created: int,
        status: str,
        output: list[dict[str, Any]],
        stored: bool,
    ) -> dict[str, Any]:
        """The response object's fields (usage is added once known)."""
        choice = body.tool_choice
        text = body.text.model_dump(by_alias=True, exclude_none=True) if body.text else None
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": output,
            "parallel_tool_calls": body.parallel_tool_calls,
            "previous_response_id": body.previous_response_id,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "tool_choice": choice.model_dump()
            if choice and not isinstance(choice, str)
            else (choice or "auto"),
            "tools": [tool.model_dump(exclude_none=True) for tool in body.tools or []],
            "text": text or {"format": {"type": "text"}},
            "truncation": body.truncation,
            "store": stored,
            "metadata": body.metadata or {},
            "user": body.user,
            "system_fingerprint": self.served.system_fingerprint,
            "usage": None,
        }

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.post("/v1/responses")
        async def create_response(
            body: ResponsesRequest, request: Request, owner: str | None = routes.authorized
        ) -> Any:
            request.state.prompt = body.messages() if routes.log_prompts else None
            return respond(await routes.family(cls).create(body, owner, request))

        @routes.app.get("/v1/responses/{response_id}")
        async def get_response(response_id: str, owner: str | None = routes.authorized) -> Any:
            return routes.family(cls).stored(response_id, owner, "response_id")[0]

        @routes.app.delete("/v1/responses/{response_id}")
        async def delete_response(response_id: str, owner: str | None = routes.authorized) -> Any:
            family = routes.family(cls)
            family.stored(response_id, owner, "response_id")  # a 404 if it is not there
            family.served.require_store().delete_response(response_id, owner)
            return {"id": response_id, "object": "response", "deleted": True}


def output_items(
    text: str, message_id: str, *, calls: bool, streamed: Sequence[CallStream] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A finished answer as output items (a message, then each ``function_call``), and
    the calls in chat's ``tool_calls`` shape (for the stored conversation). With ``calls``
    (tools were given) the message is the text before the first call, if any. The first
    calls keep the ids they were ``streamed`` with; the others get new ones."""
    before, found = parse_calls(text) if calls else (text, [])
    items: list[dict[str, Any]] = []
    if before or not found:
        items.append(_message(message_id, before, "completed"))
    chat_calls = openai_calls(found, streamed)
    item_ids = [call.item_id for call in streamed]
    item_ids += [CallStream(call["name"]).item_id for call in found[len(item_ids) :]]
    for item_id, call in zip(item_ids, chat_calls, strict=False):
        function = call["function"]
        items.append({"type": "function_call", "id": item_id, "call_id": call["id"],
                      "name": function["name"], "arguments": function["arguments"],
                      "status": "completed"})  # fmt: skip
    return items, chat_calls


def _message(message_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": message_id, "status": status, "role": "assistant",
            "content": [_text_part(text)]}  # fmt: skip


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


async def _events(
    events: Any,
    draft: dict[str, Any],
    message_id: str,
    finish: Callable[[Choice, Sequence[CallStream]], dict[str, Any]],
    *,
    calls: bool,
) -> AsyncIterator[str]:
    """The server-sent events of a streamed response. Text streams as it is generated;
    with ``calls`` (tools were given) the text from a ``<tool_call>`` tag on is never
    message text: each call is added as a ``function_call`` item once its name is written
    and its arguments stream as ``response.function_call_arguments.delta`` events."""
    sequence = 0

    def send(kind: str, **fields: Any) -> str:
        nonlocal sequence
        data = json.dumps({"type": kind, "sequence_number": sequence, **fields},
                          ensure_ascii=False)  # fmt: skip
        sequence += 1
        return f"event: {kind}\ndata: {data}\n\n"

    where = {"item_id": message_id, "output_index": 0}
    opened, sent = False, 0  # the message item is added with its first text
    streamed: list[CallStream] = []

    def open_message() -> list[str]:
        nonlocal opened
        opened = True
        return [send("response.output_item.added", output_index=0,
                     item={**_message(message_id, "", "in_progress"), "content": []}),
                send("response.content_part.added", **where, content_index=0,
                     part=_text_part(""))]  # fmt: skip

    def call_events(text: str) -> list[str]:
        """Events that bring the streamed calls up to ``text``'s."""
        lines = []
        for index, new, added in call_progress(text, streamed):
            call = streamed[index]
            if new:
                item = {"type": "function_call", "id": call.item_id, "call_id": call.id,
                        "name": call.name, "arguments": "", "status": "in_progress"}  # fmt: skip
                lines.append(send("response.output_item.added",
                                  output_index=index + opened, item=item))  # fmt: skip
            if added:
                lines.append(send("response.function_call_arguments.delta",
                                  item_id=call.item_id, output_index=index + opened,
                                  delta=added))  # fmt: skip
        return lines

    yield send("response.created", response=draft)
    yield send("response.in_progress", response=draft)
    choice = Choice(0)
    async for _, event in events:
        choice.add(event)
        if event.finish_reason:
            break
        end = len(choice.text[: _before_call(choice.text)].rstrip()) if calls else len(choice.text)
        if end > sent and not streamed:
            for line in [] if opened else open_message():
                yield line
            yield send("response.output_text.delta", **where, content_index=0,
                       delta=choice.text[sent:end], logprobs=[])  # fmt: skip
            sent = end
        for line in call_events(choice.text) if calls else []:
            yield line
    for line in call_events(choice.text) if calls else []:
        yield line
    response = finish(choice, streamed)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            for line in [] if opened else open_message():
                yield line
            if len(text) > sent:
                yield send("response.output_text.delta", **where, content_index=0,
                           delta=text[sent:], logprobs=[])  # fmt: skip
            yield send("response.output_text.done", **where, content_index=0, text=text,
                       logprobs=[])  # fmt: skip
            yield send("response.content_part.done", **where, content_index=0,
                       part=item["content"][0])  # fmt: skip
        else:
            call = {"item_id": item["id"], "output_index": index}
            if not any(item["id"] == c.item_id for c in streamed):  # not streamed: at once
                yield send("response.output_item.added", output_index=index,
                           item={**item, "arguments": "", "status": "in_progress"})  # fmt: skip
                yield send("response.function_call_arguments.delta", **call,
                           delta=item["arguments"])  # fmt: skip
            yield send("response.function_call_arguments.done", **call, name=item["name"],
                       arguments=item["arguments"])  # fmt: skip
        yield send("response.output_item.done", output_index=index, item=item)
    kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
    yield send(kind, response=response)
