"""Agents as real Serve deployments over the scripted pool: routing, hand-offs, a crash."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.builder import INGRESS_NAME, build_agents_app
from agents.events import AnswerEvent, DoneEvent, ErrorEvent, Event, HandoffEvent, TokenEvent
from agents.messages import load_messages
from agents.pool.spec import PoolSpec
from agents.protocol import DecisionRequest, SendRequest
from agents.spec import AgentSpec
from agents.store import SQLiteStore, StoreSpec
from agents.testing import action
from tools.base import ToolCallRequest
from tools.spec import ToolsConfig

pytestmark = [pytest.mark.serve, pytest.mark.timeout(900)]

APP = "agents-scripted"


def answer(match: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"match": match, "json_reply": action("answer", text=text), **extra}


# A slow answer of distinct words: "word word word ..." would end early, caught repeating.
SLOW = " ".join(f"word{i}" for i in range(40))
SCRIPT = [
    # billing only answers, so it writes plain text: its rules go by its instructions.
    answer("Invoice total", "42 EUR", system="^You are billing"),
    answer("refund", "Billing here: refund issued.", system="^You are billing"),
    {"match": "refund", "json_reply": action("handoff", agent="billing")},
    {"match": "broken", "json_reply": action("handoff", agent="tech")},
    {"match": "^invoice", "json_reply": action("ask", agent="billing", question="Invoice total?")},
    answer(r"\[ask result\] 42 EUR", "The total is 42 EUR."),
    {"match": "^sum", "json_reply": action("tool", tool="add", arguments={"a": 2, "b": 3})},
    answer(r"\[add result\] 5", "It is 5."),
    {"match": "^shout", "json_reply": action("tool", tool="shout", arguments={"text": "ok"})},
    answer(r"\[shout result\] OK", "Shouted."),
    {
        "match": "^forecast",
        "json_reply": action("tool", tool="wx.forecast", arguments={"city": "Oslo"}),
    },
    answer(r"\[wx.forecast result\] Sunny in Oslo", "Sunny in Oslo."),
    answer("Handed off to tech", "Tech here."),
    answer("^slow", SLOW, token_delay_s=0.25),
    answer(".", "ok"),
]
POOL = {
    "models": [
        {"id": "m", "source": "builtin:smollm2-135m-instruct", "scripted": SCRIPT},
    ]
}
MCP_SERVER = Path(__file__).parents[1] / "fixtures" / "mcp_weather.py"
TOOLS = {
    "tools": [
        {"function": "tools.testing:add"},
        {"function": "tools.testing:shout", "settings": {"requires_approval": True}},
    ],
    "mcp_servers": [{"name": "wx", "command": ["python", str(MCP_SERVER)]}],
}
AGENTS = [
    {"name": "triage", "model": "m", "handoffs": ["billing", "tech"], "can_answer": False},
    {
        "name": "billing",
        "model": "m",
        "description": "refunds",
        "instructions": "You are billing: you issue refunds and know invoices.",
        "scaling": {"min_replicas": 2, "max_replicas": 2},
    },
    {
        "name": "tech",
        "model": "m",
        "description": "bugs",
        "asks": ["billing"],
        "tools": ["add", "shout", "wx.forecast"],
    },
]


@pytest.fixture(scope="module")
def app(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ray import serve

    db = tmp_path_factory.mktemp("agents") / "conversations.db"
    store = StoreSpec(backend="sqlite", path=str(db))
    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in AGENTS],
        PoolSpec.model_validate(POOL),
        store=store,
        tools=ToolsConfig.model_validate(TOOLS),
    )
    try:
        serve.run(built, name=APP, route_prefix=None)
        yield serve.get_app_handle(APP), db
    finally:
        serve.delete(APP)


async def send(app: Any, message: str, conversation_id: str, **fields: Any) -> list[Event]:
    handle = app[0].options(stream=True)
    request = SendRequest(message=message, conversation_id=conversation_id, **fields)
    return [event async for batch in handle.send.remote(request) for event in batch]


def done_of(events: list[Event]) -> DoneEvent:
    done = events[-1]
    assert isinstance(done, DoneEvent), events
    return done


def test_each_agent_is_its_own_deployment(app: Any) -> None:
    from ray import serve

    deployments = serve.status().applications[APP].deployments
    assert {"agent-triage", "agent-billing", "agent-tech", INGRESS_NAME, "pool-m"} <= set(
        deployments
    )
    assert all(d.status == "HEALTHY" for d in deployments.values())


async def test_handoff_through_deployment_handles(app: Any) -> None:
    events = await send(app, "my screen is broken", conversation_id=uuid.uuid4().hex)
    handoff = next(e for e in events if isinstance(e, HandoffEvent))
    assert (handoff.agent, handoff.to_agent) == ("triage", "tech")
    answers = [e for e in events if isinstance(e, AnswerEvent)]
    assert [(a.agent, a.text) for a in answers] == [("tech", "Tech here.")]
    done = done_of(events)
    assert done.status == "ok" and done.active_agent == "tech"
    assert set(done.replicas) == {"triage", "tech"}


async def test_ask_through_deployment_handles(app: Any) -> None:
    events = await send(
        app, "invoice for my repair?", conversation_id=uuid.uuid4().hex, agent="tech"
    )
    kinds = [e.type for e in events if not isinstance(e, TokenEvent)]
    assert kinds == ["message", "ask", "tool_result", "answer", "done"]
    result = next(e for e in events if e.type == "tool_result")
    assert result.content == "42 EUR"  # type: ignore[union-attr]
    answers = [e for e in events if isinstance(e, AnswerEvent)]
    assert [(a.agent, a.text) for a in answers] == [("tech", "The total is 42 EUR.")]
    assert done_of(events).usage.hops == 1


async def test_tool_call_through_the_executor_deployment(app: Any) -> None:
    events = await send(app, "sum of 2 and 3", conversation_id=uuid.uuid4().hex, agent="tech")
    kinds = [e.type for e in events if not isinstance(e, TokenEvent)]
    assert kinds == ["message", "tool_call", "tool_result", "answer", "done"]
    assert [getattr(e, "content", None) for e in events if e.type == "tool_result"] == ["5"]


async def test_an_mcp_tool_through_the_executor_deployment(app: Any) -> None:
    events = await send(app, "forecast for Oslo", conversation_id=uuid.uuid4().hex, agent="tech")
    results = [getattr(e, "content", None) for e in events if e.type == "tool_result"]
    assert results == ["Sunny in Oslo for 1 day(s)"]
    assert [getattr(e, "text", None) for e in events if e.type == "answer"] == ["Sunny in Oslo."]


async def test_a_crafted_call_to_a_tool_granted_to_another_agent_is_refused(app: Any) -> None:
    from ray import serve

    executor = serve.get_deployment_handle("tools", APP)
    crafted = ToolCallRequest(call_id="x", name="add", arguments={"a": 1, "b": 1}, agent="billing")
    result = await executor.execute.remote(crafted)
    assert result.is_error and result.error_type == "tool_forbidden"
    allowed = await executor.execute.remote(crafted.model_copy(update={"agent": "tech"}))
    assert allowed.content == "2"


async def test_a_pending_approval_survives_replica_restarts(app: Any) -> None:
    import ray
    from ray import serve

    conversation = f"approval-{uuid.uuid4().hex[:8]}"
    events = await send(app, "shout it", conversation_id=conversation, agent="tech")
    assert done_of(events).status == "paused"
    pending = next(e for e in events if e.type == "approval_required")

    # Restart the agent's and the executor's replicas while the call waits.
    def replicas() -> set[str]:
        prefixes = tuple(f"SERVE_REPLICA::{APP}#{d}#" for d in ("agent-tech", "tools"))
        return {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(prefixes)
        }

    old = replicas()
    assert len(old) == 2
    for name in old:
        ray.kill(ray.get_actor(name, namespace="serve"))
    deadline = asyncio.get_running_loop().time() + 120
    while True:  # Serve replaces them: wait for two new, healthy replicas
        fresh = replicas() - old
        deployments = serve.status().applications[APP].deployments
        healthy = all(deployments[d].status == "HEALTHY" for d in ("agent-tech", "tools"))
        if len(fresh) == 2 and healthy:
            break
        assert asyncio.get_running_loop().time() < deadline, "replicas did not come back"
        await asyncio.sleep(0.5)
    decision = DecisionRequest(
        conversation_id=conversation,
        call_id=pending.call_id,  # type: ignore[attr-defined]
        approved=True,
    )
    stream = app[0].options(stream=True).decide.remote(decision)
    resumed = [e async for batch in stream for e in batch]
    assert [getattr(e, "text", None) for e in resumed if e.type == "answer"] == ["Shouted."]


async def test_a_conversation_stays_on_one_replica(app: Any) -> None:
    seen: dict[str, set[str]] = {}
    for n in range(8):
        conversation = f"sticky-{n}-{uuid.uuid4().hex[:6]}"
        await send(app, "I want a refund", conversation_id=conversation)
        for turn in range(3):
            events = await send(app, f"turn {turn}", conversation_id=conversation)
            seen.setdefault(conversation, set()).add(done_of(events).replicas["billing"])
    assert all(len(replicas) == 1 for replicas in seen.values()), seen
    # Both replicas serve conversations (8 conversations on one of 2: p = 1/128).
    assert len(set().union(*seen.values())) == 2


async def test_killing_the_replica_mid_conversation_loses_nothing(app: Any) -> None:
    import ray

    conversation = f"chaos-{uuid.uuid4().hex[:8]}"
    await send(app, "I want a refund", conversation_id=conversation)
    first = await send(app, "turn 1", conversation_id=conversation)
    victim = done_of(first).replicas["billing"]

    # A slow answer streams from the victim; kill it after its first token.
    handle = app[0].options(stream=True)
    stream = handle.send.remote(
        SendRequest(message="slow answer please", conversation_id=conversation)
    )
    events: list[Event] = []
    killed = False
    async for batch in stream:
        events += batch
        if not killed and any(isinstance(e, TokenEvent) for e in events):
            actor = ray.get_actor(f"SERVE_REPLICA::{APP}#agent-billing#{victim}", namespace="serve")
            ray.kill(actor, no_restart=True)
            killed = True
    assert killed
    # The turn went on from the store on the surviving replica: no error, one answer.
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    done = done_of(events)
    assert done.status == "ok" and done.replicas["billing"] != victim

    # Everything stored before the crash is there, and the answer once: 3 user
    # messages, 3 answers.
    _, db = app
    store = SQLiteStore(db)
    await store.open()
    stored = await store.events(conversation)
    await store.close()
    messages = [e.content for e in stored if e.type == "message"]
    assert messages == ["I want a refund", "turn 1", "slow answer please"]
    assert [e.type for e in stored].count("answer") == 3

    # The next turn runs on the surviving replica, which reloads the whole history.
    after = await send(app, "are you there?", conversation_id=conversation)
    done = done_of(after)
    assert done.status == "ok" and done.replicas["billing"] != victim
    from ray import serve

    billing = serve.get_deployment_handle("agent-billing", APP)
    peek = await billing.options(session_id=conversation).peek.remote(conversation)
    assert peek["replica"] == done.replicas["billing"]
    history = [(m.type, m.content) for m in load_messages(peek["messages"])]
    assert [c for t, c in history if t == "human"] == [
        "I want a refund",
        "turn 1",
        "slow answer please",
        "are you there?",
    ]
    assert ("ai", "Billing here: refund issued.") in history
    assert ("ai", SLOW) in history
    assert history[-1] == ("ai", "ok")
