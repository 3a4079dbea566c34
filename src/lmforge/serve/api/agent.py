"""/v1/agent (an lmforge extension, on a server started with ``--agent``): the support
agent (``lmforge.agent``) over the served model, for the web page's Agent mode and any
HTTP client.

``POST /v1/agent/turns`` runs one customer turn: the agent loop asks the served model
through this server's own chat completions (the tools in the prompt, their arguments
constrained to the schemas), runs the calls it makes on the order database, and answers
with the turn's tool steps, its answer and the new messages (which the client sends back
as ``history`` next turn). Every tool call is logged to ``$LMFORGE_HOME/agent/calls.jsonl``.
``GET /v1/agent`` describes the agent (its tools and system prompt), or is a 404 on a
server without one.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lmforge.agent.orders import SUPPORT_PROMPT, TOOLS
from lmforge.agent.support import call_log, support_agent
from lmforge.serve.api.base import Routes
from lmforge.serve.api.chat import Chat
from lmforge.serve.api.generation import GenerationFamily
from lmforge.serve.errors import ApiError
from lmforge.serve.protocol import AgentTurnRequest, ChatCompletionRequest


class AgentTurns(GenerationFamily):
    """Customer turns through the support agent, over the served model or an adapter."""

    def __init__(self, served: Any) -> None:
        super().__init__(served)
        self.log = call_log()

    def _database(self) -> Any:
        if self.served.agent_db is None:
            raise ApiError(404, "this server serves no support agent; start it with --agent",
                           code="agent_not_served")  # fmt: skip
        return self.served.agent_db

    def describe(self) -> dict[str, Any]:
        self._database()
        return {"object": "agent", "tools": TOOLS, "system": SUPPORT_PROMPT}

    async def turn(self, body: AgentTurnRequest, owner: str | None) -> dict[str, Any]:
        db = self._database()
        self.adapter(body.model)  # a 404 for a model this server does not serve
        chat = self.served.family(Chat)

        async def complete(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict:
            request = ChatCompletionRequest.model_validate({
                "model": body.model, "messages": messages, "tools": tools,
                "tool_choice": body.tool_choice, "max_tokens": body.max_tokens,
                "temperature": 0,
            })  # fmt: skip
            reply = await chat.create(request, owner)
            assert isinstance(reply, dict)  # not streamed
            message = reply["choices"][0]["message"]
            return {"role": "assistant", "content": message.get("content") or "",
                    "tool_calls": message.get("tool_calls") or []}  # fmt: skip

        agent = support_agent(complete, db, max_steps=body.max_steps, on_step=self.log)
        history = [m.model_dump(exclude_none=True) for m in body.history]
        turn = await agent.turn(history, body.message)
        return {"object": "agent.turn", "answer": turn.answer, "stopped": turn.stopped,
                "steps": [asdict(step) for step in turn.steps],
                "messages": turn.messages}  # fmt: skip

    @classmethod
    def add_routes(cls, routes: Routes) -> None:
        @routes.app.get("/v1/agent")
        async def describe_agent(owner: str | None = routes.authorized) -> Any:
            return routes.family(cls).describe()

        @routes.app.post("/v1/agent/turns")
        async def agent_turn(body: AgentTurnRequest, owner: str | None = routes.authorized) -> Any:
            return await routes.family(cls).turn(body, owner)
