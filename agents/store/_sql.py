"""The SQL stores' operations, written once for every driver.

Each operation is a *flow*: a generator that yields the ``Query`` it needs next and is
sent back that query's rows. A backend runs a flow on one connection, inside one
transaction when it writes (``SQLStore._run``); SQLite drives it synchronously on its
own thread, PostgreSQL with awaits. So the order of the steps, which is what makes
appends atomic and idempotent, exists once, and the backends differ only in DDL,
locking statement and connection handling.

Statements and the schema are templates, rendered once per backend:
``{conversations}``, ``{events}``, ``{turns}``, ``{queue}``, ``{usage}`` name the tables,
``{for_update}`` locks the conversation row where the database locks rows,
``{timestamp}`` is the type of a timestamp column, ``{clustered}`` ends a table kept in
primary-key order, ``{serial}`` is an increasing integer primary key, ``%s`` is a
parameter.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, TypeVar

from agents.events import ApprovalEvent, Event, MessageEvent, event_adapter
from agents.store._batch import (
    Batch,
    busy,
    first_in_line,
    lease_lost,
    lost_runner,
    new_turn_id,
    not_found,
    now,
    number,
    queued_behind,
)
from agents.store.base import ConversationInfo, ConversationStore, TurnRecord, Usage, UsageTotals

__all__ = [
    "ADDED_COLUMNS",
    "ADDED_INDEXES",
    "SCHEMA",
    "Flow",
    "Query",
    "Row",
    "SQLStore",
    "Statements",
]

T = TypeVar("T")
Row = tuple[Any, ...]
_NO_LIMIT = 2**62  # LIMIT takes a number in both databases; this one is never reached


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {conversations} (
        conversation_id TEXT PRIMARY KEY,
        active_agent TEXT NOT NULL,
        last_seq BIGINT NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL,
        owner TEXT,
        metadata TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS {events} (
        conversation_id TEXT NOT NULL REFERENCES {conversations},
        seq BIGINT NOT NULL,
        turn_id TEXT,
        type TEXT NOT NULL,
        agent TEXT,
        data TEXT NOT NULL,
        created_at {timestamp} NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    ){clustered}""",
    """CREATE TABLE IF NOT EXISTS {turns} (
        conversation_id TEXT NOT NULL REFERENCES {conversations},
        idempotency_key TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        user_seq BIGINT NOT NULL,
        status TEXT NOT NULL,
        lease_until DOUBLE PRECISION,
        created_at {timestamp} NOT NULL,
        PRIMARY KEY (conversation_id, idempotency_key),
        UNIQUE (conversation_id, turn_id)
    )""",
    # The reaper's look-up of running turns whose runner died.
    "CREATE INDEX IF NOT EXISTS turns_running ON {turns} (status, lease_until)",
    # Tokens spent, per tenant, day, conversation, agent and model; no foreign key: the
    # rows outlive their conversation.
    # Sends waiting for their conversation's turn, in the order they came (place).
    """CREATE TABLE IF NOT EXISTS {queue} (
        place {serial},
        conversation_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL,
        UNIQUE (conversation_id, idempotency_key)
    )""",
    """CREATE TABLE IF NOT EXISTS {usage} (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        calls BIGINT NOT NULL,
        PRIMARY KEY (tenant, day, conversation_id, agent, model)
    )""",
    "CREATE INDEX IF NOT EXISTS usage_conversation ON {usage} (tenant, conversation_id)",
)
"""The tables, as templates (see the module docstring)."""

ADDED_COLUMNS = (
    ("{conversations}", "owner TEXT"),
    ("{conversations}", "metadata TEXT"),
    ("{turns}", "runner TEXT"),
    ("{turns}", "fingerprint TEXT"),
    ("{turns}", "variables TEXT"),
    ("{turns}", "webhook TEXT"),
    ("{turns}", "delivery TEXT"),
    ("{turns}", "delivery_until DOUBLE PRECISION"),
)
"""Columns added since the first schema: a backend adds them to an older database."""

ADDED_INDEXES = (
    # The look-up of webhook deliveries that wait for a sender.
    "CREATE INDEX IF NOT EXISTS turns_delivery ON {turns} (delivery, delivery_until)",
)
"""Indexes on added columns: a backend creates them after ``ADDED_COLUMNS``."""


@dataclass(frozen=True)
class Query:
    """One statement to run; with ``many``, ``params`` is a list of parameter tuples."""

    sql: str
    params: Sequence[Any] = ()
    many: bool = False


Flow = Generator[Query, list[Row], T]


@dataclass(frozen=True)
class Statements:
    """Every statement the flows run, as templates (see the module docstring)."""

    insert_conversation: str = (
        "INSERT INTO {conversations}"
        " (conversation_id, active_agent, last_seq, created_at, updated_at, owner, metadata)"
        " VALUES (%s, %s, 0, %s, %s, %s, %s) ON CONFLICT (conversation_id) DO NOTHING"
    )
    lock_conversation: str = (
        "SELECT last_seq FROM {conversations} WHERE conversation_id = %s{for_update}"
    )
    update_conversation: str = (
        "UPDATE {conversations} SET last_seq = %s, updated_at = %s,"
        " active_agent = COALESCE(%s, active_agent) WHERE conversation_id = %s"
    )
    select_conversation: str = (
        "SELECT active_agent, last_seq, created_at, updated_at, owner, metadata"
        " FROM {conversations} WHERE conversation_id = %s"
    )
    delete_events: str = "DELETE FROM {events} WHERE conversation_id = %s"
    delete_turns: str = "DELETE FROM {turns} WHERE conversation_id = %s"
    delete_conversation: str = "DELETE FROM {conversations} WHERE conversation_id = %s"
    delete_places: str = "DELETE FROM {queue} WHERE conversation_id = %s"
    take_place: str = (
        "INSERT INTO {queue} (conversation_id, idempotency_key, until) VALUES (%s, %s, %s)"
        " ON CONFLICT (conversation_id, idempotency_key) DO UPDATE SET until = excluded.until"
    )
    renew_place: str = (
        "UPDATE {queue} SET until = %s WHERE conversation_id = %s AND idempotency_key = %s"
    )
    leave_place: str = "DELETE FROM {queue} WHERE conversation_id = %s AND idempotency_key = %s"
    select_places: str = (
        "SELECT idempotency_key, until FROM {queue} WHERE conversation_id = %s ORDER BY place"
    )
    insert_event: str = (
        "INSERT INTO {events}"
        " (conversation_id, seq, turn_id, type, agent, data, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
    )
    select_events: str = (
        "SELECT data FROM {events} WHERE conversation_id = %s AND seq > %s ORDER BY seq LIMIT %s"
    )
    select_turn_events: str = (
        "SELECT data FROM {events} WHERE conversation_id = %s AND seq > %s"
        " AND turn_id = %s ORDER BY seq LIMIT %s"
    )
    insert_turn: str = (
        "INSERT INTO {turns} (conversation_id, idempotency_key, turn_id, user_seq, status,"
        " lease_until, runner, fingerprint, variables, webhook, delivery, created_at)"
        " VALUES (%s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, %s)"
    )
    select_turn: str = (
        "SELECT turn_id, user_seq, status, lease_until, runner, fingerprint, variables,"
        " webhook, delivery, delivery_until FROM {turns}"
        " WHERE conversation_id = %s AND idempotency_key = %s"
    )
    select_turn_by_id: str = (
        "SELECT idempotency_key, turn_id, user_seq, status, lease_until, runner, fingerprint,"
        " variables, webhook, delivery, delivery_until FROM {turns}"
        " WHERE conversation_id = %s AND turn_id = %s"
    )
    select_running_turn: str = (
        "SELECT idempotency_key, turn_id, user_seq, status, lease_until, runner, fingerprint,"
        " variables, webhook, delivery, delivery_until FROM {turns}"
        " WHERE conversation_id = %s AND status = 'running' LIMIT 1"
    )
    lease_turn: str = (
        "UPDATE {turns} SET lease_until = %s, runner = %s"
        " WHERE conversation_id = %s AND turn_id = %s AND status = 'running'"
        " AND (runner = %s OR lease_until IS NULL OR lease_until <= %s) RETURNING turn_id"
    )
    take_turn: str = (
        "UPDATE {turns} SET lease_until = %s, runner = %s"
        " WHERE conversation_id = %s AND turn_id = %s AND status = 'running' RETURNING turn_id"
    )
    select_undelivered: str = (
        "SELECT conversation_id, idempotency_key, turn_id, user_seq, status, lease_until, runner,"
        " fingerprint, variables, webhook, delivery, delivery_until FROM {turns}"
        " WHERE delivery = 'pending' AND status <> 'running'"
        " AND (delivery_until IS NULL OR delivery_until <= %s) LIMIT %s"
    )
    claim_delivery: str = (
        "UPDATE {turns} SET delivery_until = %s"
        " WHERE conversation_id = %s AND turn_id = %s AND delivery = 'pending'"
        " AND status <> 'running' AND (delivery_until IS NULL OR delivery_until <= %s)"
        " RETURNING turn_id"
    )
    end_delivery: str = (
        "UPDATE {turns} SET delivery = %s"
        " WHERE conversation_id = %s AND turn_id = %s AND delivery = 'pending'"
    )
    select_held: str = (
        "SELECT turn_id FROM {turns} WHERE conversation_id = %s AND turn_id = %s"
        " AND status = 'running' AND runner = %s"
    )
    select_stale: str = (
        "SELECT conversation_id, idempotency_key, turn_id, user_seq, status, lease_until, runner,"
        " fingerprint, variables, webhook, delivery, delivery_until FROM {turns}"
        " WHERE status = 'running' AND lease_until <= %s LIMIT %s"
    )
    select_running: str = (
        "SELECT turn_id, lease_until FROM {turns} WHERE conversation_id = %s AND status = 'running'"
    )
    close_turn: str = "UPDATE {turns} SET status = %s WHERE conversation_id = %s AND turn_id = %s"
    fail_turn: str = (
        "UPDATE {turns} SET status = 'error'"
        " WHERE conversation_id = %s AND turn_id = %s AND status = 'running'"
    )

    add_usage: str = (
        "INSERT INTO {usage} AS u (tenant, day, conversation_id, agent, model, prompt_tokens,"
        " completion_tokens, cached_tokens, calls) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant, day, conversation_id, agent, model) DO UPDATE SET"
        " prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,"
        " completion_tokens = u.completion_tokens + excluded.completion_tokens,"
        " cached_tokens = u.cached_tokens + excluded.cached_tokens,"
        " calls = u.calls + excluded.calls"
    )
    usage_totals: str = (
        "SELECT"
        " COALESCE(SUM(CASE WHEN day = %s THEN prompt_tokens + completion_tokens END), 0),"
        " COALESCE(SUM(CASE WHEN day >= %s AND day <= %s"
        " THEN prompt_tokens + completion_tokens END), 0),"
        " COALESCE(SUM(CASE WHEN conversation_id = %s"
        " THEN prompt_tokens + completion_tokens END), 0)"
        " FROM {usage} WHERE tenant = %s AND (day >= %s OR conversation_id = %s)"
    )
    select_usage: str = (
        "SELECT day, agent, model, SUM(prompt_tokens), SUM(completion_tokens),"
        " SUM(cached_tokens), SUM(calls) FROM {usage}"
        " WHERE tenant = %s AND day >= %s AND day <= %s"
        " GROUP BY day, agent, model ORDER BY day, agent, model"
    )

    def rendered(self, render: Callable[[str], str]) -> Statements:
        """The statements with ``render`` applied to each template."""
        return Statements(**{f.name: render(getattr(self, f.name)) for f in fields(self)})


class SQLStore(ConversationStore):
    """The store's operations as flows; a backend supplies ``_run`` and its statements."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    @abc.abstractmethod
    async def _run(self, flow: Flow[T], *, write: bool) -> T:
        """Run ``flow`` on one connection, in one serialized transaction if it writes."""

    async def create(
        self,
        conversation_id: str,
        *,
        agent: str,
        owner: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ConversationInfo:
        """Create an empty conversation (see ``ConversationStore.create``)."""
        stamp = now()
        row = (conversation_id, agent, stamp, stamp, owner, json.dumps(metadata or {}))
        await self._run(_fetch(Query(self._sql.insert_conversation, row)), write=True)
        info = await self.conversation(conversation_id)
        if info is None:  # deleted between the two statements
            raise not_found(conversation_id)
        return info

    async def delete(self, conversation_id: str, *, force: bool = False) -> bool:
        """Delete a conversation (see ``ConversationStore.delete``)."""
        return await self._run(_delete(self._sql, conversation_id, force), write=True)

    async def begin_turn(
        self,
        conversation_id: str,
        message: MessageEvent | ApprovalEvent,
        *,
        idempotency_key: str,
        agent: str,
        lease_until: float | None = None,
        runner: str | None = None,
        fingerprint: str | None = None,
        variables: dict[str, str] | None = None,
        webhook: str | None = None,
        queued: bool = False,
    ) -> tuple[TurnRecord, bool]:
        """Store ``message`` and open a turn (see ``ConversationStore.begin_turn``)."""
        flow = _begin_turn(
            self._sql,
            conversation_id,
            message,
            idempotency_key,
            agent,
            (lease_until, runner, queued),
            (fingerprint, variables or {}, webhook),
        )
        return await self._run(flow, write=True)

    async def take_place(self, conversation_id: str, idempotency_key: str, *, until: float) -> None:
        """Join the conversation's queue (see ``ConversationStore.take_place``)."""
        query = Query(self._sql.take_place, (conversation_id, idempotency_key, until))
        await self._run(_fetch(query), write=True)

    async def renew_place(
        self, conversation_id: str, idempotency_key: str, *, until: float
    ) -> None:
        """Keep a place in the queue (see ``ConversationStore.renew_place``)."""
        query = Query(self._sql.renew_place, (until, conversation_id, idempotency_key))
        await self._run(_fetch(query), write=True)

    async def leave_place(self, conversation_id: str, idempotency_key: str) -> None:
        """Leave the queue (see ``ConversationStore.leave_place``)."""
        query = Query(self._sql.leave_place, (conversation_id, idempotency_key))
        await self._run(_fetch(query), write=True)

    async def append(
        self, conversation_id: str, events: Sequence[Event], *, runner: str | None = None
    ) -> list[Event]:
        """Append events atomically (see ``ConversationStore.append``)."""
        return await self._run(_append(self._sql, conversation_id, events, runner), write=True)

    async def events(
        self,
        conversation_id: str,
        *,
        after_seq: int = 0,
        turn_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Stored events after ``after_seq`` (of one turn if given), in order."""
        most = _NO_LIMIT if limit is None else limit
        if turn_id is None:
            query = Query(self._sql.select_events, (conversation_id, after_seq, most))
        else:
            query = Query(self._sql.select_turn_events, (conversation_id, after_seq, turn_id, most))
        rows = await self._run(_fetch(query), write=False)
        return [event_adapter.validate_json(data) for (data,) in rows]

    async def conversation(self, conversation_id: str) -> ConversationInfo | None:
        """The conversation's header, or None."""
        query = Query(self._sql.select_conversation, (conversation_id,))
        rows = await self._run(_fetch(query), write=False)
        if not rows:
            return None
        active_agent, last_seq, created_at, updated_at, owner, metadata = rows[0]
        return ConversationInfo(
            conversation_id=conversation_id,
            active_agent=active_agent,
            last_seq=last_seq,
            created_at=created_at,
            updated_at=updated_at,
            owner=owner,
            metadata=json.loads(metadata) if metadata else {},
        )

    async def turn(self, conversation_id: str, idempotency_key: str) -> TurnRecord | None:
        """The turn opened under ``idempotency_key``, or None."""
        query = Query(self._sql.select_turn, (conversation_id, idempotency_key))
        rows = await self._run(_fetch(query), write=False)
        return _turn(conversation_id, idempotency_key, rows[0]) if rows else None

    async def turn_by_id(self, conversation_id: str, turn_id: str) -> TurnRecord | None:
        """The turn with ``turn_id``, or None."""
        query = Query(self._sql.select_turn_by_id, (conversation_id, turn_id))
        rows = await self._run(_fetch(query), write=False)
        if not rows:
            return None
        key, *rest = rows[0]
        return _turn(conversation_id, key, tuple(rest))

    async def lease_turn(
        self,
        conversation_id: str,
        turn_id: str,
        *,
        runner: str,
        lease_until: float,
        force: bool = False,
    ) -> bool:
        """Renew or take over a turn's lease (see ``ConversationStore.lease_turn``)."""
        if force:
            query = Query(self._sql.take_turn, (lease_until, runner, conversation_id, turn_id))
        else:
            params = (lease_until, runner, conversation_id, turn_id, runner, time.time())
            query = Query(self._sql.lease_turn, params)
        return bool(await self._run(_fetch(query), write=True))

    async def running_turn(self, conversation_id: str) -> TurnRecord | None:
        """The conversation's running turn, or None."""
        query = Query(self._sql.select_running_turn, (conversation_id,))
        rows = await self._run(_fetch(query), write=False)
        if not rows:
            return None
        key, *rest = rows[0]
        return _turn(conversation_id, key, tuple(rest))

    async def undelivered(self, now: float, *, limit: int = 100) -> list[TurnRecord]:
        """Ended turns whose webhook waits for a sender."""
        query = Query(self._sql.select_undelivered, (now, limit))
        rows = await self._run(_fetch(query), write=False)
        return [_turn(cid, key, tuple(rest)) for cid, key, *rest in rows]

    async def claim_delivery(self, conversation_id: str, turn_id: str, *, until: float) -> bool:
        """Hold a pending delivery until ``until`` if nobody holds it."""
        params = (until, conversation_id, turn_id, time.time())
        return bool(await self._run(_fetch(Query(self._sql.claim_delivery, params)), write=True))

    async def end_delivery(
        self, conversation_id: str, turn_id: str, state: Literal["delivered", "failed"]
    ) -> None:
        """Record how a turn's webhook delivery ended."""
        query = Query(self._sql.end_delivery, (state, conversation_id, turn_id))
        await self._run(_fetch(query), write=True)

    async def stale_turns(self, now: float, *, limit: int = 100) -> list[TurnRecord]:
        """Running turns whose lease ran out before ``now``."""
        rows = await self._run(_fetch(Query(self._sql.select_stale, (now, limit))), write=False)
        return [_turn(cid, key, tuple(rest)) for cid, key, *rest in rows]

    async def add_usage(self, usage: Usage) -> None:
        """Add a generate call's tokens to its row (see ``ConversationStore.add_usage``)."""
        row = (
            usage.tenant,
            usage.day,
            usage.conversation_id,
            usage.agent,
            usage.model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.calls,
        )
        await self._run(_fetch(Query(self._sql.add_usage, row)), write=True)

    async def usage_totals(self, tenant: str, conversation_id: str, day: str) -> UsageTotals:
        """The tenant's tokens on ``day`` and in its month, and the conversation's."""
        month = day[:7]
        first, last = f"{month}-01", f"{month}-31"
        params = (day, first, last, conversation_id, tenant, first, conversation_id)
        rows = await self._run(_fetch(Query(self._sql.usage_totals, params)), write=False)
        today, this_month, conversation = (int(v) for v in rows[0])
        return UsageTotals(tenant_day=today, tenant_month=this_month, conversation=conversation)

    async def usage(self, tenant: str, *, start: str, end: str) -> list[Usage]:
        """The tenant's usage per day, agent and model."""
        query = Query(self._sql.select_usage, (tenant, start, end))
        rows = await self._run(_fetch(query), write=False)
        return [
            Usage(
                tenant=tenant,
                day=day,
                agent=agent,
                model=model,
                prompt_tokens=int(prompt),
                completion_tokens=int(completion),
                cached_tokens=int(cached),
                calls=int(calls),
            )
            for day, agent, model, prompt, completion, cached, calls in rows
        ]

    async def fail_turn(self, conversation_id: str, turn_id: str) -> None:
        """Mark a still-running turn as ended in error."""
        query = Query(self._sql.fail_turn, (conversation_id, turn_id))
        await self._run(_fetch(query), write=True)


def _begin_turn(
    sql: Statements,
    conversation_id: str,
    message: MessageEvent | ApprovalEvent,
    key: str,
    agent: str,
    lease: tuple[float | None, str | None, bool],
    request: tuple[str | None, dict[str, str], str | None],
) -> Flow[tuple[TurnRecord, bool]]:
    lease_until, runner, queued = lease
    fingerprint, variables, webhook = request
    stamp = now()
    yield Query(sql.insert_conversation, (conversation_id, agent, stamp, stamp, None, None))
    # The key is looked up only once the conversation is locked: a retry racing its
    # first send then waits for it and finds its turn, instead of storing twice.
    last_seq = yield from _lock(sql, conversation_id)
    rows = yield Query(sql.select_turn, (conversation_id, key))
    if rows:
        return _turn(conversation_id, key, rows[0]), False
    if lease_until is not None:
        clock = time.time()
        for other, until in (yield Query(sql.select_running, (conversation_id,))):
            if until is not None and until > clock:
                raise busy(conversation_id, other)
            # Its runner is gone: close the turn in the log, as every turn closes.
            closed = number(lost_runner(other), last_seq)
            yield from _write(sql, conversation_id, closed, stamp)
            last_seq = closed.last_seq
    if queued:
        places = yield Query(sql.select_places, (conversation_id,))
        if first_in_line(places, key, time.time()) is not None:
            raise queued_behind(conversation_id)
        yield Query(sql.leave_place, (conversation_id, key))
    turn_id = new_turn_id()
    batch = number([message.model_copy(update={"turn_id": turn_id})], last_seq)
    yield from _write(sql, conversation_id, batch, stamp)
    yield Query(
        sql.insert_turn,
        (
            conversation_id,
            key,
            turn_id,
            batch.last_seq,
            lease_until,
            runner,
            fingerprint,
            json.dumps(variables) if variables else None,
            webhook,
            "pending" if webhook else None,
            stamp,
        ),
    )
    turn = TurnRecord(
        conversation_id=conversation_id,
        turn_id=turn_id,
        idempotency_key=key,
        user_seq=batch.last_seq,
        status="running",
        lease_until=lease_until,
        runner=runner,
        fingerprint=fingerprint,
        variables=tuple(sorted(variables.items())),
        webhook=webhook,
        delivery="pending" if webhook else None,
    )
    return turn, True


def _append(
    sql: Statements, conversation_id: str, events: Sequence[Event], runner: str | None
) -> Flow[list[Event]]:
    last_seq = yield from _lock(sql, conversation_id)
    if runner is not None:
        for turn_id in {e.turn_id for e in events if e.turn_id is not None}:
            if not (yield Query(sql.select_held, (conversation_id, turn_id, runner))):
                raise lease_lost(conversation_id, turn_id)
    batch = number(events, last_seq)
    if batch.events:
        yield from _write(sql, conversation_id, batch, now())
    return batch.events


def _delete(sql: Statements, conversation_id: str, force: bool) -> Flow[bool]:
    rows = yield Query(sql.lock_conversation, (conversation_id,))
    if not rows:
        return False
    clock = time.time()
    for turn_id, until in (yield Query(sql.select_running, (conversation_id,))):
        if until is not None and until > clock and not force:
            raise busy(conversation_id, turn_id)
    statements = (sql.delete_places, sql.delete_events, sql.delete_turns, sql.delete_conversation)
    for statement in statements:
        yield Query(statement, (conversation_id,))
    return True


def _lock(sql: Statements, conversation_id: str) -> Flow[int]:
    rows = yield Query(sql.lock_conversation, (conversation_id,))
    if not rows:
        raise not_found(conversation_id)
    return int(rows[0][0])


def _write(sql: Statements, conversation_id: str, batch: Batch, stamp: datetime) -> Flow[None]:
    events = [
        (conversation_id, e.seq, e.turn_id, e.type, e.agent, e.model_dump_json(), stamp)
        for e in batch.events
    ]
    yield Query(sql.insert_event, events, many=True)
    update = (batch.last_seq, stamp, batch.active_agent, conversation_id)
    yield Query(sql.update_conversation, update)
    if batch.closed:
        closes = [(status, conversation_id, turn_id) for turn_id, status in batch.closed.items()]
        yield Query(sql.close_turn, closes, many=True)


def _fetch(query: Query) -> Flow[list[Row]]:
    return (yield query)


def _turn(conversation_id: str, key: str, row: Row) -> TurnRecord:
    turn_id, user_seq, status, lease_until, runner, fingerprint, variables, *delivery = row
    webhook, state, until = delivery
    return TurnRecord(
        conversation_id=conversation_id,
        turn_id=turn_id,
        idempotency_key=key,
        user_seq=user_seq,
        status=status,
        lease_until=lease_until,
        runner=runner,
        fingerprint=fingerprint,
        variables=tuple(sorted(json.loads(variables).items())) if variables else (),
        webhook=webhook,
        delivery=state,
        delivery_until=until,
    )
