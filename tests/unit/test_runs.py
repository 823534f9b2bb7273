"""Runs users control, in-process (no Ray): the double-texting policies under a real
race (two sends 50 ms apart, on one replica and on two sharing a store), cancel, and
rolled-back turns leaving the agents' history. The stored log is asserted exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents.errors import ConversationBusyError, StoreError
from agents.events import DoneEvent, Event, TokenEvent
from agents.pool.generator import Generator
from agents.pool.types import Chunk, GenerateRequest
from agents.protocol import Multitask
from agents.spec import AgentSpec
from agents.store.memory import MemoryStore
from agents.testing import LocalApp, ScriptedGenerator, action

LONG = " ".join(f"word{i}" for i in range(300))
"""The slow answer: 300 different words, 10 ms each (repetition would end it early)."""
RACE_S = 0.05
"""The second message comes this long after the first: while the first one runs."""


def agent(name: str, **fields: Any) -> AgentSpec:
    return AgentSpec(name=name, model="m", **{"instructions": f"You are {name}.", **fields})


class Slow(Generator):
    """Its first answer is slow (it runs while the second message comes), the others
    quick; with ``handoff``, the triage agent hands every message to the expert first.
    Records every request, and whether the slow generation was stopped."""

    def __init__(self, *, handoff: bool = False) -> None:
        self.requests: list[GenerateRequest] = []
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.slow_chunks = 0
        self._handoff = handoff
        self._slow_left = 1
        self._slow = ScriptedGenerator(
            [{"match": ".", "token_delay_s": 0.01, "json_reply": action("answer", text=LONG)}]
        )
        self._quick = ScriptedGenerator(
            [{"match": ".", "json_reply": action("answer", text="quick")}]
        )
        self._route = ScriptedGenerator(
            [{"match": ".", "json_reply": action("handoff", agent="expert", message="over")}]
        )

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        if self._handoff and "You are triage" in str(request.messages[0].content):
            async for chunk in self._route.generate(request):
                yield chunk
            return
        if not self._slow_left:
            async for chunk in self._quick.generate(request):
                yield chunk
            return
        self._slow_left -= 1
        try:
            async for chunk in self._slow.generate(request):
                self.slow_chunks += 1
                if self.slow_chunks == 3:
                    self.started.set()
                yield chunk
        finally:
            self.stopped.set()


def stored(events: list[Event]) -> list[tuple[str, str]]:
    """(type, detail) of each stored event: the message's text, the done's status."""
    out = []
    for event in events:
        if isinstance(event, TokenEvent):
            continue
        detail = getattr(event, "content", None) or getattr(event, "status", None) or ""
        if event.type == "answer":
            detail = event.text[:5]  # type: ignore[union-attr]
        out.append((event.type, str(detail)))
    return out


async def race(
    first: LocalApp, second: LocalApp, policy: Multitask, gen: Slow
) -> tuple[list[Event] | BaseException, list[Event] | BaseException]:
    """'first' is sent to ``first``; 50 ms into its generation, 'second' to ``second``."""
    one = asyncio.create_task(first.send("first", conversation_id="c1"))
    await gen.started.wait()
    await asyncio.sleep(RACE_S)
    two = asyncio.create_task(second.send("second", conversation_id="c1", multitask=policy))
    results = await asyncio.gather(one, two, return_exceptions=True)
    return results[0], results[1]


def apps(gen: Slow, *, replicas: int, **fields: Any) -> list[LocalApp]:
    specs = fields.pop("specs", [agent("solo")])
    one = LocalApp(specs, generator=gen, lease_s=0.3, **fields)
    return [one] + [
        LocalApp(specs, generator=gen, store=one.store, lease_s=0.3, **fields)
        for _ in range(replicas - 1)
    ]


@pytest.mark.parametrize("replicas", [1, 2])
async def test_reject_refuses_the_second_message_and_stores_nothing_of_it(replicas: int) -> None:
    gen = Slow()
    one, *rest = apps(gen, replicas=replicas)
    first, second = await race(one, (rest or [one])[0], "reject", gen)
    assert isinstance(second, ConversationBusyError), second
    assert "busy" in second.message
    assert isinstance(first, list) and gen.slow_chunks > 250  # the first ran to its end
    assert stored(await one.store.events("c1")) == [
        ("message", "first"),
        ("answer", "word0"),
        ("done", "ok"),
    ]


@pytest.mark.parametrize("replicas", [1, 2])
async def test_enqueue_runs_the_second_message_after_the_first_in_order(replicas: int) -> None:
    gen = Slow()
    one, *rest = apps(gen, replicas=replicas)
    first, second = await race(one, (rest or [one])[0], "enqueue", gen)
    assert isinstance(first, list) and isinstance(second, list), (first, second)
    assert stored(await one.store.events("c1")) == [
        ("message", "first"),
        ("answer", "word0"),
        ("done", "ok"),
        ("message", "second"),
        ("answer", "quick"),
        ("done", "ok"),
    ]
    # The second turn's prompt holds the whole first turn.
    prompt = [m.content for m in gen.requests[-1].messages]
    assert "first" in prompt and "second" in prompt


async def test_enqueue_is_the_default_and_keeps_arrival_order() -> None:
    gen = Slow()
    [one] = apps(gen, replicas=1)
    sends = [asyncio.create_task(one.send("first", conversation_id="c1"))]
    await gen.started.wait()
    for n in range(3):
        sends.append(asyncio.create_task(one.send(f"next {n}", conversation_id="c1")))
        await asyncio.sleep(RACE_S)
    await asyncio.gather(*sends)
    messages = [d for t, d in stored(await one.store.events("c1")) if t == "message"]
    assert messages == ["first", "next 0", "next 1", "next 2"]


async def test_enqueue_keeps_arrival_order_across_replicas_sharing_a_store() -> None:
    """Ten sends 50 ms apart, alternating two replicas, while the first still runs:
    the turns open in the order the messages came, though each replica polls the store
    on its own (without the queue, whichever polled first after a turn won)."""
    gen = Slow()
    replicas = apps(gen, replicas=2)
    sends = [asyncio.create_task(replicas[0].send("first", conversation_id="c1"))]
    await gen.started.wait()
    for n in range(9):
        await asyncio.sleep(RACE_S)
        sends.append(asyncio.create_task(replicas[n % 2].send(f"next {n}", conversation_id="c1")))
    results = await asyncio.gather(*sends)
    assert all(isinstance(r[-1], DoneEvent) and r[-1].status == "ok" for r in results)
    messages = [d for t, d in stored(await replicas[0].store.events("c1")) if t == "message"]
    assert messages == ["first"] + [f"next {n}" for n in range(9)]


async def leave_the_queue(
    store: MemoryStore, *, lease_s: float
) -> tuple[asyncio.Task[list[Event]], asyncio.Task[list[Event]]]:
    """A slow "first" runs on one replica; "leaving" (sent to another) and then
    "staying" wait behind it, and the caller of "leaving" goes away. Returns the tasks
    of "leaving" and "staying" once "first" has ended."""
    gen = Slow()
    one = LocalApp([agent("solo")], generator=gen, store=store, lease_s=lease_s)
    two = LocalApp([agent("solo")], generator=gen, store=store, lease_s=lease_s)
    first = asyncio.create_task(one.send("first", conversation_id="c1"))
    await gen.started.wait()
    leaving = asyncio.create_task(two.send("leaving", conversation_id="c1"))
    await asyncio.sleep(RACE_S)
    staying = asyncio.create_task(one.send("staying", conversation_id="c1"))
    await asyncio.sleep(RACE_S)
    leaving.cancel()
    await first
    return leaving, staying


async def test_a_queued_send_that_gives_up_leaves_the_queue() -> None:
    """A caller that leaves while its message waits takes its place away: the message
    behind it does not wait for a place nobody holds."""
    store = MemoryStore()
    # Places lapse with the lease: a long one shows the place was left, not lapsed.
    _, staying = await leave_the_queue(store, lease_s=60)
    await asyncio.wait_for(staying, timeout=10)
    messages = [d for t, d in stored(await store.events("c1")) if t == "message"]
    assert messages == ["first", "staying"]


class CannotLeave(MemoryStore):
    """A store that fails when a send steps out of the queue."""

    async def leave_place(self, conversation_id: str, idempotency_key: str) -> None:
        raise StoreError("the store is down")


async def test_a_send_that_gives_up_while_the_store_fails_ends_as_it_gave_up() -> None:
    """Stepping out of the queue fails: the caller still sees why its send ended (here
    it left), not the store's error, and the place it held lapses with its lease."""
    store = CannotLeave()
    leaving, staying = await leave_the_queue(store, lease_s=1)
    with pytest.raises(asyncio.CancelledError):
        await leaving
    await asyncio.wait_for(staying, timeout=20)
    messages = [d for t, d in stored(await store.events("c1")) if t == "message"]
    assert messages == ["first", "staying"]


@pytest.mark.parametrize("replicas", [1, 2])
@pytest.mark.parametrize("policy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_stop_the_running_generation(
    replicas: int, policy: Multitask
) -> None:
    gen = Slow()
    one, *rest = apps(gen, replicas=replicas)
    first, second = await race(one, (rest or [one])[0], policy, gen)
    # The engine's generation of the first turn stopped (not only its stream).
    assert gen.stopped.is_set() and gen.slow_chunks < 150, gen.slow_chunks
    assert isinstance(first, list) and isinstance(second, list), (first, second)
    first_done = first[-1]
    assert isinstance(first_done, DoneEvent) and first_done.status == "interrupted"
    # The first caller got each of its turn's stored events once: its message, its done.
    assert [e.type for e in first if not isinstance(e, TokenEvent)] == ["message", "done"]
    assert first_done.rolled_back is (policy == "rollback")
    log = await one.store.events("c1")
    assert stored(log) == [
        ("message", "first"),
        ("done", "interrupted"),
        ("message", "second"),
        ("answer", "quick"),
        ("done", "ok"),
    ]
    first_turn = await one.store.turn_by_id("c1", log[0].turn_id or "")
    assert first_turn is not None and first_turn.status == "interrupted"
    # Rollback: the stopped turn's message is not in the second turn's prompt; interrupt
    # keeps what the stopped turn stored.
    prompt = [m.content for m in gen.requests[-1].messages]
    assert ("first" in prompt) is (policy == "interrupt")
    assert "second" in prompt


async def test_rollback_returns_the_conversation_to_the_agent_it_began_with() -> None:
    gen = Slow(handoff=True)
    specs = [agent("triage", handoffs=["expert"]), agent("expert")]
    [one] = apps(gen, replicas=1, specs=specs)
    _, second = await race(one, one, "rollback", gen)
    assert isinstance(second, list)
    log = await one.store.events("c1")
    assert [t for t, _ in stored(log)] == [
        "message",
        "handoff",
        "done",
        "message",
        "handoff",
        "answer",
        "done",
    ]
    # The second message started at triage again (and was handed off again), and its
    # prompts never saw the rolled-back turn's message.
    assert log[3].agent == "triage"
    assert all("first" not in [m.content for m in r.messages] for r in gen.requests[-2:])


async def test_a_retry_of_the_running_turn_joins_it_under_every_policy() -> None:
    gen = Slow()
    [one] = apps(gen, replicas=1)
    first = asyncio.create_task(one.send("first", conversation_id="c1", idempotency_key="k"))
    await gen.started.wait()
    joined = await one.send(
        "first", conversation_id="c1", idempotency_key="k", multitask="interrupt"
    )
    await first
    assert isinstance(joined[-1], DoneEvent) and joined[-1].status == "ok"
    assert [t for t, _ in stored(await one.store.events("c1"))] == ["message", "answer", "done"]


async def test_cancel_stops_a_turn_and_a_finished_turn_is_left_alone() -> None:
    gen = Slow()
    [one] = apps(gen, replicas=1)
    running = asyncio.create_task(one.send("first", conversation_id="c1"))
    await gen.started.wait()
    [message] = await one.store.events("c1", limit=1)
    assert await one.conversations.interrupt("c1", message.turn_id or "", policy="cancel")
    events = await running
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "interrupted"
    assert gen.stopped.is_set()
    assert not await one.conversations.interrupt("c1", message.turn_id or "", policy="cancel")
    # The conversation takes its next message at once.
    after = await one.send("again", conversation_id="c1")
    assert isinstance(after[-1], DoneEvent) and after[-1].status == "ok"


async def test_follow_streams_a_turn_running_elsewhere_to_its_done() -> None:
    gen = Slow()
    one, two = apps(gen, replicas=2)
    running = asyncio.create_task(one.send("first", conversation_id="c1"))
    await gen.started.wait()
    [message] = await one.store.events("c1", limit=1)
    followed = [e async for e in two.conversations.follow("c1", message.turn_id or "")]
    assert [e.type for e in followed] == ["message", "answer", "done"]
    assert followed[-1].last_seq == 3  # type: ignore[union-attr]
    after_first = [
        e async for e in two.conversations.follow("c1", message.turn_id or "", after_seq=1)
    ]
    assert [e.type for e in after_first] == ["answer", "done"]
    await running


async def test_a_message_queued_on_another_replica_goes_to_the_agent_handed_to() -> None:
    gen = Slow(handoff=True)
    specs = [agent("triage", handoffs=["expert"]), agent("expert")]
    one, two = apps(gen, replicas=2, specs=specs)
    first, second = await race(one, two, "enqueue", gen)
    assert isinstance(first, list) and isinstance(second, list), (first, second)
    log = await one.store.events("c1")
    assert [(e.type, e.agent) for e in log] == [
        ("message", "triage"),
        ("handoff", "triage"),
        ("answer", "expert"),
        ("done", "expert"),
        ("message", "expert"),  # waited while triage handed the conversation off
        ("answer", "expert"),
        ("done", "expert"),
    ]
