"""The HTTP API served by Ray Serve: through the HTTP proxy, with real clients.

One Serve app (scripted engine) for the module: httpx and a real SSE parser, the
official ``openai`` client, and a client that disconnects mid-stream. Every route's
error cases are in tests/unit/test_api.py; fuzzing and abuse in test_hostile_serve.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from agents.events import event_adapter
from tests.fixtures import api_app
from tests.fixtures.api_app import KEYS, headers, new_conversation

pytestmark = pytest.mark.serve

APP = "agents-http"


@pytest.fixture(scope="module")
def url(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("api") / "conversations.db"
    with api_app.served(
        ray_cluster["http"], db, APP, heartbeat_s=0.1, requests_per_minute=100_000, burst=10_000
    ) as served:
        yield served


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=headers(), timeout=60) as client:
        yield client


def test_rest_round_trip(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert [a["name"] for a in client.get("/v1/agents").json()["data"]] == [
        "triage",
        "billing",
        "tech",
    ]
    cid = new_conversation(client)
    reply = client.post(f"/v1/conversations/{cid}/messages", json={"content": "refund"}).json()
    assert reply["answer"] == "Billing here: refund issued." and reply["agent"] == "billing"
    page = client.get(f"/v1/conversations/{cid}/messages").json()
    assert [e["type"] for e in page["data"]] == ["message", "handoff", "answer", "done"]
    assert client.delete(f"/v1/conversations/{cid}").status_code == 204


def test_errors_keep_their_shape_through_the_proxy(client: httpx.Client, url: str) -> None:
    missing = httpx.get(f"{url}/v1/agents")
    assert missing.status_code == 401
    body = missing.json()["error"]
    assert body["type"] == "authentication_error"
    assert body["request_id"] == missing.headers["x-request-id"]
    cid = new_conversation(client)
    other = client.get(f"/v1/conversations/{cid}", headers=headers("globex"))
    assert other.status_code == 404 and other.json()["error"]["type"] == "not_found"
    bad = client.post(f"/v1/conversations/{cid}/messages", json={"content": ""})
    assert bad.status_code == 400 and "body.content" in bad.json()["error"]["message"]


def test_sse_stream_with_a_tool_call_and_heartbeats(client: httpx.Client) -> None:
    cid = new_conversation(client, agent="tech")
    body = {"content": "sum 2 and 3", "stream": True}
    with connect_sse(client, "POST", f"/v1/conversations/{cid}/messages", json=body) as source:
        # A heartbeat (a comment) dispatches an empty message in httpx-sse: skip those.
        events = [event_adapter.validate_json(s.data) for s in source.iter_sse() if s.data]
    kinds = [e.type for e in events if e.type != "token"]
    assert kinds == ["message", "tool_call", "tool_result", "answer", "done"]
    # A slow answer leaves the stream idle between tokens: heartbeats come through.
    with client.stream(
        "POST", f"/v1/conversations/{cid}/messages", json={"content": "slow one", "stream": True}
    ) as response:
        lines = list(response.iter_lines())
    assert ": ping" in lines and lines.count("event: token") == 40


def test_disconnect_mid_stream_leaves_a_consistent_conversation(client: httpx.Client) -> None:
    cid = new_conversation(client)
    body = {"content": "slow answer please", "stream": True}
    with connect_sse(client, "POST", f"/v1/conversations/{cid}/messages", json=body) as source:
        for sse in source.iter_sse():
            if sse.event == "token":
                break  # leave after the first token; closing the stream disconnects
    deadline = time.monotonic() + 30
    while True:
        events = client.get(f"/v1/conversations/{cid}/messages").json()["data"]
        if events and events[-1]["type"] == "done":
            break
        assert time.monotonic() < deadline, events
        time.sleep(0.1)
    assert [e["type"] for e in events] == ["message", "error", "done"]
    assert events[1]["code"] == "cancelled" and events[2]["status"] == "error"
    # The conversation is free again: the next turn runs.
    reply = client.post(f"/v1/conversations/{cid}/messages", json={"content": "hello"}).json()
    assert reply["status"] == "ok" and reply["answer"] == "ok"


def test_openai_client(url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["acme"], max_retries=0)
    assert "tech" in [m.id for m in client.models.list()]
    reply = client.chat.completions.create(
        model="tech", messages=[{"role": "user", "content": "sum 2 and 3"}]
    )
    assert reply.choices[0].message.content == "It is 5."
    assert reply.choices[0].finish_reason == "stop" and reply.usage is not None
    stream = client.chat.completions.create(
        model="billing",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "anything"},
        ],
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == "ok"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="nope").models.list()


async def test_sdk_send_stream_and_approve(url: str) -> None:
    from agents.client import AsyncClient, Client, NotFoundError

    with Client(url, KEYS["acme"]) as client:
        assert [a.name for a in client.agents.list()] == ["triage", "billing", "tech"]
        conversation = client.conversations.create(agent="triage")
        result = conversation.send("refund please")
        assert result.answer == "Billing here: refund issued." and conversation.agent == "billing"
        with conversation.stream("anything else") as stream:
            events = list(stream)
        assert "".join(e.text for e in events if e.type == "token") == "ok"
        assert [e.type for e in conversation.messages()].count("done") == 2
        conversation.delete()
        with pytest.raises(NotFoundError):
            client.conversations.get(conversation.id)
    async with AsyncClient(url, KEYS["acme"]) as aclient:
        tech = await aclient.conversations.create(agent="tech")
        paused = await tech.send("shout")
        assert paused.status == "paused"
        resumed = await tech.approve(paused.pending_approvals[0].call_id)
        assert resumed.answer == "Shouted."


def test_chat_cli_in_a_terminal(url: str) -> None:
    import sys
    from pathlib import Path

    import pexpect

    cli = Path(sys.executable).with_name("ray-agents")
    chat = pexpect.spawn(
        str(cli),
        ["chat", "tech", "--url", url, "--key", KEYS["acme"]],
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 160),
    )
    try:
        chat.expect("Talking to tech")
        chat.expect_exact("you> ")
        chat.sendline("sum 2 and 3")
        chat.expect_exact("[tool] add(a=2, b=3)")
        chat.expect_exact("[result] 5")
        chat.expect_exact("It is 5.")
        chat.expect_exact("you> ")
        chat.sendline("shout")
        chat.expect_exact("[tool] shout")
        chat.expect_exact('approve shout(text="ok")? [y/N] ')
        chat.sendline("y")
        chat.expect_exact("[result] OK")
        chat.expect_exact("Shouted.")
        chat.expect_exact("you> ")
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0
