"""Recovery without a person: leases, joined retries, resumed turns (no Ray)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from agents.errors import ConversationBusyError, EngineLostError, PeerLostError
from agents.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agents.pool.generator import Generator
from agents.pool.types import Chunk, GenerateRequest
from agents.protocol import SendRequest, TurnRequest
from agents.spec import AgentSpec
from agents.store.memory import MemoryStore
from agents.testing import LocalApp, ScriptedGenerator, action
from tools.deployment import HandleTools
from tools.testing import FunctionTools

FAST = (0.01, 0.01)  # recovery pauses for tests


def agent(name: str, **fields: Any) -> AgentSpec:
    return AgentSpec(name=name, model="m", **{"instructions": f"You are {name}.", **fields})


def rule(match: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"match": match, "json_reply": action(kind, **fields)}


def stored_types(events: list[Event]) -> list[str]:
    return [e.type for e in events if not isinstance(e, TokenEvent)]


class Calls(FunctionTools):
    """FunctionTools that count the calls that really ran."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

        def add(a: int, b: int) -> int:
            """Add two integers."""
            self.ran.append("add")
            return a + b

        schema = {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]}
        self.add("add", add, schema)


async def dead_turn(app: LocalApp, cid: str, key: str, *events: Event) -> str:
    """A turn begun by a runner that died at once: its lease runs out in 0.2 s."""
    turn, created = await app.store.begin_turn(
        cid,
        MessageEvent(content="hello", agent="solo"),
        idempotency_key=key,
        agent="solo",
        lease_until=time.time() + 0.2,
        runner="dead",
    )
    assert created
    if events:
        await app.store.append(
            cid, [e.model_copy(update={"turn_id": turn.turn_id}) for e in events]
        )
    return turn.turn_id


async def test_a_retried_send_takes_over_a_turn_whose_runner_died() -> None:
    gen = ScriptedGenerator([rule("hello", "answer", text="hi")])
    app = LocalApp([agent("solo")], generator=gen)
    turn_id = await dead_turn(app, "c1", "k1")
    events = await app.send("hello", conversation_id="c1", idempotency_key="k1")
    assert stored_types(events) == ["message", "answer", "done"]
    assert {e.turn_id for e in events if not isinstance(e, TokenEvent)} == {turn_id}
    log = await app.store.events("c1")
    assert [e.type for e in log] == ["message", "answer", "done"]  # one message, one answer
    # A reconnecting stream (Last-Event-ID) gets only what follows its last event.
    again = await app.send("hello", conversation_id="c1", idempotency_key="k1", after_seq=2)
    assert [e.type for e in again] == ["done"]


async def test_a_new_message_closes_a_dead_runners_turn_with_runner_lost() -> None:
    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp([agent("solo")], generator=gen)
    dead = await dead_turn(app, "c2", "k1")
    with pytest.raises(ConversationBusyError):  # its lease is still live
        await app.send("next", conversation_id="c2", multitask="reject")
    # Queued (the default), the message waits for the dead runner's lease to run out.
    events = await app.send("next", conversation_id="c2")
    assert stored_types(events) == ["message", "answer", "done"]
    log = await app.store.events("c2")
    assert [(e.type, e.turn_id == dead) for e in log] == [
        ("message", True),
        ("error", True),
        ("done", True),
        ("message", False),
        ("answer", False),
        ("done", False),
    ]
    assert isinstance(log[1], ErrorEvent) and log[1].code == "runner_lost"


async def test_recover_resumes_stale_turns_and_never_repeats_a_stored_tool_call() -> None:
    gen = ScriptedGenerator([rule("interrupted", "answer", text="tried once")])
    tools = Calls()
    app = LocalApp([agent("solo", tools=["add"])], generator=gen, tools=tools, lease_s=2)
    call = ToolCallEvent(agent="solo", call_id="call_1", name="add", arguments={"a": 1, "b": 2})
    await dead_turn(app, "c3", "k1", call)
    assert await app.conversations.recover() == 0  # the lease is live: nothing to do
    await asyncio.sleep(0.25)
    assert await app.conversations.recover() == 1
    assert await app.conversations.recover() == 0  # ended: nothing stale remains
    log = await app.store.events("c3")
    assert [e.type for e in log] == ["message", "tool_call", "tool_result", "answer", "done"]
    result = log[2]
    assert isinstance(result, ToolResultEvent) and result.is_error
    assert result.call_id == "call_1" and result.content.startswith("interrupted")
    assert tools.ran == []  # the interrupted call may have run: it is not run again
    assert isinstance(log[-1], DoneEvent) and log[-1].status == "ok"


async def test_a_stale_turn_that_had_answered_is_only_closed() -> None:
    gen = ScriptedGenerator([])
    app = LocalApp([agent("solo")], generator=gen)
    await dead_turn(app, "c4", "k1", AnswerEvent(agent="solo", text="done already"))
    await asyncio.sleep(0.25)
    assert await app.conversations.recover() == 1
    log = await app.store.events("c4")
    assert [e.type for e in log] == ["message", "answer", "done"]
    assert isinstance(log[-1], DoneEvent) and log[-1].status == "ok"
    assert gen.requests == []  # the model is not asked again


async def test_a_running_turn_renews_its_lease() -> None:
    slow = {"match": ".", "json_reply": action("answer", text="a b c d e f"), "token_delay_s": 0.1}
    gen = ScriptedGenerator([slow])
    one = LocalApp([agent("solo")], generator=gen, lease_s=0.3)
    two = LocalApp([agent("solo")], generator=gen, store=one.store, lease_s=0.3)
    running = asyncio.create_task(one.send("first", conversation_id="c5"))
    await asyncio.sleep(0.6)  # twice the lease: still held, because it was renewed
    with pytest.raises(ConversationBusyError):
        await two.send("meanwhile", conversation_id="c5", multitask="reject")
    events = await running
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "ok"
    assert await one.store.stale_turns(time.time() + 10) == []


class StallingStore(MemoryStore):
    """A store whose next lease renewal stalls for ``stall_s`` before it writes (a
    replica's event loop or connection pool held up under load)."""

    def __init__(self) -> None:
        super().__init__()
        self.stall_s = 0.0

    async def lease_turn(self, *args: Any, **kwargs: Any) -> bool:
        stall, self.stall_s = self.stall_s, 0.0
        await asyncio.sleep(stall)
        return await super().lease_turn(*args, **kwargs)


async def test_a_runner_that_stalled_past_its_lease_follows_the_replica_that_took_over() -> None:
    """Its lease lapses while a renewal hangs and another replica's recovery takes the
    turn over: the first caller's stream goes on from the store to the turn's ``done``
    (no ``lease_lost``), and every event reaches it once, in order."""
    text = " ".join(f"word{i}" for i in range(20))  # about 2 s of tokens
    slow = {"match": ".", "json_reply": action("answer", text=text), "token_delay_s": 0.1}
    gen = ScriptedGenerator([slow])
    store = StallingStore()
    one = LocalApp([agent("solo")], generator=gen, store=store, lease_s=0.3)
    two = LocalApp([agent("solo")], generator=gen, store=store, lease_s=0.3)
    running = asyncio.create_task(one.send("hello", conversation_id="c14"))
    await asyncio.sleep(0.15)
    store.stall_s = 1.0  # the next renewal (one's) hangs past the lease
    await asyncio.sleep(0.6)
    assert await two.conversations.recover() == 1  # took it over and ran it to done
    events = await running
    assert stored_types(events) == ["message", "answer", "done"]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "ok"
    seqs = [e.seq for e in events if e.seq]
    assert seqs == sorted(set(seqs))
    log = await store.events("c14")
    assert [e.type for e in log] == ["message", "answer", "done"]


class Dying:
    """Peers that lose an agent's replica after it streamed ``after`` stored events."""

    def __init__(self, app: LocalApp, agent: str, after: int, times: int = 1) -> None:
        self._peers = app.peers
        self._agent, self._after, self._times = agent, after, times
        self.runs: list[TurnRequest] = []
        app.conversations._peers = self  # type: ignore[assignment]
        for service in app.peers.services.values():
            service.loop._peers = self

    async def run(self, agent: str, request: TurnRequest) -> AsyncIterator[Event]:
        self.runs.append(request)
        dies = agent == self._agent and self._times > 0
        seen = 0
        async for event in self._peers.run(agent, request):
            yield event
            seen += event.seq is not None
            if dies and seen >= self._after:
                self._times -= 1
                raise PeerLostError(f"agent {agent!r} died during the turn")

    async def ask(self, agent: str, request: Any) -> Any:
        return await self._peers.ask(agent, request)


async def test_a_turn_whose_agent_replica_died_mid_tool_call_goes_on() -> None:
    gen = ScriptedGenerator(
        [
            rule("^sum", "tool", tool="add", arguments={"a": 2, "b": 3}),
            rule(".", "answer", text="5"),
        ]
    )
    tools = Calls()
    app = LocalApp(
        [agent("solo", tools=["add"])], generator=gen, tools=tools, recovery_delays_s=FAST
    )
    dying = Dying(app, "solo", after=1)  # dies once the tool call is stored, before it runs
    events = await app.send("sum please", conversation_id="c6")
    log = await app.store.events("c6")
    assert [e.type for e in log] == ["message", "tool_call", "tool_result", "answer", "done"]
    assert isinstance(log[2], ToolResultEvent) and log[2].content.startswith("interrupted")
    assert isinstance(log[-1], DoneEvent) and log[-1].status == "ok"
    assert [e.seq for e in events if e.seq] == [1, 2, 3, 4, 5]  # each stored event once
    assert tools.ran == [] and dying.runs[-1].retry


async def test_a_hand_off_whose_target_died_resumes_on_the_target() -> None:
    gen = ScriptedGenerator(
        [
            # billing only answers: it sees the user's message last (plain text).
            {**rule("refund", "answer", text="refunded"), "system": "^You are billing"},
            rule("refund", "handoff", agent="billing"),
        ]
    )
    app = LocalApp(
        [agent("triage", handoffs=["billing"], can_answer=False), agent("billing")],
        generator=gen,
        recovery_delays_s=FAST,
    )
    dying = Dying(app, "billing", after=0)  # billing dies before it stores anything
    events = await app.send("refund please", conversation_id="c7")
    assert stored_types(events) == ["message", "handoff", "answer", "done"]
    handoff, answer, done = [e for e in events if e.type in ("handoff", "answer", "done")]
    assert isinstance(handoff, HandoffEvent) and isinstance(answer, AnswerEvent)
    assert answer.agent == "billing" and isinstance(done, DoneEvent) and done.status == "ok"
    assert done.active_agent == "billing"
    assert [r.retry for r in dying.runs] == [False, False, True]  # triage, billing, billing


async def test_a_replica_that_keeps_dying_ends_the_turn_with_a_specific_code() -> None:
    gen = ScriptedGenerator([rule(".", "answer", text="never")])
    app = LocalApp([agent("solo")], generator=gen, recovery_delays_s=FAST)
    Dying(app, "solo", after=0, times=10)
    events = await app.send("hello", conversation_id="c8")
    error, done = events[-2:]
    assert isinstance(error, ErrorEvent) and error.code == "agent_lost"
    assert isinstance(done, DoneEvent) and done.status == "error"
    assert [e.type for e in await app.store.events("c8")] == ["message", "error", "done"]


class DeadToolsReplica:
    """A tool deployment's handle whose replica dies under the first ``times``
    definition calls (as when its node goes), then answers from ``tools``."""

    def __init__(self, tools: FunctionTools, times: int) -> None:
        self.tools, self.times, self.calls = tools, times, 0
        self.definitions = SimpleNamespace(remote=self._definitions)
        self.execute = SimpleNamespace(remote=tools.execute)

    async def _definitions(self, names: list[str]) -> list[Any]:
        self.calls += 1
        if self.calls <= self.times:
            raise ActorDiedError()
        return await self.tools.definitions(names)


@pytest.mark.parametrize(("times", "status"), [(1, "ok"), (10, "error")])
async def test_an_agent_whose_tool_replica_died_resumes_the_turn(times: int, status: str) -> None:
    """A new agent replica asks the tool deployment for its definitions while the
    replica it reaches is dead: the turn is resumed (not failed as ``unknown_tool``),
    and a replica that keeps dying ends it with ``tools_lost``."""
    gen = ScriptedGenerator([rule(".", "answer", text="done")])
    handle = DeadToolsReplica(Calls(), times=times)
    app = LocalApp(
        [agent("solo", tools=["add"])],
        generator=gen,
        tools=HandleTools(handle),  # type: ignore[arg-type]
        recovery_delays_s=FAST,
    )
    events = await app.send("add 1 and 2", conversation_id="c9")
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == status
    if status == "ok":
        assert stored_types(events) == ["message", "answer", "done"]
        assert handle.calls == 2
    else:
        error = events[-2]
        assert isinstance(error, ErrorEvent) and error.code == "tools_lost"
        assert handle.calls == len(FAST) + 1


class LosesReplicas(Generator):
    """A pool whose replica dies under the first ``times`` requests, mid-stream."""

    def __init__(self, inner: Generator, times: int) -> None:
        self._inner, self.times, self.requests = inner, times, 0

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        self.requests += 1
        async for chunk in self._inner.generate(request):
            if self.times > 0:
                self.times -= 1
                raise EngineLostError("the pool's replica died: ActorDiedError")
            yield chunk


async def test_a_step_whose_pool_replica_died_runs_again() -> None:
    pool = LosesReplicas(ScriptedGenerator([rule(".", "answer", text="fine")]), times=1)
    app = LocalApp([agent("solo")], generator=pool)
    events = await app.send("hello", conversation_id="c9")
    assert stored_types(events) == ["message", "answer", "done"] and pool.requests == 2


async def test_a_pool_that_keeps_dying_ends_the_turn_with_engine_failed() -> None:
    pool = LosesReplicas(ScriptedGenerator([rule(".", "answer", text="fine")]), times=99)
    app = LocalApp([agent("solo")], generator=pool)
    events = await app.send("hello", conversation_id="c10", timeout_s=30)
    error = next(e for e in events if isinstance(e, ErrorEvent))
    assert error.code == "engine_failed" and "gave up after 5 tries" in error.message


async def test_a_bug_is_stored_as_internal_and_its_cause_logged_not_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Generator):
        async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
            raise KeyError("/srv/secret/path boom")
            yield  # pragma: no cover

    app = LocalApp([agent("solo")], generator=Broken())
    with pytest.raises(KeyError):
        await app.send("hello", conversation_id="c11")
    log = await app.store.events("c11")
    error = log[-2]
    assert isinstance(error, ErrorEvent) and error.code == "internal"
    # The tenant reads the code; what was raised (it may name files) is in the log.
    assert "/srv/secret" not in error.message and "went away" not in error.message
    assert "turn id" in error.message
    assert any("/srv/secret/path boom" in r.getMessage() for r in caplog.records)
    assert isinstance(log[-1], DoneEvent)


async def test_send_request_after_seq_is_not_negative() -> None:
    with pytest.raises(ValueError):
        SendRequest(message="x", after_seq=-1)


class Watched(Generator):
    """A slow generator that says when its generation was stopped."""

    def __init__(self) -> None:
        self.chunks = 0
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self._inner = ScriptedGenerator(
            [{"match": ".", "json_reply": action("answer", text="w " * 200), "token_delay_s": 0.02}]
        )

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        try:
            async for chunk in self._inner.generate(request):
                self.chunks += 1
                if self.chunks == 3:
                    self.started.set()
                yield chunk
        finally:
            self.stopped.set()


@pytest.mark.parametrize("where", ["here", "elsewhere"])
async def test_deleting_a_conversation_stops_its_running_turn(where: str) -> None:
    from agents.errors import LeaseLostError

    gen = Watched()
    one = LocalApp([agent("solo")], generator=gen, lease_s=0.3)
    other = LocalApp([agent("solo")], generator=gen, store=one.store, lease_s=0.3)
    running = asyncio.create_task(one.send("talk", conversation_id="c12"))
    await gen.started.wait()
    deleter = one if where == "here" else other  # another replica: found at renewal
    assert await deleter.conversations.delete("c12")
    async with asyncio.timeout(1.0):  # the generation stops, not only the stream
        await gen.stopped.wait()
    with pytest.raises(LeaseLostError, match="deleted"):
        await running
    assert gen.chunks < 50 and await one.store.conversation("c12") is None


async def test_an_idempotency_key_reused_for_another_message_is_refused() -> None:
    from agents.errors import IdempotencyMismatchError

    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp([agent("solo")], generator=gen)
    await app.send("pay invoice 1", conversation_id="c13", idempotency_key="k1")
    with pytest.raises(IdempotencyMismatchError, match="different request"):
        await app.send("pay invoice 2", conversation_id="c13", idempotency_key="k1")
    replay = await app.send("pay invoice 1", conversation_id="c13", idempotency_key="k1")
    assert stored_types(replay) == ["message", "answer", "done"] and len(gen.requests) == 1
    messages = [e for e in await app.store.events("c13") if isinstance(e, MessageEvent)]
    assert [m.content for m in messages] == ["pay invoice 1"]


@pytest.mark.parametrize(
    "changed",
    [{"message": "pay invoice 2"}, {"variables": {"user": "Bob"}}, {"agent": "other"}],
    ids=["message", "variables", "agent"],
)
async def test_an_idempotency_key_reused_for_another_request_is_a_mismatch(
    changed: dict[str, Any],
) -> None:
    from agents.errors import IdempotencyMismatchError

    gen = ScriptedGenerator([rule(".", "answer", text="ok")])
    app = LocalApp([agent("solo"), agent("other")], generator=gen)
    first: dict[str, Any] = {"message": "pay invoice 1", "variables": {"user": "Ann"}}
    # No conversation id: the key names the new conversation, so the agent counts too.
    await app.send(**first, idempotency_key="k1")
    with pytest.raises(IdempotencyMismatchError, match="different request") as caught:
        await app.send(**(first | changed), idempotency_key="k1")
    assert caught.value.code == "idempotency_mismatch"
    replay = await app.send(**first, idempotency_key="k1", timeout_s=9, tokens=False)
    assert stored_types(replay) == ["message", "answer", "done"] and len(gen.requests) == 1


async def test_a_resumed_turn_keeps_the_callers_variables() -> None:
    # The turn's variables are stored with it: the replica that resumes it after its
    # runner died renders the same system prompt the caller asked for.
    gen = ScriptedGenerator([rule("hello", "answer", text="hi")])
    solo = agent(
        "solo",
        instructions="You help ${user}.",
        variables={"user": "a customer"},
        caller_variables=["user"],
    )
    app = LocalApp([solo], generator=gen, lease_s=2)
    turn, _ = await app.store.begin_turn(
        "c9",
        MessageEvent(content="hello", agent="solo"),
        idempotency_key="k1",
        agent="solo",
        lease_until=time.time() + 0.2,
        runner="dead",
        variables={"user": "Ann"},
    )
    assert dict(turn.variables) == {"user": "Ann"}
    await asyncio.sleep(0.25)
    assert await app.conversations.recover() == 1
    [request] = gen.requests
    assert request.messages[0].content == "You help Ann."
