"""The ``agent`` evaluation: the support agent (``lmforge.agent``) on scripted
conversations, each against a fresh copy of the bundled order database.

A record gives the customer's ``turns`` (sent one by one, each answered by the agent loop
with its tools), the tool ``calls`` expected over the conversation (``name``, or a list
of acceptable names, and the ``arguments`` that must match exactly; keys not listed, such
as an escalation's free-text summary, are not compared) and the ``facts`` the final
answer must state (each a list of acceptable spellings, compared case-insensitively).
The bundled set is ``bundled:tool_dialogs/agent_test`` (hand-written).

Per conversation (each 0 or 1, with Wilson intervals):

- ``tool_calls``: the agent called exactly the expected tools, in order (no call when
  none is expected);
- ``arguments``: that, and every call's arguments match the expected ones;
- ``valid_arguments``: every call's arguments validated against its tool's schema (the
  server constrains them, so 1 by construction; a 0 would be a bug);
- ``success``: the calls and arguments are right and the final answer states every fact.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from lmforge.agent.loop import ToolStep, openai_complete
from lmforge.agent.support import open_orders, support_agent
from lmforge.progress import ProgressFn
from lmforge.serve.config import ServeConfig
from lmforge.serve.server import background_server

AGENT_METRICS = ("tool_calls", "arguments", "valid_arguments", "success")
SERVED_NAME = "agent"


def check_record(record: dict[str, Any]) -> str | None:
    """Why ``record`` cannot be scored, or None."""
    turns, calls, facts = record.get("turns"), record.get("calls"), record.get("facts")
    if not (isinstance(turns, list) and turns and all(isinstance(t, str) and t for t in turns)):
        return "the agent task needs 'turns': a list of non-empty customer messages"
    if not isinstance(calls, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str | list)
        and isinstance(c.get("arguments", {}), dict) for c in calls
    ):  # fmt: skip
        return 'the agent task needs \'calls\': a list of {"name", "arguments"} (may be empty)'
    if not isinstance(facts, list) or not all(isinstance(f, list) and f for f in facts):
        return "the agent task needs 'facts': a list of lists of acceptable spellings"
    return None


def score_conversation(
    record: dict[str, Any], steps: list[ToolStep], answer: str
) -> dict[str, float]:
    """The four metrics of one conversation from the agent's tool steps and final answer."""
    expected = record["calls"]
    names = [c["name"] if isinstance(c["name"], list) else [c["name"]] for c in expected]
    right_calls = len(steps) == len(expected) and all(
        step.name in allowed for step, allowed in zip(steps, names, strict=False)
    )
    right_arguments = right_calls and all(
        _matches(step.arguments, call.get("arguments", {}))
        for step, call in zip(steps, expected, strict=False)
    )
    stated = all(any(s.lower() in answer.lower() for s in fact) for fact in record["facts"])
    return {"tool_calls": float(right_calls), "arguments": float(right_arguments),
            "valid_arguments": float(all(s.executed for s in steps)),
            "success": float(right_arguments and stated)}  # fmt: skip


def _matches(written: str, expected: dict[str, Any]) -> bool:
    try:
        arguments = json.loads(written)
    except ValueError:
        return False
    return isinstance(arguments, dict) and all(arguments.get(k) == v for k, v in expected.items())


def agent_rows(
    ref: str, records: list[dict[str, Any]], progress: ProgressFn | None
) -> list[dict[str, Any]]:
    """Serve ``ref`` here (greedy answers), run each conversation through the support
    agent on a fresh database, and score it."""
    import openai

    rows: list[dict[str, Any]] = []
    with background_server(ServeConfig(model=ref, served_name=SERVED_NAME)) as base:

        async def converse(record: dict[str, Any]) -> dict[str, Any]:
            history: list[dict[str, Any]] = []
            steps: list[ToolStep] = []
            answer = ""
            # closed within the event loop that opened its connections
            async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused",
                                          max_retries=1) as client:  # fmt: skip
                agent = support_agent(openai_complete(client, SERVED_NAME),
                                      open_orders(":memory:"))  # fmt: skip
                for text in record["turns"]:
                    turn = await agent.turn(history, text)
                    history += turn.messages
                    steps += turn.steps
                    answer = turn.answer
            calls = [{"name": s.name, "arguments": s.arguments} for s in steps]
            return {"id": record["id"], "turns": " | ".join(record["turns"]),
                    "calls_made": json.dumps(calls), "answer": answer,
                    **score_conversation(record, steps, answer)}  # fmt: skip

        for index, record in enumerate(records):
            rows.append(asyncio.run(converse(record)))
            if progress is not None:
                progress(index + 1, len(records), "conversations")
    return rows
