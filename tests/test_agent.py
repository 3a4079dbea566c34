"""The support agent (lmforge.agent): the order tools over the bundled database, the loop's
checks (undeclared tools never run, arguments validated, a step limit, every call
logged), the hand-written agent conversations against the real tools, and the loop
through a real ``lmforge serve`` of the tiny model with the official ``openai`` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from lmforge.agent.loop import Agent, ToolStep, openai_complete
from lmforge.agent.orders import TOOLS, OrderTools
from lmforge.agent.support import open_orders, support_agent
from lmforge.data.bundled import DATASETS_DIR
from tests.servers import lmforge_server


@pytest.fixture
def tools() -> OrderTools:
    return OrderTools(open_orders(":memory:"))


def test_lookup_and_track_report_the_orders_facts(tools: OrderTools) -> None:
    order = tools.lookup_order("BN-1179907")
    assert order["customer"] == "Leila Osei" and order["status"] == "delivered"
    assert [i["product"] for i in order["items"]] == ["Tempo Speaker", "Vista Cam Indoor",
                                                      "Brightnest Hub Mini"]  # fmt: skip
    assert order["total"] == 227.0
    shipped = tools.track_shipment("BN-6632761")
    assert shipped["tracking_number"] == "1Z0001YS7J9T4BB48N"
    assert shipped["estimated_delivery"] == "2026-11-23"
    assert "not shipped yet" in tools.track_shipment("BN-6580392")["note"]
    assert "cancelled" in tools.track_shipment("BN-3398275")["error"]
    assert "no order BN-0000000" in tools.lookup_order("BN-0000000")["error"]


def test_returns_follow_the_policy(tools: OrderTools) -> None:
    unwanted = tools.start_return("BN-6789580", "unwanted")
    assert unwanted == {"order_id": "BN-6789580", "eligible": True, "return_id": "RMA-100001",
                        "label": "UPS return label emailed", "label_fee": 6.95,
                        "refund": 77.04}  # fmt: skip
    assert tools.start_return("BN-9426756", "damaged")["label_fee"] == 0.0
    assert tools.start_return("BN-9426756", "damaged")["error"].startswith("a return is already")
    assert tools.lookup_order("BN-6789580")["return"] == "RMA-100001"
    assert "45 days after delivery" in tools.start_return("BN-3088393", "defective")["error"]
    assert "Final Sale" in tools.start_return("BN-5724891", "unwanted")["error"]
    assert "once it is delivered" in tools.start_return("BN-5952995", "unwanted")["error"]
    assert tools.escalate_to_human("Customer wants a call", "BN-7998068")["ticket"] == "ESC-50001"
    assert tools.escalate_to_human("Again")["ticket"] == "ESC-50002"


def test_a_database_file_keeps_what_the_agent_did(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    OrderTools(open_orders(path)).start_return("BN-6789580", "unwanted")
    reopened = OrderTools(open_orders(path))  # opened as it is, not refilled
    assert reopened.lookup_order("BN-6789580")["status"] == "return_started"
    assert reopened.start_return("BN-8383760", "wrong_item")["return_id"] == "RMA-100002"


def _scripted(replies: list[dict[str, Any]]) -> Any:
    """A stand-in for the model that returns ``replies`` in turn (the loop's own checks
    need calls a real model makes only by chance: an undeclared tool, bad arguments);
    the real model is used below, in test_the_loop_through_a_real_server."""
    seen: list[list[dict[str, Any]]] = []

    async def complete(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict:
        seen.append(messages)
        return replies[len(seen) - 1]

    complete.seen = seen  # type: ignore[attr-defined]
    return complete


def _call(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}
        ],
    }


def test_the_loop_refuses_undeclared_tools_and_bad_arguments(tools: OrderTools) -> None:
    ran: list[str] = []

    def run(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        ran.append(name)
        return tools.call(name, arguments)

    complete = _scripted([
        _call("delete_order", {"order_id": "BN-6789580"}),
        _call("start_return", {"order_id": "6789580", "reason": "unwanted"}),
        _call("start_return", "{not json"),
        _call("start_return", {"order_id": "BN-6789580", "reason": "unwanted"}),
        {"role": "assistant", "content": "Your return RMA-100001 is open."},
    ])  # fmt: skip
    logged: list[ToolStep] = []
    agent = Agent(complete, TOOLS, run, system="Be brief.", max_steps=6, on_step=logged.append)
    turn = asyncio.run(agent.turn([], "Return BN-6789580"))
    assert turn.answer == "Your return RMA-100001 is open." and turn.stopped == "answer"
    assert ran == ["start_return"]  # only the declared call with valid arguments ran
    assert [s.executed for s in turn.steps] == [False, False, False, True] and logged == turn.steps
    assert "no tool named 'delete_order'" in turn.steps[0].result["error"]
    assert "does not match" in turn.steps[1].result["error"]  # the schema's pattern
    assert "not valid" in turn.steps[2].result["error"]
    # the model saw each refusal as the tool's result, after the system prompt and the user
    last = complete.seen[-1]
    assert last[0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in last[1:]] == ["user", *["assistant", "tool"] * 4]
    assert json.loads(last[-1]["content"])["return_id"] == "RMA-100001"
    assert turn.messages == [
        *last[1:],
        {"role": "assistant", "content": "Your return RMA-100001 is open."},
    ]


def test_the_loop_stops_at_its_step_limit(tools: OrderTools) -> None:
    complete = _scripted([_call("lookup_order", {"order_id": "BN-1179907"})] * 3)
    agent = Agent(complete, TOOLS, tools.call, max_steps=3)
    turn = asyncio.run(agent.turn([], "What's in BN-1179907?"))
    assert turn.stopped == "step_limit" and len(turn.steps) == 3 and turn.answer == ""


def test_the_hand_written_conversations_agree_with_the_tools() -> None:
    """Each expected call, run on a fresh database, returns every fact its conversation
    expects in the answer (or, without calls, the fact is a policy the tools do not hold)."""
    lines = (DATASETS_DIR / "tool_dialogs" / "agent_test.jsonl").read_text().splitlines()
    cases = [json.loads(line) for line in lines]
    assert len(cases) == 30 and len({c["id"] for c in cases}) == 30
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for case in cases:
        tools = OrderTools(open_orders(":memory:"))
        results = []
        for call in case["calls"]:
            names = call["name"] if isinstance(call["name"], list) else [call["name"]]
            arguments = dict(call["arguments"])
            if names[0] == "escalate_to_human":
                arguments["summary"] = "The customer asks for a person."
            jsonschema.validate(arguments, schemas[names[0]])
            results.append(json.dumps(tools.call(names[0], arguments)).lower())
        for fact in case["facts"] if case["calls"] else []:
            assert any(a.lower() in " ".join(results) for a in fact), (case["id"], fact)


@pytest.fixture(scope="module")
def agent_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LLaMA with room for the four tools' definitions (about 730 tokens)."""
    from lmforge.hub import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("agent") / "lm", context=2048)


@pytest.fixture(scope="module")
def client(agent_lm: Path) -> Iterator[Any]:
    with lmforge_server(str(agent_lm), "--served-name", "tiny") as base:
        yield openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


def test_the_loop_through_a_real_server(client: Any, tmp_path: Path) -> None:
    """The random tiny model never calls a tool on its own, so ``required`` makes every
    step a call: each is written under the tool's schema by the server's grammar, checked
    again by the loop, run on the database, and its result fed back, up to the limit."""
    complete = openai_complete(client, "tiny", max_tokens=200, temperature=1.0,
                               tool_choice="required")  # fmt: skip
    agent = support_agent(complete, open_orders(tmp_path / "orders.db"), max_steps=2)
    turn = asyncio.run(agent.turn([], "Where is BN-6632761?"))
    assert turn.stopped == "step_limit" and len(turn.steps) >= 2  # calls may come in parallel
    assert all(step.executed for step in turn.steps)  # valid by construction
    roles = [m["role"] for m in turn.messages]
    assert [r for r in roles if r != "tool"] == ["user", "assistant", "assistant"]
    assert roles.count("tool") == len(turn.steps)


def test_scoring_a_conversation() -> None:
    from lmforge.evaluate.agent import check_record, score_conversation

    record = {"turns": ["Return BN-6789580, I don't want it"],
              "calls": [{"name": ["start_return"], "arguments": {"order_id": "BN-6789580",
                                                                 "reason": "unwanted"}}],
              "facts": [["RMA-100001"], ["77.04", "$77.04"]]}  # fmt: skip
    assert check_record(record) is None
    right = ToolStep("start_return", '{"order_id": "BN-6789580", "reason": "unwanted"}',
                     {"return_id": "RMA-100001"}, executed=True)  # fmt: skip
    answer = "Return RMA-100001 is open; your refund is $77.04."
    assert score_conversation(record, [right], answer) == {
        "tool_calls": 1.0,
        "arguments": 1.0,
        "valid_arguments": 1.0,
        "success": 1.0,
    }
    assert score_conversation(record, [right], "Done!")["success"] == 0.0  # facts missing
    wrong = ToolStep("start_return", '{"order_id": "BN-6789580", "reason": "defective"}',
                     {}, executed=True)  # fmt: skip
    assert score_conversation(record, [wrong], answer) == {
        "tool_calls": 1.0,
        "arguments": 0.0,
        "valid_arguments": 1.0,
        "success": 0.0,
    }
    assert score_conversation(record, [], answer)["tool_calls"] == 0.0
    assert score_conversation(record, [right, right], answer)["tool_calls"] == 0.0
    refused = ToolStep("delete_order", "{}", {"error": "no tool"}, executed=False)
    assert score_conversation(record, [refused], answer)["valid_arguments"] == 0.0
    assert "turns" in str(check_record({**record, "turns": []}))
    assert "facts" in str(check_record({**record, "facts": ["RMA"]}))


def test_the_agent_eval_task_serves_the_model_and_scores(agent_lm: Path) -> None:
    """``agent_rows`` serves the model in this process and runs each conversation; the
    random tiny model answers without tools, so only the no-tool conversation can count."""
    from lmforge.evaluate.agent import agent_rows

    records = [
        {"id": "a", "turns": ["Where is BN-6632761?"], "facts": [["1Z0001YS7J9T4BB48N"]],
         "calls": [{"name": "track_shipment", "arguments": {"order_id": "BN-6632761"}}]},
        {"id": "b", "turns": ["Hi", "What's the return window?"], "calls": [], "facts": [["x"]]},
    ]  # fmt: skip
    done: list[int] = []
    rows = agent_rows(str(agent_lm), records, lambda n, total, _: done.append(n))
    assert done == [1, 2] and [row["id"] for row in rows] == ["a", "b"]
    assert rows[0]["tool_calls"] == 0.0 and rows[1]["tool_calls"] == 1.0
    assert all(row["valid_arguments"] == 1.0 and row["success"] == 0.0 for row in rows)
    assert rows[1]["turns"] == "Hi | What's the return window?" and rows[1]["answer"]


def test_lmforge_agent_run_serves_the_model_or_uses_a_running_server(
    agent_lm: Path, client: Any, tmp_path: Path
) -> None:
    """Two customer turns through `lmforge agent run`, with the model served in the
    command and through --url of a running server; the random tiny model answers in words."""
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    runner = CliRunner()
    db = str(tmp_path / "orders.db")
    here = runner.invoke(app, ["agent", "run", str(agent_lm), "-m", "Where is BN-6632761?",
                               "-m", "Thanks", "--max-tokens", "6", "--db", db])  # fmt: skip
    assert here.exit_code == 0, here.output
    assert here.output.count("customer ") == 2 and here.output.count("agent ") == 2
    there = runner.invoke(app, ["agent", "run", "--url", str(client.base_url), "--model", "tiny",
                                "-m", "Hello", "--max-tokens", "4", "--db", db])  # fmt: skip
    assert there.exit_code == 0, there.output
    assert "customer Hello" in there.output
    both = runner.invoke(app, ["agent", "run", str(agent_lm), "--url", str(client.base_url)])
    assert both.exit_code != 0 and "not both" in both.output
