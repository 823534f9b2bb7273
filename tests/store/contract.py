"""The contract every ConversationStore keeps, written once for every backend.

A backend's test class inherits ``StoreContract`` (or ``DurableStoreContract`` when
several instances share one database) and provides the fixture ``new_store``: an
async factory of opened stores on one database, usually built with ``open_stores``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from agents.errors import ConversationBusyError, ConversationNotFoundError, LeaseLostError
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
    TurnUsage,
)
from agents.store import ConversationStore
from agents.store.base import TurnRecord, Usage, UsageTotals

StoreFactory = Callable[[], Awaitable[ConversationStore]]


@asynccontextmanager
async def open_stores(build: Callable[[], ConversationStore]) -> AsyncIterator[StoreFactory]:
    """A ``new_store`` factory: opens what ``build`` returns, closes them all at exit."""
    stores: list[ConversationStore] = []

    async def new_store() -> ConversationStore:
        store = build()
        await store.open()
        stores.append(store)
        return store

    try:
        yield new_store
    finally:
        for store in stores:
            await store.close()


def new_id() -> str:
    return f"conv-{uuid.uuid4().hex}"


def user(content: str) -> MessageEvent:
    return MessageEvent(content=content)


async def send(store: ConversationStore, conversation_id: str, content: str) -> int:
    """Begin a turn with ``content`` as its message (and key); returns its seq."""
    turn, new = await store.begin_turn(
        conversation_id, user(content), idempotency_key=content, agent="triage"
    )
    assert new
    return turn.user_seq


async def leased(
    store: ConversationStore, conversation_id: str, runner: str, *, for_s: float
) -> TurnRecord:
    """A turn begun by ``runner`` under a lease of ``for_s`` seconds (< 0: ran out)."""
    turn, new = await store.begin_turn(
        conversation_id,
        user("one"),
        idempotency_key="k1",
        agent="a",
        lease_until=time.time() + for_s,
        runner=runner,
    )
    assert new
    return turn


async def assert_one_total_order(
    store: ConversationStore, conversation_id: str, contents: list[str]
) -> None:
    """The conversation holds exactly one message per content, at seqs 1..n."""
    events = await store.events(conversation_id)
    assert [e.seq for e in events] == list(range(1, len(contents) + 1))
    stored = [e.content for e in events if isinstance(e, MessageEvent)]
    assert sorted(stored) == sorted(contents)
    info = await store.conversation(conversation_id)
    assert info is not None and info.last_seq == len(contents)


async def assert_appends_atomic(stores: list[ConversationStore]) -> None:
    """Batches appended at once, spread over ``stores``, each land contiguously."""
    cid = new_id()
    await stores[0].begin_turn(cid, user("hi"), idempotency_key="k", agent="a")
    batches = [[AnswerEvent(text=f"{i}.{j}") for j in range(3)] for i in range(20)]
    results = await asyncio.gather(
        *(stores[i % len(stores)].append(cid, batch) for i, batch in enumerate(batches))
    )
    for stored in results:
        first = stored[0].seq or 0
        assert [e.seq for e in stored] == [first, first + 1, first + 2]
    events = await stores[0].events(cid)
    assert [e.seq for e in events] == list(range(1, 62))
    # Each batch sits contiguously in the log, in its own order.
    texts = [e.text for e in events if isinstance(e, AnswerEvent)]
    chunks = [texts[k : k + 3] for k in range(0, 60, 3)]
    assert sorted(chunks) == sorted([e.text for e in batch] for batch in batches)


class StoreContract:
    """Behaviour every backend shares; one store instance per test."""

    @pytest.fixture
    async def store(self, new_store: StoreFactory) -> ConversationStore:
        return await new_store()

    async def test_round_trip(self, store: ConversationStore) -> None:
        cid = new_id()
        turn, new = await store.begin_turn(cid, user("hi"), idempotency_key="k1", agent="triage")
        assert new
        assert (turn.conversation_id, turn.idempotency_key) == (cid, "k1")
        assert (turn.user_seq, turn.status) == (1, "running")
        tid = turn.turn_id
        batch: list[Event] = [
            ToolCallEvent(turn_id=tid, agent="triage", call_id="c1", name="f", arguments={"x": 1}),
            ToolResultEvent(turn_id=tid, agent="triage", call_id="c1", name="f", content="2"),
            AnswerEvent(turn_id=tid, agent="triage", text="two", output={"n": 2}),
            DoneEvent(turn_id=tid, usage=TurnUsage(prompt_tokens=7, steps=2), last_seq=5),
        ]
        stored = await store.append(cid, batch)
        assert stored == [e.model_copy(update={"seq": n}) for n, e in enumerate(batch, 2)]

        message = MessageEvent(content="hi", seq=1, turn_id=tid)
        assert await store.events(cid) == [message, *stored]
        assert await store.events(cid, after_seq=3) == stored[2:]
        assert await store.turn(cid, "k1") == turn.model_copy(update={"status": "ok"})
        info = await store.conversation(cid)
        assert info is not None
        assert (info.conversation_id, info.active_agent, info.last_seq) == (cid, "triage", 5)
        assert info.created_at.tzinfo is not None and info.created_at <= info.updated_at

    async def test_events_of_one_turn(self, store: ConversationStore) -> None:
        cid = new_id()
        first, _ = await store.begin_turn(cid, user("a"), idempotency_key="a", agent="triage")
        await store.append(cid, [DoneEvent(turn_id=first.turn_id)])
        second, _ = await store.begin_turn(cid, user("b"), idempotency_key="b", agent="triage")
        answer = AnswerEvent(turn_id=second.turn_id, text="B")
        await store.append(cid, [answer])
        events = await store.events(cid, turn_id=second.turn_id)
        assert [(e.type, e.seq) for e in events] == [("message", 3), ("answer", 4)]
        assert await store.events(cid, after_seq=3, turn_id=second.turn_id) == events[1:]

    async def test_handoff_changes_active_agent(self, store: ConversationStore) -> None:
        cid = new_id()
        turn, _ = await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="triage")
        handoffs = [
            HandoffEvent(turn_id=turn.turn_id, agent="triage", to_agent="billing"),
            HandoffEvent(turn_id=turn.turn_id, agent="billing", to_agent="refunds"),
        ]
        await store.append(cid, handoffs)
        info = await store.conversation(cid)
        assert info is not None and info.active_agent == "refunds"
        # A later turn keeps the active agent: `agent` only names a new conversation's.
        await store.begin_turn(cid, user("again"), idempotency_key="k2", agent="triage")
        info = await store.conversation(cid)
        assert info is not None and info.active_agent == "refunds"

    @pytest.mark.parametrize("status", ["ok", "error"])
    async def test_done_closes_its_turn(self, store: ConversationStore, status: str) -> None:
        cid = new_id()
        turn, _ = await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="triage")
        other, _ = await store.begin_turn(cid, user("yo"), idempotency_key="o", agent="triage")
        done = DoneEvent.model_validate({"turn_id": turn.turn_id, "status": status})
        await store.append(cid, [done])
        closed = await store.turn(cid, "k")
        assert closed is not None and closed.status == status
        still = await store.turn(cid, "o")
        assert still is not None and still.status == "running" and still == other

    async def test_fail_turn_ends_only_a_running_turn(self, store: ConversationStore) -> None:
        cid = new_id()
        done, _ = await store.begin_turn(cid, user("a"), idempotency_key="a", agent="triage")
        await store.append(cid, [DoneEvent(turn_id=done.turn_id)])
        dead, _ = await store.begin_turn(cid, user("b"), idempotency_key="b", agent="triage")
        await store.fail_turn(cid, done.turn_id)
        await store.fail_turn(cid, dead.turn_id)
        assert (await store.turn(cid, "a")) == done.model_copy(update={"status": "ok"})
        assert (await store.turn(cid, "b")) == dead.model_copy(update={"status": "error"})

    async def test_begin_turn_is_idempotent(self, store: ConversationStore) -> None:
        cid = new_id()
        first, new = await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="a")
        assert new
        again, new = await store.begin_turn(cid, user("changed"), idempotency_key="k", agent="b")
        assert not new and again == first
        events = await store.events(cid)
        assert [(e.type, getattr(e, "content", None)) for e in events] == [("message", "hi")]
        info = await store.conversation(cid)
        assert info is not None and (info.last_seq, info.active_agent) == (1, "a")

    async def test_a_turn_keeps_its_request_fingerprint_and_variables(
        self, store: ConversationStore
    ) -> None:
        cid = new_id()
        asked = {"user": "Ann", "plan": "Pro"}
        turn, _ = await store.begin_turn(
            cid,
            user("hi"),
            idempotency_key="k",
            agent="a",
            lease_until=time.time() - 1,
            fingerprint="f1",
            variables=asked,
        )
        assert turn.fingerprint == "f1" and dict(turn.variables) == asked
        again, new = await store.begin_turn(
            cid, user("hi"), idempotency_key="k", agent="a", fingerprint="f2", variables={}
        )
        assert not new and again == turn == await store.turn(cid, "k")
        assert await store.turn_by_id(cid, turn.turn_id) == turn
        assert await store.turn_by_id(cid, "no-such-turn") is None
        [stale] = [t for t in await store.stale_turns(time.time(), limit=1000) if t == turn]
        assert dict(stale.variables) == asked  # what a resuming replica reads
        plain, _ = await store.begin_turn(cid, user("x"), idempotency_key="k2", agent="a")
        assert (plain.fingerprint, plain.variables) == (None, ())

    async def test_concurrent_retries_store_one_turn(self, store: ConversationStore) -> None:
        cid = new_id()
        # The conversation exists already, so creating it does not serialize the retries.
        await store.begin_turn(cid, user("first"), idempotency_key="first", agent="a")
        results = await asyncio.gather(
            *(store.begin_turn(cid, user("hi"), idempotency_key="k", agent="a") for _ in range(10))
        )
        assert sorted(new for _, new in results) == [False] * 9 + [True]
        assert len({turn for turn, _ in results}) == 1
        assert len(await store.events(cid)) == 2

    async def test_a_leased_turn_holds_the_conversation(self, store: ConversationStore) -> None:
        cid = new_id()
        later = time.time() + 60
        first, _ = await store.begin_turn(
            cid, user("one"), idempotency_key="k1", agent="a", lease_until=later
        )
        assert first.lease_until == later and first.leased(time.time())
        # Exclusive sends are refused while it runs, storing nothing; plain ones are not.
        with pytest.raises(ConversationBusyError, match=first.turn_id):
            await store.begin_turn(
                cid, user("two"), idempotency_key="k2", agent="a", lease_until=later
            )
        assert [e.type for e in await store.events(cid)] == ["message"]
        # A retry of the running turn itself finds it (the caller decides to wait).
        again, new = await store.begin_turn(
            cid, user("one"), idempotency_key="k1", agent="a", lease_until=later
        )
        assert not new and again == first
        await store.append(cid, [DoneEvent(turn_id=first.turn_id)])
        second, new = await store.begin_turn(
            cid, user("two"), idempotency_key="k2", agent="a", lease_until=later
        )
        assert new and second.user_seq == 3

    async def test_an_expired_lease_is_closed_by_the_next_turn(
        self, store: ConversationStore
    ) -> None:
        cid = new_id()
        dead, _ = await store.begin_turn(
            cid, user("one"), idempotency_key="k1", agent="a", lease_until=time.time() - 1
        )
        turn, new = await store.begin_turn(
            cid, user("two"), idempotency_key="k2", agent="a", lease_until=time.time() + 60
        )
        assert new and turn.status == "running"
        closed = await store.turn(cid, "k1")
        assert closed is not None and closed.turn_id == dead.turn_id and closed.status == "error"
        # Closed in the log too, as every turn closes: runner_lost, then done.
        events = await store.events(cid)
        assert [(e.type, e.turn_id == dead.turn_id) for e in events] == [
            ("message", True),
            ("error", True),
            ("done", True),
            ("message", False),
        ]
        assert isinstance(events[1], ErrorEvent) and events[1].code == "runner_lost"
        assert turn.user_seq == 4

    async def test_queued_turns_open_in_the_order_their_places_were_taken(
        self, store: ConversationStore
    ) -> None:
        cid = new_id()
        later = time.time() + 60
        first, _ = await store.begin_turn(
            cid, user("one"), idempotency_key="k1", agent="a", lease_until=later
        )
        for key in ("k2", "k3"):
            await store.take_place(cid, key, until=later)
        await store.take_place(cid, "k2", until=later + 1)  # a renewal keeps its place
        await store.append(cid, [DoneEvent(turn_id=first.turn_id)])

        async def begin(key: str) -> TurnRecord:
            turn, _ = await store.begin_turn(
                cid, user(key), idempotency_key=key, agent="a", lease_until=later, queued=True
            )
            return turn

        # The conversation is free, yet k3 waits: k2 came first. Nothing is stored.
        with pytest.raises(ConversationBusyError, match="sent before this one"):
            await begin("k3")
        second = await begin("k2")  # leaves its place as its turn opens
        await store.append(cid, [DoneEvent(turn_id=second.turn_id)])
        await begin("k3")
        assert [e.content for e in await store.events(cid) if isinstance(e, MessageEvent)] == [
            "one",
            "k2",
            "k3",
        ]

    async def test_a_lapsed_or_left_place_holds_nobody_up(self, store: ConversationStore) -> None:
        cid = new_id()
        later = time.time() + 60
        await store.take_place(cid, "gone", until=time.time() - 1)  # its sender died
        await store.take_place(cid, "left", until=later)
        await store.take_place(cid, "mine", until=later)
        await store.leave_place(cid, "left")
        await store.leave_place(cid, "never-queued")  # no place is no error
        await store.renew_place(cid, "left", until=later)  # a left place stays left
        turn, new = await store.begin_turn(
            cid, user("hi"), idempotency_key="mine", agent="a", lease_until=later, queued=True
        )
        assert new and turn.status == "running"

    async def test_a_lease_is_renewed_by_its_runner_only(self, store: ConversationStore) -> None:
        cid = new_id()
        turn = await leased(store, cid, "r1", for_s=60)
        assert turn.runner == "r1"
        later = time.time() + 120
        assert await store.lease_turn(cid, turn.turn_id, runner="r1", lease_until=later)
        renewed = await store.turn(cid, "k1")
        assert renewed is not None and renewed.lease_until == later and renewed.runner == "r1"
        # Another runner cannot take a live lease.
        assert not await store.lease_turn(cid, turn.turn_id, runner="r2", lease_until=later)
        await store.append(cid, [DoneEvent(turn_id=turn.turn_id)])
        # Nor can anyone hold an ended turn.
        assert not await store.lease_turn(cid, turn.turn_id, runner="r1", lease_until=later)

    async def test_a_lapsed_lease_is_taken_over_once(self, store: ConversationStore) -> None:
        cid = new_id()
        turn = await leased(store, cid, "dead", for_s=-1)
        later = time.time() + 60
        takers = await asyncio.gather(
            *(
                store.lease_turn(cid, turn.turn_id, runner=f"r{i}", lease_until=later)
                for i in range(5)
            )
        )
        assert sorted(takers) == [False] * 4 + [True]
        held = await store.turn(cid, "k1")
        assert held is not None and held.runner == f"r{takers.index(True)}"
        assert held.lease_until == later

    async def test_a_fenced_append_needs_the_turns_lease(self, store: ConversationStore) -> None:
        cid = new_id()
        turn = await leased(store, cid, "stalled", for_s=-1)
        answer = AnswerEvent(text="hi", turn_id=turn.turn_id)
        [stored] = await store.append(cid, [answer], runner="stalled")  # still its own
        assert stored.seq == 2
        assert await store.lease_turn(cid, turn.turn_id, runner="new", lease_until=time.time() + 60)
        with pytest.raises(LeaseLostError):  # the stalled runner lost the turn: nothing stored
            await store.append(cid, [answer, DoneEvent(turn_id=turn.turn_id)], runner="stalled")
        assert [e.type for e in await store.events(cid)] == ["message", "answer"]
        await store.append(cid, [DoneEvent(turn_id=turn.turn_id)], runner="new")
        with pytest.raises(LeaseLostError):  # an ended turn takes no fenced writes
            await store.append(cid, [answer], runner="new")
        await store.append(cid, [AnswerEvent(text="unfenced")])  # unfenced writes still go

    async def test_a_forced_lease_takes_a_live_turn(self, store: ConversationStore) -> None:
        # An interrupting message takes the turn from a live runner: the runner's next
        # fenced write is refused, and the interrupter's done closes the turn.
        cid = new_id()
        turn = await leased(store, cid, "r1", for_s=60)
        running = await store.running_turn(cid)
        assert running is not None and running.turn_id == turn.turn_id
        later = time.time() + 60
        assert await store.lease_turn(
            cid, turn.turn_id, runner="stop", lease_until=later, force=True
        )
        with pytest.raises(LeaseLostError):
            await store.append(cid, [AnswerEvent(text="late", turn_id=turn.turn_id)], runner="r1")
        done = DoneEvent(status="interrupted", turn_id=turn.turn_id)
        await store.append(cid, [done], runner="stop")
        ended = await store.turn_by_id(cid, turn.turn_id)
        assert ended is not None and ended.status == "interrupted"
        assert await store.running_turn(cid) is None
        # Nothing takes an ended turn, forced or not.
        assert not await store.lease_turn(
            cid, turn.turn_id, runner="again", lease_until=later, force=True
        )

    async def test_a_rolled_back_done_restores_the_first_agent(
        self, store: ConversationStore
    ) -> None:
        cid = new_id()
        turn = await leased(store, cid, "r1", for_s=60)
        await store.append(
            cid, [HandoffEvent(agent="a", to_agent="b", turn_id=turn.turn_id)], runner="r1"
        )
        info = await store.conversation(cid)
        assert info is not None and info.active_agent == "b"
        done = DoneEvent(
            status="interrupted", rolled_back=True, active_agent="a", turn_id=turn.turn_id
        )
        await store.append(cid, [done])
        info = await store.conversation(cid)
        assert info is not None and info.active_agent == "a"
        # A done that is not rolled back leaves the active agent alone.
        second, _ = await store.begin_turn(cid, user("two"), idempotency_key="k2", agent="a")
        await store.append(cid, [HandoffEvent(agent="a", to_agent="b", turn_id=second.turn_id)])
        await store.append(
            cid, [DoneEvent(status="interrupted", active_agent="a", turn_id=second.turn_id)]
        )
        info = await store.conversation(cid)
        assert info is not None and info.active_agent == "b"

    async def test_a_webhook_delivery_is_held_by_one_sender(self, store: ConversationStore) -> None:
        cid = new_id()
        turn, _ = await store.begin_turn(
            cid, user("hi"), idempotency_key="k", agent="a", webhook="http://127.0.0.1:9/h"
        )
        assert turn.webhook == "http://127.0.0.1:9/h" and turn.delivery == "pending"
        stored = await store.turn_by_id(cid, turn.turn_id)
        assert (
            stored is not None and stored.webhook == turn.webhook and stored.delivery == "pending"
        )
        plain, _ = await store.begin_turn(new_id(), user("no hook"), idempotency_key="k", agent="a")
        assert plain.webhook is None and plain.delivery is None
        now = time.time()
        # A running turn has nothing to deliver yet.
        assert turn.turn_id not in {t.turn_id for t in await store.undelivered(now)}
        assert not await store.claim_delivery(cid, turn.turn_id, until=now + 60)
        await store.append(cid, [DoneEvent(turn_id=turn.turn_id)])
        assert turn.turn_id in {t.turn_id for t in await store.undelivered(now)}
        claims = await asyncio.gather(
            *(store.claim_delivery(cid, turn.turn_id, until=now + 60) for _ in range(4))
        )
        assert sorted(claims) == [False, False, False, True]
        # Held: nobody else sees it until the hold lapses (its sender died).
        assert turn.turn_id not in {t.turn_id for t in await store.undelivered(now)}
        assert turn.turn_id in {t.turn_id for t in await store.undelivered(now + 61)}
        await store.end_delivery(cid, turn.turn_id, "delivered")
        ended = await store.turn_by_id(cid, turn.turn_id)
        assert ended is not None and ended.delivery == "delivered"
        assert turn.turn_id not in {t.turn_id for t in await store.undelivered(now + 61)}
        await store.end_delivery(cid, turn.turn_id, "failed")  # an ended delivery stays so
        ended = await store.turn_by_id(cid, turn.turn_id)
        assert ended is not None and ended.delivery == "delivered"

    async def test_usage_adds_up_per_tenant_day_month_and_conversation(
        self, store: ConversationStore
    ) -> None:
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        c1, c2 = new_id(), new_id()

        def row(day: str, cid: str, agent: str, prompt: int, completion: int) -> Usage:
            return Usage(
                tenant=tenant,
                day=day,
                conversation_id=cid,
                agent=agent,
                model="m",
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=prompt // 2,
                calls=1,
            )

        await asyncio.gather(  # concurrent adds to one row lose nothing
            *(store.add_usage(row("2026-12-04", c1, "a", 10, 5)) for _ in range(8))
        )
        await store.add_usage(row("2026-12-04", c2, "b", 100, 1))
        await store.add_usage(row("2026-12-01", c1, "a", 1000, 0))  # same month
        await store.add_usage(row("2026-11-30", c1, "a", 7, 0))  # the month before
        await store.add_usage(
            row("2026-12-04", c1, "a", 3, 0).model_copy(update={"tenant": "other"})
        )
        totals = await store.usage_totals(tenant, c1, "2026-12-04")
        assert totals == UsageTotals(
            tenant_day=8 * 15 + 101,
            tenant_month=8 * 15 + 101 + 1000,
            conversation=8 * 15 + 1000 + 7,
        )
        assert await store.usage_totals("nobody", c1, "2026-12-04") == UsageTotals()
        report = await store.usage(tenant, start="2026-12-01", end="2026-12-31")
        assert [(u.day, u.agent, u.tokens, u.calls, u.conversation_id) for u in report] == [
            ("2026-12-01", "a", 1000, 1, ""),
            ("2026-12-04", "a", 120, 8, ""),
            ("2026-12-04", "b", 101, 1, ""),
        ]
        assert report[1].cached_tokens == 8 * 5
        # Usage outlives its conversation.
        await store.begin_turn(c1, user("hi"), idempotency_key="k", agent="a")
        await store.delete(c1)
        assert (await store.usage_totals(tenant, c1, "2026-12-04")).conversation == 8 * 15 + 1007

    async def test_stale_turns_are_running_turns_whose_lease_lapsed(
        self, store: ConversationStore
    ) -> None:
        cid, other = new_id(), new_id()
        stale, _ = await store.begin_turn(
            cid, user("one"), idempotency_key="k1", agent="a", lease_until=time.time() - 1
        )
        live, _ = await store.begin_turn(
            other, user("two"), idempotency_key="k1", agent="a", lease_until=time.time() + 60
        )
        await store.begin_turn(new_id(), user("unleased"), idempotency_key="k", agent="a")
        found = {t.turn_id for t in await store.stale_turns(time.time(), limit=1000)}
        assert stale.turn_id in found and live.turn_id not in found
        await store.append(cid, [DoneEvent(turn_id=stale.turn_id)])
        found = {t.turn_id for t in await store.stale_turns(time.time(), limit=1000)}
        assert stale.turn_id not in found

    async def test_create_keeps_owner_and_metadata(self, store: ConversationStore) -> None:
        cid = new_id()
        info = await store.create(cid, agent="a", owner="acme", metadata={"k": "v"})
        assert (info.active_agent, info.last_seq, info.owner) == ("a", 0, "acme")
        assert info.metadata == {"k": "v"}
        # An existing id is left as it is.
        again = await store.create(cid, agent="b", owner="other")
        assert again == info
        turn, new = await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="b")
        assert new and turn.user_seq == 1
        info = await store.conversation(cid)
        assert info is not None and info.owner == "acme" and info.active_agent == "a"
        # A conversation begun by a first message has no owner.
        other = new_id()
        await store.begin_turn(other, user("hi"), idempotency_key="k", agent="a")
        info = await store.conversation(other)
        assert info is not None and info.owner is None and info.metadata == {}

    async def test_delete(self, store: ConversationStore) -> None:
        cid = new_id()
        turn, _ = await store.begin_turn(
            cid, user("hi"), idempotency_key="k", agent="a", lease_until=time.time() + 60
        )
        with pytest.raises(ConversationBusyError):
            await store.delete(cid)
        await store.append(cid, [AnswerEvent(text="x"), DoneEvent(turn_id=turn.turn_id)])
        assert await store.delete(cid) is True
        assert await store.conversation(cid) is None
        assert await store.events(cid) == [] and await store.turn(cid, "k") is None
        assert await store.delete(cid) is False
        # The id can be used again, from scratch.
        turn, new = await store.begin_turn(cid, user("again"), idempotency_key="k", agent="a")
        assert new and turn.user_seq == 1

    async def test_a_forced_delete_takes_a_running_turn_away(
        self, store: ConversationStore
    ) -> None:
        cid = new_id()
        turn = await leased(store, cid, "r", for_s=60)
        assert await store.delete(cid, force=True) is True
        # Its runner finds the lease gone at its next renewal, and cannot write.
        assert not await store.lease_turn(cid, turn.turn_id, runner="r", lease_until=time.time())
        with pytest.raises(ConversationNotFoundError):
            await store.append(cid, [AnswerEvent(text="x", turn_id=turn.turn_id)], runner="r")

    async def test_events_limit(self, store: ConversationStore) -> None:
        cid = new_id()
        for n in range(3):
            await send(store, cid, f"m{n}")
        everything = await store.events(cid)
        assert await store.events(cid, limit=2) == everything[:2]
        assert await store.events(cid, after_seq=2, limit=2) == everything[2:4]
        assert await store.events(cid, limit=0) == []

    async def test_token_events_are_refused(self, store: ConversationStore) -> None:
        cid = new_id()
        await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="a")
        batch: list[Event] = [AnswerEvent(text="x"), TokenEvent(text="x")]
        with pytest.raises(ValueError, match="token"):
            await store.append(cid, batch)
        # The batch is atomic: the answer before the token was not stored either.
        assert [e.type for e in await store.events(cid)] == ["message"]

    async def test_unknown_conversation(self, store: ConversationStore) -> None:
        cid = new_id()
        with pytest.raises(ConversationNotFoundError, match=cid):
            await store.append(cid, [AnswerEvent(text="x")])
        with pytest.raises(ConversationNotFoundError, match=cid):
            await store.append(cid, [])
        assert await store.conversation(cid) is None
        assert await store.events(cid) == []
        assert await store.turn(cid, "k") is None

    async def test_empty_append_stores_nothing(self, store: ConversationStore) -> None:
        cid = new_id()
        await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="a")
        assert await store.append(cid, []) == []
        assert len(await store.events(cid)) == 1

    async def test_concurrent_sends_are_totally_ordered(self, store: ConversationStore) -> None:
        cid = new_id()
        contents = [f"message {i}" for i in range(50)]
        seqs = await asyncio.gather(*(send(store, cid, c) for c in contents))
        assert sorted(seqs) == list(range(1, 51))
        await assert_one_total_order(store, cid, contents)

    async def test_concurrent_appends_are_atomic(self, store: ConversationStore) -> None:
        await assert_appends_atomic([store])


class DurableStoreContract(StoreContract):
    """Behaviour of stores whose instances share one database that outlives them."""

    async def test_instances_share_one_total_order(self, new_store: StoreFactory) -> None:
        stores = [await new_store() for _ in range(5)]
        cid = new_id()
        contents = [[f"store {s} message {i}" for i in range(10)] for s in range(5)]
        sends = zip(stores, contents, strict=True)
        seqs = await asyncio.gather(*(send(s, cid, c) for s, mine in sends for c in mine))
        assert sorted(seqs) == list(range(1, 51))
        flat = [c for mine in contents for c in mine]
        for store in stores:
            await assert_one_total_order(store, cid, flat)

    async def test_instances_share_one_queue(self, new_store: StoreFactory) -> None:
        stores = [await new_store() for _ in range(3)]
        cid = new_id()
        later = time.time() + 60
        for i, key in enumerate(["a", "b", "c"]):
            await stores[i].take_place(cid, key, until=later)
        with pytest.raises(ConversationBusyError):
            await stores[2].begin_turn(
                cid, user("c"), idempotency_key="c", agent="x", lease_until=later, queued=True
            )
        turn, _ = await stores[0].begin_turn(
            cid, user("a"), idempotency_key="a", agent="x", lease_until=later, queued=True
        )
        await stores[1].append(cid, [DoneEvent(turn_id=turn.turn_id)])
        with pytest.raises(ConversationBusyError):
            await stores[2].begin_turn(
                cid, user("c"), idempotency_key="c", agent="x", lease_until=later, queued=True
            )

    async def test_instances_append_atomically(self, new_store: StoreFactory) -> None:
        await assert_appends_atomic([await new_store() for _ in range(5)])

    async def test_data_survives_close_and_reopen(self, new_store: StoreFactory) -> None:
        store = await new_store()
        cid = new_id()
        turn, _ = await store.begin_turn(cid, user("hi"), idempotency_key="k", agent="a")
        await store.append(cid, [HandoffEvent(turn_id=turn.turn_id, agent="a", to_agent="b")])
        events, info = await store.events(cid), await store.conversation(cid)
        await store.close()
        reopened = await new_store()
        assert await reopened.events(cid) == events
        assert await reopened.conversation(cid) == info
        assert await reopened.turn(cid, "k") == turn
