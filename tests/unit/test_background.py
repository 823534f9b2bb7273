"""Background runs through the HTTP API in-process (no Ray): 202 at once, the turn's
status and result, its events as SSE with Last-Event-ID, cancel, and webhooks sent to
a real receiver on 127.0.0.1 (retried after a 500, one delivery id per run, signed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from agents.api._webhooks import Webhooks, delivery_id
from agents.api.app import create_app
from agents.api.spec import WebhookSpec
from agents.events import DoneEvent, event_adapter
from agents.store.memory import MemoryStore
from agents.testing import LocalApp, ScriptedGenerator
from tests.fixtures import api_app
from tests.fixtures.api_app import headers
from tests.fixtures.webhook_receiver import Receiver, receiver, signature_ok

SECRET = "whsec-test"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    monkeypatch.setenv("RAY_AGENTS_WEBHOOK_SECRET", SECRET)
    with receiver(fail_first=True) as got:
        yield got


def client_for(local: LocalApp, allow: list[str]) -> httpx.AsyncClient:
    spec = api_app.api_spec(webhooks=WebhookSpec(allow=allow, backoff_s=0.05, max_backoff_s=0.1))
    app = create_app(local.conversations, api_app.agent_specs(), spec)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api")


def local_app() -> LocalApp:
    return LocalApp(api_app.agent_specs(), generator=ScriptedGenerator(api_app.SCRIPT))


async def conversation(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/conversations", json={}, headers=headers())
    assert response.status_code == 201, response.text
    cid: str = response.json()["id"]
    return cid


async def until_ended(client: httpx.AsyncClient, location: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await client.get(location, headers=headers())
        assert got.status_code == 200, got.text
        body = got.json()
        if body["status"] != "running":
            return body
        await asyncio.sleep(0.25)  # well within the key's rate limit
    raise AssertionError(f"{location} still runs")


async def test_a_background_send_answers_202_and_the_turn_runs_on(hooks: Receiver) -> None:
    accepted_key = "bg-1"
    async with client_for(local_app(), [hooks.url]) as client:
        cid = await conversation(client)
        started = time.monotonic()
        sent = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={
                "content": "slow please",
                "background": True,
                "webhook": hooks.url,
                "idempotency_key": accepted_key,
            },
            headers=headers(),
        )
        assert sent.status_code == 202, sent.text
        assert time.monotonic() - started < 2  # the slow turn takes ~10 s
        accepted = sent.json()
        turn_id = accepted["turn_id"]
        assert accepted["status"] == "running" and [e["type"] for e in accepted["events"]] == [
            "message"
        ]
        location = sent.headers["location"]
        assert location == f"/v1/conversations/{cid}/turns/{turn_id}"
        now = (await client.get(location, headers=headers())).json()
        assert now["status"] == "running" and now["turn_id"] == turn_id
        ended = await until_ended(client, location)
        assert ended["status"] == "ok" and ended["answer"].startswith("word0")
        assert [e["type"] for e in ended["events"]] == ["message", "answer", "done"]
        # The webhook: tried, refused with 500, tried again with the same id, accepted.
        got = await asyncio.to_thread(hooks.wait_for, 1, 10)
        assert hooks.ids() == [delivery_id(cid, turn_id)] * 2
        delivery = got[delivery_id(cid, turn_id)]
        # A retry of the background send (same key) gets the turn as it is now.
        again = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={
                "content": "slow please",
                "background": True,
                "webhook": hooks.url,
                "idempotency_key": accepted_key,
            },
            headers=headers(),
        )
        assert again.status_code == 202 and again.json()["status"] == "ok"
        assert again.json()["turn_id"] == turn_id
        assert delivery.body["type"] == "turn.ended" and delivery.body["turn_id"] == turn_id
        assert delivery.body["status"] == "ok" and delivery.body["result"] == ended
        assert delivery.headers["x-ray-agents-attempt"] == "2"
        assert signature_ok(delivery, SECRET)
        # It is recorded as delivered, and nothing is left for another sender.
        store = client._transport.app.state.api.conversations.store  # type: ignore[attr-defined]
        turn = await store.turn_by_id(cid, turn_id)
        assert turn.delivery == "delivered" and await store.undelivered(time.time() + 3600) == []


async def test_a_background_turns_events_stream_and_resume(hooks: Receiver) -> None:
    async with client_for(local_app(), []) as client:
        cid = await conversation(client)
        sent = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "refund please", "background": True},
            headers=headers(),
        )
        path = sent.headers["location"] + "/events"
        async with aconnect_sse(client, "GET", path, headers=headers()) as source:
            events = [event_adapter.validate_json(s.data) async for s in source.aiter_sse()]
        assert [e.type for e in events] == ["message", "handoff", "answer", "done"]
        assert isinstance(events[-1], DoneEvent) and events[-1].last_seq == events[-1].seq
        after = {**headers(), "Last-Event-ID": str(events[1].seq)}
        async with aconnect_sse(client, "GET", path, headers=after) as source:
            resumed = [event_adapter.validate_json(s.data) async for s in source.aiter_sse()]
        assert [e.seq for e in resumed] == [e.seq for e in events[2:]]
        # An open stream holds one of the key's 32 places, and gives it back at its end.
        for _ in range(40):
            again = await client.get(path, headers=after)
            assert again.status_code == 200 and "event: done" in again.text
        missing = await client.get(f"/v1/conversations/{cid}/turns/nope", headers=headers())
        assert missing.status_code == 404
        other = await client.get(sent.headers["location"], headers=headers("globex"))
        assert other.status_code == 404  # another tenant's turn does not exist for it


async def test_a_background_turn_can_be_cancelled() -> None:
    async with client_for(local_app(), []) as client:
        cid = await conversation(client)
        sent = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "slow", "background": True},
            headers=headers(),
        )
        await asyncio.sleep(0.3)
        cancelled = await client.post(sent.headers["location"] + "/cancel", headers=headers())
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "interrupted"
        assert [e["type"] for e in cancelled.json()["events"]] == ["message", "done"]
        again = await client.post(sent.headers["location"] + "/cancel", headers=headers())
        assert again.json()["status"] == "interrupted"  # an ended turn stays as it is
        # The conversation takes a new message at once (nothing still holds it).
        reply = await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "hello"}, headers=headers()
        )
        assert reply.json()["status"] == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/elsewhere",
        "http://localhost:1/hooks",
        "https://127.0.0.1:1/hooks",
        "http://127.0.0.1:1/hooks/../admin",
        "http://127.0.0.1:1/hooks/%2e%2e/admin",
        "http://127.0.0.1:1/hooks%2fx",
        "file:///etc/passwd",
    ],
)
async def test_a_webhook_outside_the_allow_list_is_refused(url: str) -> None:
    async with client_for(local_app(), ["http://127.0.0.1:*/hooks"]) as client:
        cid = await conversation(client)
        sent = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "hi", "background": True, "webhook": url},
            headers=headers(),
        )
        assert sent.status_code == 400, sent.text
        assert sent.json()["error"]["code"] == "webhook_not_allowed"
        assert (await client.get(f"/v1/conversations/{cid}", headers=headers())).json()[
            "last_seq"
        ] == 0  # nothing was stored


async def test_the_multitask_policy_reaches_the_turn_through_the_api() -> None:
    async with client_for(local_app(), []) as client:
        cid = await conversation(client)
        await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "slow", "background": True},
            headers=headers(),
        )
        await asyncio.sleep(0.3)
        busy = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "hello", "multitask": "reject"},
            headers=headers(),
        )
        assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == "conversation_busy"
        reply = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "hello", "multitask": "interrupt"},
            headers=headers(),
        )
        assert reply.json()["status"] == "ok"
        page = (await client.get(f"/v1/conversations/{cid}/messages", headers=headers())).json()
        assert [(e["type"], e.get("status")) for e in page["data"]] == [
            ("message", None),
            ("done", "interrupted"),
            ("message", None),
            ("answer", None),
            ("done", "ok"),
        ]
        bad = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "hello", "multitask": "shove"},
            headers=headers(),
        )
        assert bad.status_code == 400 and "multitask" in bad.json()["error"]["message"]


async def test_a_delivery_whose_sender_died_is_sent_by_another(hooks: Receiver) -> None:
    # The turn ended, but the replica that ran it died before its webhook went out:
    # another replica's deliver_pending sends it, once.
    store = MemoryStore()
    local = LocalApp(
        api_app.agent_specs(), generator=ScriptedGenerator(api_app.SCRIPT), store=store
    )
    events = await local.send("hello", conversation_id="c1", webhook=hooks.url)
    turn_id = events[-1].turn_id or ""
    spec = WebhookSpec(allow=[hooks.url], backoff_s=0.05, max_backoff_s=0.1)
    senders = [Webhooks(store, spec) for _ in range(3)]
    try:
        sent = await asyncio.gather(*(w.deliver_pending() for w in senders))
        assert sorted(sent) == [0, 0, 1]  # one sender holds it ...
        await asyncio.gather(*(w.flush() for w in senders))
        assert hooks.ids() == [delivery_id("c1", turn_id)] * 2  # ... and retried after a 500
        assert await asyncio.gather(*(w.deliver_pending() for w in senders)) == [0, 0, 0]
    finally:
        for sender in senders:
            await sender.close()


async def test_a_receiver_that_never_answers_2xx_fails_the_delivery(hooks: Receiver) -> None:
    store = MemoryStore()
    local = LocalApp(
        api_app.agent_specs(), generator=ScriptedGenerator(api_app.SCRIPT), store=store
    )
    dead = "http://127.0.0.1:9/hooks"  # nothing listens on the discard port
    events = await local.send("hello", conversation_id="c1", webhook=dead)
    turn_id = events[-1].turn_id or ""
    sender = Webhooks(
        store, WebhookSpec(allow=[dead], attempts=3, backoff_s=0.01, max_backoff_s=0.01)
    )
    try:
        assert not await sender.deliver("c1", turn_id)
    finally:
        await sender.close()
    turn = await store.turn_by_id("c1", turn_id)
    assert turn is not None and turn.delivery == "failed"
    assert await store.undelivered(time.time() + 3600) == []


async def test_a_turn_read_in_the_foreground_tells_its_webhook_too(hooks: Receiver) -> None:
    async with client_for(local_app(), [hooks.url]) as client:
        cid = await conversation(client)
        reply = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "hello", "webhook": hooks.url},
            headers=headers(),
        )
        assert reply.status_code == 200 and reply.json()["status"] == "ok"
        got = await asyncio.to_thread(hooks.wait_for, 1, 10)
        turn_id = reply.json()["turn_id"]
        assert got[delivery_id(cid, turn_id)].body["result"]["answer"] == reply.json()["answer"]


async def test_the_sdk_runs_a_turn_in_the_background_and_reads_usage() -> None:
    from agents.client import AsyncBackgroundTurn, AsyncClient

    local = local_app()
    async with client_for(local, []) as http:
        client = AsyncClient("http://api", api_app.KEYS["acme"], http_client=http)
        conv = await client.conversations.create()
        run = await conv.send("refund please", background=True)
        assert isinstance(run, AsyncBackgroundTurn) and run.accepted.status == "running"
        async with run.stream() as events:
            streamed = [event async for event in events]
        assert [e.type for e in streamed] == ["message", "handoff", "answer", "done"]
        result = await run.wait(timeout=10)
        assert result.status == "ok" and result.turn_id == run.id
        assert conv.agent == "billing"  # the handle follows the hand-off
        assert (await conv.turn(run.id)).answer == result.answer
        report = await client.usage()
        assert report.calls == result.usage.steps and report.tenant == "acme"
        assert report.completion_tokens == result.usage.completion_tokens
