"""The HTTP API in-process: every route and error case over LocalApp (no Ray).

The Serve tier (tests/serve/test_api_serve.py) repeats the end-to-end paths through a
real Serve app and its HTTP proxy; here the cases are exhaustive and fast.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from agents.api.app import create_app
from agents.api.types import ERROR_STATUS, MessagesPage, TurnResult
from agents.events import event_adapter
from agents.testing import LocalApp, ScriptedGenerator
from tests.fixtures import api_app
from tests.fixtures.api_app import headers
from tools.deployment import build_registry
from tools.executor import ToolRunner
from tools.spec import ToolsConfig

RUNNERS: list[ToolRunner] = []


@pytest.fixture(autouse=True)
async def _close_runners() -> AsyncIterator[None]:
    """The runners' worker processes stop with their test."""
    yield
    while RUNNERS:
        await RUNNERS.pop().close()


def local_app() -> LocalApp:
    specs = api_app.agent_specs()
    tools = ToolsConfig.model_validate(api_app.TOOLS)
    RUNNERS.append(ToolRunner(build_registry(tools), grants={s.name: s.tools for s in specs}))
    return LocalApp(specs, generator=ScriptedGenerator(api_app.SCRIPT), tools=RUNNERS[-1])


async def client_for(**limits: Any) -> httpx.AsyncClient:
    local = local_app()
    app = create_app(local.conversations, api_app.agent_specs(), api_app.api_spec(**limits))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api"
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for() as client:
        yield client


async def new_conversation(client: httpx.AsyncClient, tenant: str = "acme", **body: Any) -> str:
    response = await client.post("/v1/conversations", json=body, headers=headers(tenant))
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


def error_of(response: httpx.Response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == type_
    assert ERROR_STATUS[type_] == status or status in (404, 405)
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    message: str = body["error"]["message"]
    assert "Traceback" not in message
    return message


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/conversations/{conversation_id}/messages" in schema["paths"]


@pytest.mark.parametrize(
    ("auth", "fragment"),
    [
        (None, "missing API key"),
        ("Bearer wrong-key", "invalid API key"),
        ("Basic abc", "malformed"),
        ("Bearer ", "malformed"),
    ],
)
async def test_every_route_needs_a_valid_key(
    client: httpx.AsyncClient, auth: str | None, fragment: str
) -> None:
    extra = {} if auth is None else {"Authorization": auth}
    for method, path in [
        ("GET", "/v1/agents"),
        ("GET", "/v1/agents/triage"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/conversations/x"),
        ("DELETE", "/v1/conversations/x"),
        ("GET", "/v1/conversations/x/messages"),
        ("POST", "/v1/conversations/x/messages"),
        ("POST", "/v1/conversations/x/approvals/c"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]:
        body = {} if method == "POST" else None
        response = await client.request(method, path, json=body, headers=extra)
        assert fragment in error_of(response, 401, "authentication_error"), (method, path)


async def test_agents(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/agents", headers=headers())).json()
    assert [a["name"] for a in listed["data"]] == ["triage", "billing", "tech"]
    tech = (await client.get("/v1/agents/tech", headers=headers())).json()
    assert tech["tools"] == ["add", "shout"] and tech["model"] == "m" and not tech["default"]
    assert listed["data"][0]["default"] and listed["data"][0]["handoffs"] == ["billing", "tech"]
    error_of(await client.get("/v1/agents/nobody", headers=headers()), 404, "not_found")


async def test_conversation_lifecycle(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/conversations", json={"agent": "tech", "metadata": {"ticket": "7"}}, headers=headers()
    )
    created = response.json()
    assert response.status_code == 201 and created["agent"] == "tech"
    assert created["metadata"] == {"ticket": "7"} and created["last_seq"] == 0
    got = (await client.get(f"/v1/conversations/{created['id']}", headers=headers())).json()
    assert got == created
    response = await client.delete(f"/v1/conversations/{created['id']}", headers=headers())
    assert response.status_code == 204
    error_of(
        await client.get(f"/v1/conversations/{created['id']}", headers=headers()),
        404,
        "not_found",
    )
    error_of(
        await client.post("/v1/conversations", json={"agent": "nobody"}, headers=headers()),
        404,
        "not_found",
    )


async def test_send_json_reply_with_a_handoff(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client)
    response = await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "refund please"}, headers=headers()
    )
    result = TurnResult.model_validate(response.json())
    assert result.status == "ok" and result.answer == "Billing here: refund issued."
    assert result.agent == "billing"
    assert [e.type for e in result.events] == ["message", "handoff", "answer", "done"]
    info = (await client.get(f"/v1/conversations/{cid}", headers=headers())).json()
    assert info["agent"] == "billing" and info["last_seq"] == 4


async def test_send_is_idempotent(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client)
    body = {"content": "hello", "idempotency_key": "k-1"}
    first = await client.post(f"/v1/conversations/{cid}/messages", json=body, headers=headers())
    again = await client.post(f"/v1/conversations/{cid}/messages", json=body, headers=headers())
    assert first.json() == again.json() and first.json()["answer"] == "ok"
    page = (await client.get(f"/v1/conversations/{cid}/messages", headers=headers())).json()
    assert [e["type"] for e in page["data"]].count("message") == 1


@pytest.mark.parametrize(
    "changed",
    [{"content": "something else"}, {"variables": {"user": "Bob"}}],
    ids=["content", "variables"],
)
async def test_an_idempotency_key_reused_for_another_message_is_a_422(
    client: httpx.AsyncClient, changed: dict[str, Any]
) -> None:
    cid = await new_conversation(client)
    url = f"/v1/conversations/{cid}/messages"
    body = {"content": "hello", "idempotency_key": "k-1", "variables": {"user": "Ann"}}
    first = await client.post(url, json=body, headers=headers())
    reused = await client.post(url, json=body | changed, headers=headers())
    assert "different request" in error_of(reused, 422, "idempotency_mismatch")
    again = await client.post(url, json=body | {"stream": True}, headers=headers())
    assert again.status_code == 200 and "event: done" in again.text  # a retry still joins
    page = (await client.get(url, headers=headers())).json()
    assert [e["type"] for e in page["data"]] == [e["type"] for e in first.json()["events"]]


async def test_variables_a_caller_may_not_set_are_refused_with_400_naming_them(
    client: httpx.AsyncClient,
) -> None:
    cid = await new_conversation(client)  # triage: lets a caller set 'user' only
    url = f"/v1/conversations/{cid}/messages"
    for variables, named in [
        ({"agent_name": "root"}, "'agent_name'"),  # a built-in
        ({"user": "Ann", "policy": "obey me"}, "'policy'"),  # not on the allow-list
    ]:
        refused = await client.post(
            url, json={"content": "hello", "variables": variables}, headers=headers()
        )
        message = error_of(refused, 400, "invalid_request")
        assert named in message and "allows: user" in message
    allowed = await client.post(
        url, json={"content": "hello", "variables": {"user": "Ann"}}, headers=headers()
    )
    assert allowed.status_code == 200 and allowed.json()["status"] == "ok"
    page = (await client.get(url, headers=headers())).json()
    assert [e["type"] for e in page["data"]] == ["message", "answer", "done"]  # one turn


async def test_a_stream_resumes_after_its_last_event_id(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client, agent="tech")
    url = f"/v1/conversations/{cid}/messages"
    body = {"content": "sum 2 and 3", "stream": True, "idempotency_key": "k-sse"}
    first = await client.post(url, json=body, headers=headers())
    ids = [int(line[4:]) for line in first.text.splitlines() if line.startswith("id: ")]
    assert len(ids) == 5  # message, tool_call, tool_result, answer, done
    # The reconnect (same key) gets the stored events after Last-Event-ID, once each.
    resumed = await client.post(url, json=body, headers={**headers(), "Last-Event-ID": str(ids[1])})
    again = [int(line[4:]) for line in resumed.text.splitlines() if line.startswith("id: ")]
    assert again == ids[2:] and "event: token" not in resumed.text
    bad = await client.post(url, json=body, headers={**headers(), "Last-Event-ID": "x1"})
    assert "not an event id" in error_of(bad, 400, "invalid_request")
    keyless = {"content": "sum 2 and 3", "stream": True}
    bad = await client.post(url, json=keyless, headers={**headers(), "Last-Event-ID": "3"})
    assert "idempotency_key" in error_of(bad, 400, "invalid_request")


async def test_sse_stream_of_a_tool_call(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client, agent="tech")
    async with aconnect_sse(
        client,
        "POST",
        f"/v1/conversations/{cid}/messages",
        json={"content": "sum 2 and 3", "stream": True},
        headers=headers(),
    ) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        sse = [s async for s in source.aiter_sse()]
    events = [event_adapter.validate_json(s.data) for s in sse]
    assert [s.event for s in sse] == [e.type for e in events]
    kinds = [e.type for e in events if e.type != "token"]
    assert kinds == ["message", "tool_call", "tool_result", "answer", "done"]
    assert "".join(e.text for e in events if e.type == "token") == "It is 5."
    stored = [s for s in sse if s.event != "token"]
    assert [int(s.id) for s in stored[:-1]] == [e.seq for e in events if e.type != "token"][:-1]


async def test_accept_header_asks_for_sse(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client)
    response = await client.post(
        f"/v1/conversations/{cid}/messages",
        json={"content": "hello"},
        headers={**headers(), "Accept": "text/event-stream"},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: done" in response.text


async def test_approval_flow(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client, agent="tech")
    paused = TurnResult.model_validate(
        (
            await client.post(
                f"/v1/conversations/{cid}/messages", json={"content": "shout"}, headers=headers()
            )
        ).json()
    )
    assert paused.status == "paused" and [p.name for p in paused.pending_approvals] == ["shout"]
    call_id = paused.pending_approvals[0].call_id
    response = await client.post(
        f"/v1/conversations/{cid}/approvals/{call_id}", json={"approve": True}, headers=headers()
    )
    resumed = TurnResult.model_validate(response.json())
    assert resumed.status == "ok" and resumed.answer == "Shouted."
    again = await client.post(
        f"/v1/conversations/{cid}/approvals/{call_id}", json={"approve": True}, headers=headers()
    )
    assert again.json()["answer"] == "Shouted."  # deciding twice replays the turn
    missing = await client.post(
        f"/v1/conversations/{cid}/approvals/nope", json={"approve": False}, headers=headers()
    )
    error_of(missing, 409, "no_pending_approval")


async def test_the_key_that_triggers_a_tool_cannot_approve_it_without_the_approvals_scope(
    client: httpx.AsyncClient,
) -> None:
    # A key with the conversations scope only: it talks, and the tool call it causes
    # waits for someone whose key has the approvals scope (same tenant).
    talk_only = {"Authorization": f"Bearer {api_app.TALK_ONLY_KEY}"}
    created = await client.post("/v1/conversations", json={"agent": "tech"}, headers=talk_only)
    cid = created.json()["id"]
    paused = await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "shout"}, headers=talk_only
    )
    call_id = paused.json()["pending_approvals"][0]["call_id"]
    url = f"/v1/conversations/{cid}/approvals/{call_id}"
    denied = await client.post(url, json={"approve": True}, headers=talk_only)
    assert "'approvals' scope" in error_of(denied, 403, "permission_denied")
    # Another tenant's approver does not even see the conversation.
    error_of(
        await client.post(url, json={"approve": True}, headers=headers("globex")), 404, "not_found"
    )
    approved = await client.post(url, json={"approve": True}, headers=headers("acme"))
    assert approved.status_code == 200 and approved.json()["answer"] == "Shouted."


async def test_a_decision_on_a_call_a_later_message_closed_is_a_409(
    client: httpx.AsyncClient,
) -> None:
    cid = await new_conversation(client, agent="tech")
    url = f"/v1/conversations/{cid}/messages"
    paused = (await client.post(url, json={"content": "shout"}, headers=headers())).json()
    call_id = paused["pending_approvals"][0]["call_id"]
    later = await client.post(url, json={"content": "sum 2 and 3"}, headers=headers())
    assert later.json()["answer"] == "It is 5."
    response = await client.post(
        f"/v1/conversations/{cid}/approvals/{call_id}", json={"approve": True}, headers=headers()
    )
    assert call_id in error_of(response, 409, "no_pending_approval")
    page = (await client.get(url, headers=headers())).json()
    assert "approval" not in [e["type"] for e in page["data"]]


async def test_rejection(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client, agent="tech")
    paused = (
        await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "shout"}, headers=headers()
        )
    ).json()
    call_id = paused["pending_approvals"][0]["call_id"]
    response = await client.post(
        f"/v1/conversations/{cid}/approvals/{call_id}",
        json={"approve": False, "reason": "too loud"},
        headers=headers(),
    )
    assert response.json()["answer"] == "Not shouting."


async def test_failed_turn_is_a_result_not_an_http_error(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client)
    response = await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": "fail now"}, headers=headers()
    )
    result = TurnResult.model_validate(response.json())
    assert response.status_code == 200 and result.status == "error"
    assert result.error is not None and result.answer is None


async def test_messages_are_paginated(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client)
    for n in range(3):
        await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": f"hi {n}"}, headers=headers()
        )
    seen: list[int] = []
    after: int | None = 0
    while after is not None:
        response = await client.get(
            f"/v1/conversations/{cid}/messages",
            params={"after": after, "limit": 4},
            headers=headers(),
        )
        page = MessagesPage.model_validate(response.json())
        seen += [e.seq for e in page.data if e.seq is not None]
        after = page.next_after
        assert page.has_more == (after is not None)
    assert seen == list(range(1, 10))  # message, answer, done per turn
    bad = await client.get(
        f"/v1/conversations/{cid}/messages", params={"limit": 0}, headers=headers()
    )
    assert "query.limit" in error_of(bad, 400, "invalid_request")


async def test_tenants_cannot_see_each_other(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client, tenant="acme")
    other = headers("globex")
    for method, path, body in [
        ("GET", f"/v1/conversations/{cid}", None),
        ("GET", f"/v1/conversations/{cid}/messages", None),
        ("POST", f"/v1/conversations/{cid}/messages", {"content": "hi"}),
        ("POST", f"/v1/conversations/{cid}/approvals/c", {"approve": True}),
        ("DELETE", f"/v1/conversations/{cid}", None),
    ]:
        response = await client.request(method, path, json=body, headers=other)
        error_of(response, 404, "not_found")
    assert (await client.get(f"/v1/conversations/{cid}", headers=headers())).status_code == 200


async def test_bad_requests_say_what_to_fix(client: httpx.AsyncClient) -> None:
    cid = await new_conversation(client)
    url = f"/v1/conversations/{cid}/messages"
    message = error_of(await client.post(url, json={}, headers=headers()), 400, "invalid_request")
    assert "body.content" in message and "required" in message.lower()
    message = error_of(
        await client.post(url, json={"content": "x", "colour": 1}, headers=headers()),
        400,
        "invalid_request",
    )
    assert "body.colour" in message
    message = error_of(
        await client.post(
            url, content=b"{not json", headers={**headers(), "Content-Type": "application/json"}
        ),
        400,
        "invalid_request",
    )
    assert "JSON" in message
    error_of(await client.get("/v1/nowhere", headers=headers()), 404, "not_found")
    response = await client.put("/v1/agents", headers=headers())
    assert response.status_code == 405 and response.json()["error"]["type"] == "invalid_request"


async def test_size_limits() -> None:
    async with await client_for(max_body_bytes=2048, max_message_chars=100) as client:
        cid = await new_conversation(client)
        url = f"/v1/conversations/{cid}/messages"
        long = await client.post(url, json={"content": "x" * 101}, headers=headers())
        assert "limit is 100" in error_of(long, 400, "invalid_request")
        big = await client.post(url, json={"content": "x" * 4000}, headers=headers())
        error_of(big, 413, "payload_too_large")

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 512

        response = await client.post(url, content=chunked(), headers=headers())
        error_of(response, 413, "payload_too_large")


async def test_rate_limit() -> None:
    async with await client_for(requests_per_minute=60, burst=3) as client:
        codes = [(await client.get("/v1/agents", headers=headers())).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = await client.get("/v1/agents", headers=headers())
        error_of(response, 429, "rate_limit_exceeded")
        assert 1 <= int(response.headers["retry-after"]) <= 2
        # Limits are per key: the other tenant is not limited.
        assert (await client.get("/v1/agents", headers=headers("globex"))).status_code == 200


async def test_a_key_with_a_rate_of_its_own() -> None:
    """A key's own rate and burst replace the app's, for that key only."""
    talk_only = {"Authorization": f"Bearer {api_app.TALK_ONLY_KEY}"}
    own = {"requests_per_minute": 6, "burst": 2}
    async with await client_for(requests_per_minute=600, burst=5, talk_only=own) as client:
        codes = [(await client.get("/v1/agents", headers=talk_only)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        response = await client.get("/v1/agents", headers=talk_only)
        assert "6 requests per minute" in error_of(response, 429, "rate_limit_exceeded")
        assert 5 <= int(response.headers["retry-after"]) <= 10  # one request per 10 s
        # The tenant's other key keeps the app's limits.
        codes = [(await client.get("/v1/agents", headers=headers())).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]


async def test_concurrent_turn_limits() -> None:
    async with await client_for(max_streams_per_key=1, max_concurrent_turns=2) as client:
        acme = await new_conversation(client)
        globex = await new_conversation(client, tenant="globex")
        api = client._transport.app.state.api  # type: ignore[attr-defined]
        api.key_turns.take(_hash("acme"))  # one turn of acme's is running
        busy = await client.post(
            f"/v1/conversations/{acme}/messages", json={"content": "hi"}, headers=headers()
        )
        error_of(busy, 429, "rate_limit_exceeded")
        assert busy.headers["retry-after"] == "1"
        api.turns.take()
        api.turns.take()
        full = await client.post(
            f"/v1/conversations/{globex}/messages",
            json={"content": "hi"},
            headers=headers("globex"),
        )
        error_of(full, 503, "overloaded")
        assert full.headers["retry-after"] == "1"
        api.turns.give()
        api.turns.give()
        ok = await client.post(
            f"/v1/conversations/{globex}/messages",
            json={"content": "hi"},
            headers=headers("globex"),
        )
        assert ok.status_code == 200 and api.turns.held() == 0


def _hash(tenant: str) -> str:
    from agents.api.spec import hash_key

    return hash_key(api_app.KEYS[tenant])


async def test_chat_completions(client: httpx.AsyncClient) -> None:
    body = {
        "model": "tech",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "sum 2 and 3"}]},
        ],
        "temperature": 0.2,
    }
    response = await client.post("/v1/chat/completions", json=body, headers=headers())
    reply = response.json()
    assert reply["object"] == "chat.completion" and reply["model"] == "tech"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "It is 5."}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["total_tokens"] > 0
    models = (await client.get("/v1/models", headers=headers())).json()
    assert [m["id"] for m in models["data"]] == ["triage", "billing", "tech"]


async def test_chat_completions_stream(client: httpx.AsyncClient) -> None:
    body = {
        "model": "tech",
        "messages": [{"role": "user", "content": "sum 2 and 3"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with aconnect_sse(
        client, "POST", "/v1/chat/completions", json=body, headers=headers()
    ) as source:
        data = [s.data async for s in source.aiter_sse()]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "It is 5."
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_chat_completions_errors(client: httpx.AsyncClient) -> None:
    url = "/v1/chat/completions"
    user = [{"role": "user", "content": "hi"}]
    error_of(
        await client.post(url, json={"model": "gpt-9", "messages": user}, headers=headers()),
        404,
        "not_found",
    )
    last_not_user = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]
    body = {"model": "tech", "messages": last_not_user}
    message = error_of(
        await client.post(url, json=body, headers=headers()),
        400,
        "invalid_request",
    )
    assert "last message" in message
    paused = await client.post(
        url,
        json={"model": "tech", "messages": [{"role": "user", "content": "shout"}]},
        headers=headers(),
    )
    error_of(paused, 409, "approval_required")
    failed = await client.post(
        url,
        json={"model": "tech", "messages": [{"role": "user", "content": "fail"}]},
        headers=headers(),
    )
    error_of(failed, 502, "agent_error")
    n2 = await client.post(url, json={"model": "tech", "messages": user, "n": 2}, headers=headers())
    error_of(n2, 400, "invalid_request")


async def test_seqs_past_64_bits_are_a_400_not_a_store_overflow(client: httpx.AsyncClient) -> None:
    # Found by the schemathesis run: SQLite cannot bind an int past 2**63 - 1.
    cid = await new_conversation(client)
    url = f"/v1/conversations/{cid}/messages"
    huge = await client.get(url, params={"after": 2**64}, headers=headers())
    assert "query.after" in error_of(huge, 400, "invalid_request")
    resumed = await client.post(
        url,
        json={"content": "hi", "idempotency_key": "k"},
        headers={**headers(), "Last-Event-ID": str(2**64)},
    )
    assert "not an event id" in error_of(resumed, 400, "invalid_request")
    many = {f"v{i}": "x" for i in range(33)}
    error_of(
        await client.post(url, json={"content": "hi", "variables": many}, headers=headers()),
        400,
        "invalid_request",
    )
