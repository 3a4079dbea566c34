"""The web chat page in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import lmforge_server

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
