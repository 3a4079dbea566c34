"""The agent loop: model, tool, model, until the model answers in words or the step limit.

Each step asks the served model for the next assistant message with the tools declared
(``tool_choice: "auto"``); each call it makes is checked before it runs: a tool the
request did not declare is never executed, and arguments that are not a JSON object
valid under the tool's schema are refused. The model sees a refusal as the tool's
result, with the reason, and may try again. Every call, its arguments and its result
are logged (``AgentTurn.steps`` and the ``on_step`` callback).

The model is reached through ``Complete``: a function from messages and tools to the next
assistant message. ``openai_complete`` makes one over any OpenAI-compatible server (an
``lmforge serve``), which renders the tools in the model's prompt and constrains the
calls' arguments to their schemas.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from lmforge.agent.orders import result_text

# messages, tools -> the next assistant message ({"role", "content", "tool_calls"})
Complete = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Awaitable[dict[str, Any]]]
Runner = Callable[[str, dict[str, Any]], dict[str, Any]]  # tool name, arguments -> result

MAX_STEPS = 4  # model calls per user turn


@dataclass(frozen=True)
class ToolStep:
    """One tool call the model made, and what came of it."""

    name: str
    arguments: str  # as the model wrote them (JSON text)
    result: dict[str, Any]
    executed: bool  # False: refused before running (undeclared tool or bad arguments)


@dataclass
class AgentTurn:
    """What one user message led to: the tool steps, the answer and the new messages."""

    answer: str
    steps: list[ToolStep] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # assistant and tool turns
    stopped: str = "answer"  # or "step_limit": the model was still calling tools


class Agent:
    """Runs user turns through ``complete`` with the ``tools`` (OpenAI's chat shape)
    that ``run`` executes.

    Args:
        complete: the model (see ``openai_complete``).
        tools: the declared tools; only these are ever executed.
        run: executes a declared tool with validated arguments (``OrderTools.call``).
        system: the system prompt, first in every conversation.
        max_steps: model calls per user turn.
        on_step: called with each tool step as it happens (logging).
    """

    def __init__(
        self,
        complete: Complete,
        tools: list[dict[str, Any]],
        run: Runner,
        *,
        system: str | None = None,
        max_steps: int = MAX_STEPS,
        on_step: Callable[[ToolStep], None] | None = None,
    ) -> None:
        self.complete, self.tools, self.run = complete, tools, run
        self.system, self.max_steps, self.on_step = system, max_steps, on_step
        self.schemas = {t["function"]["name"]: t["function"].get("parameters") or {}
                        for t in tools}  # fmt: skip

    async def turn(self, history: list[dict[str, Any]], user: str) -> AgentTurn:
        """Answer ``user`` after ``history`` (earlier turns, without the system prompt)."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        new: list[dict[str, Any]] = [{"role": "user", "content": user}]
        turn = AgentTurn(answer="")
        for _ in range(self.max_steps):
            reply = await self.complete([*head, *history, *new], self.tools)
            calls = reply.get("tool_calls") or []
            new.append({"role": "assistant", "content": reply.get("content") or "",
                        **({"tool_calls": calls} if calls else {})})  # fmt: skip
            if not calls:
                turn.answer = reply.get("content") or ""
                break
            for call in calls:
                step = self._execute(call["function"]["name"], call["function"]["arguments"])
                turn.steps.append(step)
                if self.on_step is not None:
                    self.on_step(step)
                new.append({"role": "tool", "tool_call_id": call.get("id"),
                            "content": result_text(step.result)})  # fmt: skip
        else:
            turn.stopped = "step_limit"
            turn.answer = next(m["content"] for m in reversed(new) if m["role"] == "assistant")
        turn.messages = new
        return turn

    def _execute(self, name: str, arguments: str) -> ToolStep:
        """Run one call if it is declared and its arguments validate; else refuse it."""
        if name not in self.schemas:
            refusal = f"no tool named {name!r}; the tools are: {', '.join(self.schemas)}"
            return ToolStep(name, arguments, {"error": refusal}, executed=False)
        try:
            parsed = json.loads(arguments)
            jsonschema.validate(parsed, self.schemas[name])
        except (ValueError, jsonschema.ValidationError) as error:
            message = error.message if isinstance(error, jsonschema.ValidationError) else error
            refusal = f"arguments for {name} are not valid: {message}"
            return ToolStep(name, arguments, {"error": refusal}, executed=False)
        return ToolStep(name, arguments, self.run(name, parsed), executed=True)


def openai_complete(
    client: Any,
    model: str,
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    tool_choice: str = "auto",
) -> Complete:
    """A ``Complete`` over an OpenAI-compatible server, through the ``openai`` client's
    ``AsyncOpenAI`` ``client``; greedy by default, so a run is repeatable. ``tool_choice``
    ``"auto"`` lets the model choose between a call and an answer."""

    async def complete(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict:
        reply = await client.chat.completions.create(
            model=model, messages=messages, tools=tools, tool_choice=tool_choice,
            max_tokens=max_tokens, temperature=temperature,
        )  # fmt: skip
        message = reply.choices[0].message
        calls = [call.model_dump(include={"id", "type", "function"})
                 for call in message.tool_calls or []]  # fmt: skip
        return {"role": "assistant", "content": message.content or "", "tool_calls": calls}

    return complete
