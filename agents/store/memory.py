"""An in-process conversation store: the test double for everything above the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from agents.events import ApprovalEvent, Event, MessageEvent
from agents.store._batch import (
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
from agents.store.base import (
    ConversationInfo,
    ConversationStore,
    TurnRecord,
    TurnStatus,
    Usage,
    UsageTotals,
)

__all__ = ["MemoryStore"]


@dataclass
class _Conversation:
    active_agent: str
    created_at: datetime
    updated_at: datetime
    owner: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    turns: dict[str, TurnRecord] = field(default_factory=dict)  # by idempotency key


class MemoryStore(ConversationStore):
    """Conversations in a dict, with the semantics of the durable stores.

    No method awaits while it reads or writes, so each one runs atomically on the
    event loop: that alone gives the per-conversation total order, without a lock.
    Data lives as long as the instance (``close`` keeps it, so a reopen finds it).
    """

    def __init__(self) -> None:
        self._conversations: dict[str, _Conversation] = {}
        self._usage: dict[tuple[str, str, str, str, str], Usage] = {}
        # Queued sends' places by conversation: key -> until, in the order they came.
        self._queues: dict[str, dict[str, float]] = {}

    async def create(
        self,
        conversation_id: str,
        *,
        agent: str,
        owner: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ConversationInfo:
        """Create an empty conversation (see ``ConversationStore.create``)."""
        if conversation_id not in self._conversations:
            created = now()
            self._conversations[conversation_id] = _Conversation(
                agent, created, created, owner, dict(metadata or {})
            )
        return _info(conversation_id, self._conversations[conversation_id])

    async def delete(self, conversation_id: str, *, force: bool = False) -> bool:
        """Delete a conversation (see ``ConversationStore.delete``)."""
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return False
        clock = time.time()
        for turn in conv.turns.values():
            if turn.leased(clock) and not force:
                raise busy(conversation_id, turn.turn_id)
        del self._conversations[conversation_id]
        self._queues.pop(conversation_id, None)
        return True

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
        conv = self._conversations.get(conversation_id)
        if conv is None:
            created = now()
            conv = self._conversations[conversation_id] = _Conversation(agent, created, created)
        if (turn := conv.turns.get(idempotency_key)) is not None:
            return turn, False
        if lease_until is not None:
            clock = time.time()
            for running in [t for t in conv.turns.values() if t.status == "running"]:
                if running.leased(clock):
                    raise busy(conversation_id, running.turn_id)
                self._append(conv, lost_runner(running.turn_id))  # its runner is gone
        if queued:
            places = self._queues.get(conversation_id, {})
            if first_in_line(list(places.items()), idempotency_key, time.time()) is not None:
                raise queued_behind(conversation_id)
            places.pop(idempotency_key, None)
        turn_id = new_turn_id()
        self._append(conv, [message.model_copy(update={"turn_id": turn_id})])
        turn = TurnRecord(
            conversation_id=conversation_id,
            turn_id=turn_id,
            idempotency_key=idempotency_key,
            user_seq=len(conv.events),
            status="running",
            lease_until=lease_until,
            runner=runner,
            fingerprint=fingerprint,
            variables=tuple(sorted((variables or {}).items())),
            webhook=webhook,
            delivery="pending" if webhook else None,
        )
        conv.turns[idempotency_key] = turn
        return turn, True

    async def take_place(self, conversation_id: str, idempotency_key: str, *, until: float) -> None:
        """Join the conversation's queue (see ``ConversationStore.take_place``)."""
        # A dict keeps insertion order: a renewed place keeps its position.
        self._queues.setdefault(conversation_id, {})[idempotency_key] = until

    async def renew_place(
        self, conversation_id: str, idempotency_key: str, *, until: float
    ) -> None:
        """Keep a place in the queue (see ``ConversationStore.renew_place``)."""
        places = self._queues.get(conversation_id, {})
        if idempotency_key in places:
            places[idempotency_key] = until

    async def leave_place(self, conversation_id: str, idempotency_key: str) -> None:
        """Leave the queue (see ``ConversationStore.leave_place``)."""
        places = self._queues.get(conversation_id, {})
        places.pop(idempotency_key, None)
        if not places:
            self._queues.pop(conversation_id, None)

    async def append(
        self, conversation_id: str, events: Sequence[Event], *, runner: str | None = None
    ) -> list[Event]:
        """Append events atomically (see ``ConversationStore.append``)."""
        conv = self._get(conversation_id)
        if runner is not None:
            held = {t.turn_id for t in conv.turns.values() if t.status == "running"}
            held &= {t.turn_id for t in conv.turns.values() if t.runner == runner}
            for turn_id in {e.turn_id for e in events if e.turn_id is not None} - held:
                raise lease_lost(conversation_id, turn_id)
        return self._append(conv, events)

    async def events(
        self,
        conversation_id: str,
        *,
        after_seq: int = 0,
        turn_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Stored events after ``after_seq`` (of one turn if given), in order."""
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return []
        found = [
            event
            for event in conv.events[max(after_seq, 0) :]
            if turn_id is None or event.turn_id == turn_id
        ]
        return found if limit is None else found[:limit]

    async def conversation(self, conversation_id: str) -> ConversationInfo | None:
        """The conversation's header, or None."""
        conv = self._conversations.get(conversation_id)
        return None if conv is None else _info(conversation_id, conv)

    async def turn(self, conversation_id: str, idempotency_key: str) -> TurnRecord | None:
        """The turn opened under ``idempotency_key``, or None."""
        conv = self._conversations.get(conversation_id)
        return None if conv is None else conv.turns.get(idempotency_key)

    async def turn_by_id(self, conversation_id: str, turn_id: str) -> TurnRecord | None:
        """The turn with ``turn_id``, or None."""
        conv = self._conversations.get(conversation_id)
        turns = conv.turns.values() if conv is not None else []
        return next((turn for turn in turns if turn.turn_id == turn_id), None)

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
        until = lease_until
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return False
        for key, turn in conv.turns.items():
            if turn.turn_id != turn_id or turn.status != "running":
                continue
            expired = turn.lease_until is None or turn.lease_until <= time.time()
            if turn.runner != runner and not expired and not force:
                return False
            conv.turns[key] = turn.model_copy(update={"runner": runner, "lease_until": until})
            return True
        return False

    async def stale_turns(self, now: float, *, limit: int = 100) -> list[TurnRecord]:
        """Running turns whose lease ran out before ``now``."""
        stale = [
            turn
            for conv in self._conversations.values()
            for turn in conv.turns.values()
            if turn.status == "running" and turn.lease_until is not None and turn.lease_until <= now
        ]
        return stale[:limit]

    async def running_turn(self, conversation_id: str) -> TurnRecord | None:
        """The conversation's running turn, or None."""
        conv = self._conversations.get(conversation_id)
        turns = conv.turns.values() if conv is not None else []
        return next((turn for turn in turns if turn.status == "running"), None)

    async def undelivered(self, now: float, *, limit: int = 100) -> list[TurnRecord]:
        """Ended turns whose webhook waits for a sender."""
        found = [turn for turn in self._turns() if _deliverable(turn, now)]
        return found[:limit]

    async def claim_delivery(self, conversation_id: str, turn_id: str, *, until: float) -> bool:
        """Hold a pending delivery until ``until`` if nobody holds it."""
        found = self._turn_key(conversation_id, turn_id)
        if found is None or not _deliverable(found[1], time.time()):
            return False
        conv, key = self._conversations[conversation_id], found[0]
        conv.turns[key] = found[1].model_copy(update={"delivery_until": until})
        return True

    async def end_delivery(
        self, conversation_id: str, turn_id: str, state: Literal["delivered", "failed"]
    ) -> None:
        """Record how a turn's webhook delivery ended."""
        found = self._turn_key(conversation_id, turn_id)
        if found is not None and found[1].delivery == "pending":
            conv, key = self._conversations[conversation_id], found[0]
            conv.turns[key] = found[1].model_copy(update={"delivery": state})

    async def add_usage(self, usage: Usage) -> None:
        """Add a generate call's tokens to its row."""
        key = (usage.tenant, usage.day, usage.conversation_id, usage.agent, usage.model)
        self._usage[key] = _added(self._usage.get(key), usage)

    async def usage_totals(self, tenant: str, conversation_id: str, day: str) -> UsageTotals:
        """The tenant's tokens on ``day`` and in its month, and the conversation's."""
        rows = [u for u in self._usage.values() if u.tenant == tenant]
        return UsageTotals(
            tenant_day=sum(u.tokens for u in rows if u.day == day),
            tenant_month=sum(u.tokens for u in rows if u.day[:7] == day[:7]),
            conversation=sum(u.tokens for u in rows if u.conversation_id == conversation_id),
        )

    async def usage(self, tenant: str, *, start: str, end: str) -> list[Usage]:
        """The tenant's usage per day, agent and model."""
        summed: dict[tuple[str, str, str], Usage] = {}
        for row in self._usage.values():
            if row.tenant == tenant and start <= row.day <= end:
                key = (row.day, row.agent, row.model)
                summed[key] = _added(
                    summed.get(key), row.model_copy(update={"conversation_id": ""})
                )
        return [summed[key] for key in sorted(summed)]

    def _turns(self) -> list[TurnRecord]:
        return [turn for conv in self._conversations.values() for turn in conv.turns.values()]

    def _turn_key(self, conversation_id: str, turn_id: str) -> tuple[str, TurnRecord] | None:
        conv = self._conversations.get(conversation_id)
        turns = conv.turns.items() if conv is not None else []
        return next(((key, turn) for key, turn in turns if turn.turn_id == turn_id), None)

    async def fail_turn(self, conversation_id: str, turn_id: str) -> None:
        """Mark a still-running turn as ended in error."""
        conv = self._conversations.get(conversation_id)
        if conv is not None:
            self._close_turns(conv, {turn_id: "error"}, only_running=True)

    def _get(self, conversation_id: str) -> _Conversation:
        conv = self._conversations.get(conversation_id)
        if conv is None:
            raise not_found(conversation_id)
        return conv

    def _append(self, conv: _Conversation, events: Sequence[Event]) -> list[Event]:
        # seq n sits at index n - 1: the log is gap-free, so the list is the index.
        batch = number(events, len(conv.events))
        conv.events.extend(batch.events)
        if batch.active_agent is not None:
            conv.active_agent = batch.active_agent
        self._close_turns(conv, batch.closed, only_running=False)
        conv.updated_at = now()
        return batch.events

    @staticmethod
    def _close_turns(
        conv: _Conversation, statuses: dict[str, TurnStatus], *, only_running: bool
    ) -> None:
        for key, turn in conv.turns.items():
            status = statuses.get(turn.turn_id)
            if status is not None and (turn.status == "running" or not only_running):
                conv.turns[key] = turn.model_copy(update={"status": status})


def _added(row: Usage | None, usage: Usage) -> Usage:
    if row is None:
        return usage
    return row.model_copy(
        update={
            "prompt_tokens": row.prompt_tokens + usage.prompt_tokens,
            "completion_tokens": row.completion_tokens + usage.completion_tokens,
            "cached_tokens": row.cached_tokens + usage.cached_tokens,
            "calls": row.calls + usage.calls,
        }
    )


def _deliverable(turn: TurnRecord, now: float) -> bool:
    held = turn.delivery_until is not None and turn.delivery_until > now
    return turn.status != "running" and turn.delivery == "pending" and not held


def _info(conversation_id: str, conv: _Conversation) -> ConversationInfo:
    return ConversationInfo(
        conversation_id=conversation_id,
        active_agent=conv.active_agent,
        last_seq=len(conv.events),
        created_at=conv.created_at,
        updated_at=conv.updated_at,
        owner=conv.owner,
        metadata=dict(conv.metadata),
    )
