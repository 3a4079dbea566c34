"""The web chat page in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import lmforge_server, request

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialing Google's hosts, which
# this closed network refuses.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

SLOW_SESSION_CREATION = """
const realFetch = window.fetch;
window.fetch = async (path, options = {}) => {
  if (path === "/v1/sessions" && options.method === "POST") {
    await new Promise(resolve => setTimeout(resolve, 1500));
  }
  return realFetch(path, options);
};
"""


@pytest.fixture(scope="module")
def server(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("web-home")
    with lmforge_server(
        str(tiny_causal_lm), "--served-name", "tiny", env={"LMFORGE_HOME": str(home)}
    ) as base:
        yield base


def test_two_streamed_answers_and_the_history_survives_a_reload(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            # A slow session store (as on a busy machine): the first turn is typed while the
            # page's session is still being created, and must still be stored in it.
            page.add_init_script(SLOW_SESSION_CREATION)
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            assert page.locator("#model").input_value() == "tiny"

            texts = []
            for message in ("Hello, I need help with my order.", "It has not arrived yet."):
                page.fill("#input", message)
                page.press("#input", "Enter")
                count = len(texts) + 2
                page.wait_for_function(
                    f"document.querySelectorAll('.msg').length === {count}"
                    " && !document.getElementById('send').disabled"
                )
                answer = page.locator(".msg.assistant").last.text_content() or ""
                assert answer.strip(), "the answer streamed into the page"
                texts += [message, answer]

            page.reload()
            page.wait_for_function(f"document.querySelectorAll('.msg').length === {len(texts)}")
            shown = [page.locator(".msg").nth(i).text_content() for i in range(len(texts))]
            assert shown == texts
            roles = page.eval_on_selector_all(".msg", "els => els.map(e => e.className)")
            assert roles == ["msg user", "msg assistant"] * 2
        finally:
            browser.close()


def force_one_call(route: Any) -> None:
    """The random tiny model never calls a tool on its own: the page's request goes on
    with tool_choice "required" and one step, so the page gets a real tool step to show."""
    body = json.loads(route.request.post_data)
    route.continue_(post_data=json.dumps({**body, "tool_choice": "required", "max_steps": 1}))


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from lmforge.hub import build_tiny_causal_lm

    # room for the four tools' definitions (about 730 tokens)
    model = build_tiny_causal_lm(tmp_path_factory.mktemp("agent-lm") / "lm", context=2048)
    home = tmp_path_factory.mktemp("agent-home")
    with lmforge_server(
        str(model), "--served-name", "tiny", "--agent", env={"LMFORGE_HOME": str(home)}
    ) as base:
        yield base, home


def test_the_agent_mode_shows_each_tool_call_and_logs_it(
    agent_server: tuple[str, Path], server: str
) -> None:
    from playwright.sync_api import sync_playwright

    base, home = agent_server
    assert request(server + "/v1/agent")[0] == 404  # a server without --agent has none
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(server + "/")  # no agent: no Agent mode
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            assert page.locator("#agent-label").is_hidden()

            page.goto(base + "/")
            page.wait_for_function("!document.getElementById('agent-label').hidden")
            page.check("#agent")
            page.route("**/v1/agent/turns", force_one_call)
            page.fill("#input", "Where is my order BN-6632761?")
            page.press("#input", "Enter")
            page.wait_for_selector(".msg.assistant")
            tools = page.locator(".msg.tool").all_text_contents()
            assert tools and all("→ {" in text for text in tools)
            assert tools[0].split("(")[0] in {"lookup_order", "track_shipment", "start_return",
                                              "escalate_to_human"}  # fmt: skip
            assert "[step limit reached]" in (page.locator(".msg.assistant").text_content() or "")
        finally:
            browser.close()
    logged = (home / "agent" / "calls.jsonl").read_text().splitlines()
    assert len(logged) == len(tools) and all(json.loads(line)["executed"] for line in logged)
