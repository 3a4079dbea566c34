"""Sessions (conversation memory in SQLite), API keys, rate limits, body limits, access logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.serve.api.base import OpenAIHandler
from lmforge.serve.api.chat import Chat
from lmforge.serve.engine import Engine
from tests.servers import lmforge_server, request


def chat(base: str, session_id: str, text: str, key: str | None = None) -> dict:
    body = {"model": "tiny", "messages": [{"role": "user", "content": text}],
            "max_tokens": 4, "temperature": 0, "session_id": session_id}  # fmt: skip
    status, reply = request(base + "/v1/chat/completions", body, key=key)
    assert status == 200, reply
    return json.loads(reply)


def oversized_status(base: str) -> int:
    """Announce a 2 MB body and send none: the server must refuse on the header alone
    (sending it all races the server closing the connection after its 413)."""
    import http.client
    from urllib.parse import urlparse

    url = urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.putrequest("POST", "/v1/sessions")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", "2000000")
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def test_a_session_remembers_the_conversation_and_survives_a_restart(
    tiny_served: tuple[str, Path], tmp_path: Path
) -> None:
    home = {"LMFORGE_HOME": str(tmp_path / "home")}
    backend, model = tiny_served
    args = (str(model), "--served-name", "tiny", "--backend", backend)
    log = tmp_path / "server.log"
    with lmforge_server(*args, env=home, log=log) as base:
        status, text = request(base + "/v1/sessions", {"system": "You are Brightnest support."})
        assert status == 200
        session_id = json.loads(text)["id"]
        first = chat(base, session_id, "My dog is called Biscuit.")
        assert first["session_id"] == session_id
        second = chat(base, session_id, "What is my dog called?")
        # turn 2 sees the system prompt, turn 1 and its answer: a longer, mostly cached prompt
        assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"] + 8
        assert second["usage"]["prompt_tokens_details"]["cached_tokens"] >= (
            first["usage"]["prompt_tokens"] - 1
        )
        assert oversized_status(base) == 413

    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    chats = [r for r in records if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 2 and all(r["status"] == 200 and r["ms"] > 0 for r in chats)
    assert all(r["method"] == "POST" and r["client"] == "127.0.0.1" and r["key"] is None
               for r in chats)  # fmt: skip
    assert [r["status"] for r in records if r["path"] == "/v1/sessions"][-1] == 413
    assert "Biscuit" not in log.read_text()  # no prompt text in the log unless asked

    with lmforge_server(*args, env=home) as base:  # a new process, the same home
        status, text = request(base + f"/v1/sessions/{session_id}")
        assert status == 200
        session = json.loads(text)
        assert session["system"] == "You are Brightnest support."
        assert [m["role"] for m in session["messages"]] == ["user", "assistant"] * 2
        assert session["messages"][0]["content"] == "My dog is called Biscuit."
        assert request(base + f"/v1/sessions/{session_id}", method="DELETE")[0] == 200
        status, text = request(base + f"/v1/sessions/{session_id}")
        assert status == 404 and json.loads(text)["error"]["code"] == "session_not_found"


def test_session_history_drops_the_oldest_turns_to_fit_and_keeps_the_system_prompt(
    tiny_causal_lm: Path,
) -> None:
    from lmforge.hub import load_causal_lm, resolve

    model, tokenizer = load_causal_lm(resolve(str(tiny_causal_lm)))
    chat = OpenAIHandler(Engine(model, tokenizer, max_len=160), "tiny").family(Chat)
    history = []
    for turn in range(12):
        history += [
            {"role": "user", "content": f"Question {turn} about my order."},
            {"role": "assistant", "content": f"Answer {turn}: it ships soon."},
        ]
    history.append({"role": "user", "content": "Newest question?"})
    prompt = tokenizer.decode(chat.fit_session("SYSTEM RULES", history, max_tokens=20))
    assert len(tokenizer(prompt)["input_ids"]) + 20 <= 160
    assert "SYSTEM RULES" in prompt and "Newest question?" in prompt
    assert "Question 0 " not in prompt and "Answer 11" in prompt
    users = prompt.count("<|im_start|>user")
    assistants = prompt.count("<|im_start|>assistant")
    assert assistants == users  # whole exchanges only, plus the generation cue
    with pytest.raises(Exception, match="exceeds the model's context of 160"):
        chat.fit_session("S", [{"role": "user", "content": "word " * 300}], max_tokens=20)


@pytest.fixture(scope="module")
def keyed(tiny_causal_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    home = tmp_path_factory.mktemp("keyed-home")
    runner = CliRunner()
    keys = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", str(home))
        for name in ("alice", "bob", "carol"):
            result = runner.invoke(app, ["keys", "create", name])
            assert result.exit_code == 0, result.output
            keys.append(result.stdout.strip())
    server = lmforge_server(
        str(tiny_causal_lm), "--served-name", "tiny", "--rate-limit", "6",
        env={"LMFORGE_HOME": str(home)},
    )  # fmt: skip
    with server as base:
        yield (base, str(home), *keys)


def test_keys_guard_every_v1_route_but_not_health(keyed: tuple[str, ...]) -> None:
    base, _, alice, *_ = keyed
    assert request(base + "/health")[0] == 200 and request(base + "/ready")[0] == 200
    status, text = request(base + "/v1/models")
    assert status == 401 and json.loads(text)["error"]["code"] == "missing_api_key"
    assert request(base + "/v1/models", key="lmf-not-a-key")[0] == 401
    client = openai.OpenAI(base_url=base + "/v1", api_key=alice, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_a_session_belongs_to_the_key_that_created_it(keyed: tuple[str, ...]) -> None:
    base, _, _, bob, carol = keyed
    status, text = request(base + "/v1/sessions", {}, key=bob)
    assert status == 200
    session_id = json.loads(text)["id"]
    chat(base, session_id, "hello", key=bob)
    assert request(base + f"/v1/sessions/{session_id}", key=bob)[0] == 200
    assert request(base + f"/v1/sessions/{session_id}", key=carol)[0] == 404
    body = {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2,
            "session_id": session_id}  # fmt: skip
    assert request(base + "/v1/chat/completions", body, key=carol)[0] == 404


def test_rate_limit_answers_429_with_retry_after(keyed: tuple[str, ...]) -> None:
    base, _, alice, _, _ = keyed
    client = openai.OpenAI(base_url=base + "/v1", api_key=alice, max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited:
        for _ in range(10):
            client.models.list()
    assert int(limited.value.response.headers["retry-after"]) >= 1


def test_a_revoked_key_is_refused(keyed: tuple[str, ...]) -> None:
    base, home, _, _, carol = keyed
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMFORGE_HOME", home)
        listed = CliRunner().invoke(app, ["keys", "list", "--json"])
        assert [k["name"] for k in json.loads(listed.stdout)] == ["alice", "bob", "carol"]
        assert carol not in listed.stdout  # keys are never shown again
        assert CliRunner().invoke(app, ["keys", "revoke", "carol"]).exit_code == 0
    revoked = time.monotonic()  # servers reuse a key check for half a second
    while (answer := request(base + "/v1/models", key=carol))[0] != 401:  # 200, or 429
        assert time.monotonic() - revoked < 1.0, "a revoked key must be refused within 1 s"
        time.sleep(0.1)
    assert json.loads(answer[1])["error"]["code"] == "invalid_api_key"


def test_api_key_required_refuses_everything_until_a_key_exists(
    tiny_causal_lm: Path, tmp_path: Path
) -> None:
    home = {"LMFORGE_HOME": str(tmp_path / "home")}
    with lmforge_server(str(tiny_causal_lm), "--api-key-required", env=home) as base:
        assert request(base + "/ready")[0] == 200  # health and readiness stay open
        status, text = request(base + "/v1/models")
        assert status == 401 and "lmforge keys create" in json.loads(text)["error"]["message"]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LMFORGE_HOME", home["LMFORGE_HOME"])
            key = CliRunner().invoke(app, ["keys", "create", "ops"]).stdout.strip()
        assert request(base + "/v1/models", key=key)[0] == 200  # keys are read live
