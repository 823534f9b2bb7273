"""Remote A2A agents as peers: an app here hands off to (and asks) an agent another
ray-agents app serves over A2A on its own port, through the a2a-sdk client.

The remote app is the scripted multi-agent app, served by uvicorn in the test's loop;
the local one is a ``LocalApp`` whose ``front`` agent names ``partner`` (the remote's
billing agent) among its peers. Both record spans with one in-memory provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents.api.app import create_app
from agents.config import AppConfig
from agents.errors import ConfigError
from agents.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolResultEvent,
)
from agents.observability.tracing import use_provider
from agents.remote import RemoteAgentSpec
from agents.spec import AgentSpec
from agents.testing import LocalApp, ScriptedGenerator, action
from tests.fixtures import api_app
from tests.fixtures.api_app import KEYS
from tests.fixtures.local_server import serving

FRONT_SCRIPT = [
    {"match": "^ask", "json_reply": action("ask", agent="partner", question="I want a refund")},
    {"match": r"\[ask result\] Billing here", "json_reply": action("answer", text="Done.")},
    {"match": "refund", "json_reply": action("handoff", agent="partner", message="order 7")},
    {"match": "", "json_reply": action("answer", text="front here")},
]
FRONT = AgentSpec(
    name="front", model="m", description="the front desk", handoffs=["partner"], asks=["partner"]
)


class Apps:
    def __init__(self, local: LocalApp, remote: LocalApp, spans: InMemorySpanExporter) -> None:
        self.local = local
        self.remote = remote
        self.spans = spans

    async def send(self, text: str, **fields: Any) -> list[Any]:
        return await self.local.send(text, **fields)


def partner(url: str, **remote: Any) -> RemoteAgentSpec:
    return RemoteAgentSpec.model_validate(
        {
            "name": "partner",
            "description": "refunds, at our partner",
            "remote": {"url": url, "auth_env": "PARTNER_KEY", **remote},
        }
    )


@pytest.fixture
async def apps(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Apps]:
    monkeypatch.setenv("PARTNER_KEY", KEYS["acme"])
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    specs = [s.model_copy(update={"tools": []}) for s in api_app.agent_specs()]
    remote = LocalApp(specs, generator=ScriptedGenerator(api_app.SCRIPT))
    app = create_app(remote.conversations, specs, api_app.api_spec())
    with use_provider(provider):
        async with serving(app) as url:
            local = LocalApp(
                [FRONT],
                generator=ScriptedGenerator(FRONT_SCRIPT),
                remotes=[partner(f"{url}/a2a/billing")],
            )
            yield Apps(local, remote, spans)
            await local.peers.services["partner"].close()
    await app.state.api.close()


async def test_a_hand_off_to_a_remote_agent_answers_and_keeps_its_context(apps: Apps) -> None:
    events = await apps.send("I want a refund", conversation_id="c1")
    stored = [e for e in events if not isinstance(e, TokenEvent)]
    assert [type(e) for e in stored] == [MessageEvent, HandoffEvent, AnswerEvent, DoneEvent]
    answer, done = stored[2], stored[3]
    assert isinstance(answer, AnswerEvent) and answer.agent == "partner"
    assert answer.text == "Billing here: refund issued."
    assert isinstance(done, DoneEvent) and done.status == "ok" and done.active_agent == "partner"
    tokens = "".join(e.text for e in events if isinstance(e, TokenEvent) and e.agent == "partner")
    assert tokens == answer.text  # the remote's answer streamed on as tokens
    # The next message goes to the remote agent again, in the same remote context.
    more = await apps.send("and another refund", conversation_id="c1")
    assert more[-1].status == "ok" and more[-1].active_agent == "partner"
    [remote_id] = [c for c in await _conversations(apps.remote)]
    remote_messages = [
        e.content for e in await apps.remote.store.events(remote_id) if isinstance(e, MessageEvent)
    ]
    assert remote_messages == ["I want a refund", "and another refund"]
    # One trace across both apps: the remote app's turn continues the local turn's.
    local_turns = _spans(apps, "conversation.turn", "ray_agents.conversation_id", "c1")
    remote_turns = _spans(apps, "conversation.turn", "ray_agents.conversation_id", remote_id)
    assert len(local_turns) == 2 and len(remote_turns) == 2
    for mine, theirs in zip(local_turns, remote_turns, strict=True):
        assert theirs.context.trace_id == mine.context.trace_id
    hops = [s for s in apps.spans.get_finished_spans() if s.name == "agent.remote"]
    assert len(hops) == 2 and all(h.context.trace_id for h in hops)


async def test_an_ask_of_a_remote_agent_comes_back_as_the_tool_result(apps: Apps) -> None:
    events = await apps.send("ask the partner", conversation_id="c2")
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [r.content for r in results] == ["Billing here: refund issued."]
    assert events[-2].text == "Done." and events[-1].status == "ok"  # type: ignore[union-attr]
    assert events[-1].active_agent == "front"  # type: ignore[union-attr]


async def test_an_unreachable_remote_agent_fails_the_turn_with_its_code() -> None:
    local = LocalApp(
        [FRONT],
        generator=ScriptedGenerator(FRONT_SCRIPT),
        remotes=[partner("http://127.0.0.1:9/a2a/billing", timeout_s=5)],
    )
    events = await local.send("I want a refund", conversation_id="c3")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.code for e in errors] == ["agent_unavailable"]
    assert "partner" in errors[0].message and events[-1].status == "error"  # type: ignore[union-attr]
    stored = await local.store.events("c3")
    assert [e.type for e in stored] == ["message", "handoff", "error", "done"]
    await local.peers.services["partner"].close()


async def test_the_turns_deadline_reaches_the_remote_agent(apps: Apps) -> None:
    apps.local.service  # noqa: B018 - the fixture's apps are up
    slow = AgentSpec(name="front", model="m", handoffs=["partner"])
    script = [{"match": "", "json_reply": action("handoff", agent="partner", message="go")}]
    url = apps.local.peers.services["partner"].spec.remote.url.replace("billing", "triage")
    local = LocalApp([slow], generator=ScriptedGenerator(script), remotes=[partner(url)])
    started = asyncio.get_running_loop().time()
    events = await local.send("slow answer please", conversation_id="c4", timeout_s=1.5)
    assert asyncio.get_running_loop().time() - started < 5  # not the remote's ~10 s
    errors = [e.code for e in events if isinstance(e, ErrorEvent)]
    assert errors == ["deadline_exceeded"], events
    # The remote turn stopped too: it ends interrupted (cancelled) or past its deadline.
    [remote_id] = await _conversations(apps.remote)
    for _ in range(100):
        done = (await apps.remote.store.events(remote_id))[-1]
        if isinstance(done, DoneEvent):
            break
        await asyncio.sleep(0.05)
    assert isinstance(done, DoneEvent) and done.status in ("interrupted", "error")
    await local.peers.services["partner"].close()


def test_remote_agents_in_an_app_config_are_checked_by_name() -> None:
    pool = {"models": [{"id": "m", "source": "builtin:smollm2-135m-instruct", "scripted": []}]}
    remote = {"name": "partner", "remote": {"url": "http://partner:8000/a2a/billing"}}
    front = {"name": "front", "model": "m", "handoffs": ["partner"]}
    config = AppConfig.model_validate({"pool": pool, "agents": [front, remote]})
    assert [a.name for a in config.remote_specs] == ["partner"]
    assert [a.name for a in config.agent_specs] == ["front"]
    from agents.config import check_app

    check_app(config)
    twice = AppConfig.model_validate({"pool": pool, "agents": [front, remote, remote]})
    with pytest.raises(ConfigError, match="'partner' is already defined"):
        check_app(twice)
    with pytest.raises(ValueError, match="url"):
        AppConfig.model_validate(
            {"pool": pool, "agents": [front, {"name": "x", "remote": {"url": "ftp://x"}}]}
        )


async def _conversations(app: LocalApp) -> list[str]:
    return list(app.store._conversations)  # type: ignore[attr-defined]


def _spans(apps: Apps, name: str, key: str, value: str) -> list[Any]:
    found = [
        s
        for s in apps.spans.get_finished_spans()
        if s.name == name and (s.attributes or {}).get(key) == value
    ]
    return sorted(found, key=lambda s: s.start_time or 0)
