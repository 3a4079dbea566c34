"""The support agent: Brightnest Home's order database and tools around the agent loop.

``open_orders`` gives the database: by default ``$LMFORGE_HOME/agent/orders.db``, created
from the bundled orders on first use, so returns and escalations an agent opens persist
between runs (delete the file to start again); ``":memory:"`` starts from the bundled
data every time (the ``agent`` evaluation does, once per conversation).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from lmforge.agent.loop import Agent, Complete, ToolStep
from lmforge.agent.orders import SUPPORT_PROMPT, TOOLS, OrderTools, create_database
from lmforge.data.bundled import orders_file
from lmforge.home import lmforge_home


def default_database() -> Path:
    return lmforge_home() / "agent" / "orders.db"


def open_orders(path: Path | str | None = None) -> sqlite3.Connection:
    """The order database at ``path`` (default ``default_database()``), created from the
    bundled orders when it does not exist yet; ``":memory:"``: a fresh one in memory."""
    path = default_database() if path is None else path
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(orders_file().read_text(encoding="utf-8"))
    return create_database(data, path)


def call_log(path: Path | None = None) -> Callable[[ToolStep], None]:
    """An ``on_step`` that appends each tool step to ``path`` (default
    ``$LMFORGE_HOME/agent/calls.jsonl``) as one JSON line: time, tool, the arguments as the
    model wrote them, whether it ran, and its result."""
    path = path or default_database().parent / "calls.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(step: ToolStep) -> None:
        line = json.dumps({"time": time.time(), "tool": step.name, "arguments": step.arguments,
                           "executed": step.executed, "result": step.result},
                          ensure_ascii=False)  # fmt: skip
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    return log


def support_agent(
    complete: Complete,
    db: sqlite3.Connection,
    *,
    max_steps: int | None = None,
    on_step: Callable[[ToolStep], None] | None = None,
) -> Agent:
    """The support agent over ``db``: the four order tools, the support system prompt."""
    tools = OrderTools(db)
    options = {} if max_steps is None else {"max_steps": max_steps}
    return Agent(complete, TOOLS, tools.call, system=SUPPORT_PROMPT, on_step=on_step, **options)
