"""Human approval: a tool marked requires_approval pauses the turn until a decision."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.errors import NoPendingApprovalError
from agents.events import (
    AnswerEvent,
    ApprovalRequiredEvent,
    DoneEvent,
    Event,
    MessageEvent,
    ToolResultEvent,
)
from agents.spec import AgentSpec
from agents.store import SQLiteStore
from agents.testing import LocalApp, ScriptedGenerator, action
from tools import testing
from tools.base import ToolCallRequest
from tools.executor import ToolRunner
from tools.registry import ToolRegistry
from tools.spec import ToolSettings

RULES = [
    {"match": "refund", "json_reply": action("tool", tool="add", arguments={"a": 40, "b": 2})},
    {"match": r"\[add result\] 42", "json_reply": action("answer", text="Refunded 42.")},
    {"match": r"\[add result\] rejected", "json_reply": action("answer", text="Not refunded.")},
]


RUNNERS: list[ToolRunner] = []


@pytest.fixture(autouse=True)
async def _close_runners() -> AsyncIterator[None]:
    """The runners' worker processes stop with their test."""
    yield
    while RUNNERS:
        await RUNNERS.pop().close()


def runner() -> ToolRunner:
    registry = ToolRegistry()
    registry.add_function(testing.add, settings=ToolSettings(requires_approval=True))
    RUNNERS.append(ToolRunner(registry, grants={"billing": ["add"]}))
    return RUNNERS[-1]


def app(store: SQLiteStore) -> LocalApp:
    spec = AgentSpec(name="billing", model="m", tools=["add"])
    return LocalApp([spec], generator=ScriptedGenerator(RULES), tools=runner(), store=store)


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events if e.type != "token"]


@pytest.fixture
async def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "c.db")
    await store.open()
    return store


async def pause(billing: LocalApp) -> ApprovalRequiredEvent:
    events = await billing.send("please refund me", conversation_id="c1")
    assert kinds(events) == ["message", "tool_call", "approval_required", "done"]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "paused"
    pending = events[2]
    assert isinstance(pending, ApprovalRequiredEvent)
    assert (pending.name, pending.arguments) == ("add", {"a": 40, "b": 2})
    return pending


async def test_approve_runs_the_call_and_the_turn_goes_on(store: SQLiteStore) -> None:
    billing = app(store)
    pending = await pause(billing)
    events = await billing.decide("c1", pending.call_id, approved=True)
    assert kinds(events) == ["approval", "tool_result", "answer", "done"]
    assert [e.content for e in events if isinstance(e, ToolResultEvent)] == ["42"]
    assert [e.text for e in events if isinstance(e, AnswerEvent)] == ["Refunded 42."]
    # Deciding again replays the stored turn; nothing runs twice.
    again = await billing.decide("c1", pending.call_id, approved=True)
    assert kinds(again) == kinds(events)
    stored = await store.events("c1")
    assert sum(e.type == "tool_result" for e in stored) == 1


async def test_reject_reaches_the_agent_as_a_tool_error(store: SQLiteStore) -> None:
    billing = app(store)
    pending = await pause(billing)
    events = await billing.decide("c1", pending.call_id, approved=False, reason="too much")
    [result] = [e for e in events if isinstance(e, ToolResultEvent)]
    assert result.is_error and result.content.endswith("did not approve this call: too much")
    assert [e.text for e in events if isinstance(e, AnswerEvent)] == ["Not refunded."]


async def test_a_pending_approval_survives_a_restart(store: SQLiteStore, tmp_path: Path) -> None:
    pending = await pause(app(store))
    await store.close()
    # New replicas: a fresh store connection, entry, agent and executor.
    reopened = SQLiteStore(tmp_path / "c.db")
    await reopened.open()
    events = await app(reopened).decide("c1", pending.call_id, approved=True)
    assert [e.text for e in events if isinstance(e, AnswerEvent)] == ["Refunded 42."]


async def test_a_decision_needs_a_pending_call(store: SQLiteStore) -> None:
    billing = app(store)
    await pause(billing)
    with pytest.raises(NoPendingApprovalError, match="call_nope"):
        await billing.decide("c1", "call_nope", approved=True)


async def test_a_decision_on_a_call_a_later_message_closed_is_refused(
    store: SQLiteStore,
) -> None:
    billing = app(store)
    closed = await pause(billing)
    await billing.send("please refund me", conversation_id="c1")  # supersedes the call
    before = await store.events("c1")
    with pytest.raises(NoPendingApprovalError, match=closed.call_id):
        await billing.decide("c1", closed.call_id, approved=True)
    assert await store.events("c1") == before  # no decision stored, no model step run


async def test_a_made_decision_replays_even_after_a_later_message(store: SQLiteStore) -> None:
    billing = app(store)
    pending = await pause(billing)
    first = await billing.decide("c1", pending.call_id, approved=True)
    await billing.send("please refund me", conversation_id="c1")
    again = await billing.decide("c1", pending.call_id, approved=True)
    assert kinds(again) == kinds(first)
    with pytest.raises(NoPendingApprovalError, match="already approved"):
        await billing.decide("c1", pending.call_id, approved=False)


async def test_a_decision_reads_only_the_last_turn_not_the_whole_log(store: SQLiteStore) -> None:
    billing = app(store)
    await store.begin_turn(
        "c1", MessageEvent(content="old"), idempotency_key="old", agent="billing"
    )
    await store.append("c1", [AnswerEvent(text=f"a{i}") for i in range(200)])
    pending = await pause(billing)
    read: list[int] = []
    events = store.events

    async def counted(conversation_id: str, **kw: Any) -> list[Event]:
        found = await events(conversation_id, **kw)
        read.append(len(found))
        return found

    store.events = counted  # type: ignore[method-assign]
    with pytest.raises(NoPendingApprovalError):
        await billing.decide("c1", "call_nope", approved=True)
    assert read and sum(read) < 20, read
    read.clear()
    await billing.decide("c1", pending.call_id, approved=True)
    assert read[0] < 20, read


async def test_the_executor_refuses_an_unapproved_call() -> None:
    request: dict[str, Any] = {"call_id": "x", "name": "add", "arguments": {"a": 1, "b": 1}}
    result = await runner().execute(ToolCallRequest(agent="billing", **request))
    assert result.is_error and result.error_type == "approval_required"
    approved = await runner().execute(ToolCallRequest(agent="billing", approved=True, **request))
    assert approved.content == "2"


async def test_the_turn_a_decision_resumes_keeps_the_callers_variables(
    store: SQLiteStore,
) -> None:
    spec = AgentSpec(
        name="billing",
        model="m",
        tools=["add"],
        instructions="You refund ${user}.",
        variables={"user": "a customer"},
        caller_variables=["user"],
    )
    generator = ScriptedGenerator(RULES)
    billing = LocalApp([spec], generator=generator, tools=runner(), store=store)
    events = await billing.send("please refund me", conversation_id="c1", variables={"user": "Ann"})
    pending = next(e for e in events if isinstance(e, ApprovalRequiredEvent))
    await billing.decide("c1", pending.call_id, approved=True)
    # Every step, before the pause and after the decision, had the caller's variable.
    prompts = {r.messages[0].content.split("\n")[0] for r in generator.requests}
    assert prompts == {"You refund Ann."}, prompts
    assert len(generator.requests) == 2
