"""What every backend does alike before and after it touches storage.

Numbering a batch of events, and working out what the batch changes in the
conversation's header (the active agent) and in its turns (done events close them),
happens here once, so the backends differ only in how they lock and write.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agents.errors import ConversationBusyError, ConversationNotFoundError, LeaseLostError
from agents.events import DoneEvent, ErrorEvent, Event, HandoffEvent, TokenEvent
from agents.store.base import TurnStatus

__all__ = [
    "Batch",
    "busy",
    "lease_lost",
    "lost_runner",
    "new_turn_id",
    "not_found",
    "now",
    "number",
]


@dataclass(frozen=True)
class Batch:
    """Events numbered for appending, and their effects on the conversation."""

    events: list[Event]
    last_seq: int
    active_agent: str | None
    """The last hand-off's ``to_agent`` (or a rolled-back turn's first agent); None when
    the batch changes no agent."""
    closed: dict[str, TurnStatus]
    """turn_id -> status, for every turn a done event in the batch closes."""


def number(events: Sequence[Event], last_seq: int) -> Batch:
    """Give ``events`` the seqs after ``last_seq``; refuses token events."""
    for event in events:
        if isinstance(event, TokenEvent):
            raise ValueError("token events are streamed, never stored")
    numbered = [
        event.model_copy(update={"seq": seq})
        for seq, event in enumerate(events, start=last_seq + 1)
    ]
    active_agent = None
    closed: dict[str, TurnStatus] = {}
    for event in numbered:
        if isinstance(event, HandoffEvent):
            active_agent = event.to_agent
        elif isinstance(event, DoneEvent) and event.turn_id is not None:
            closed[event.turn_id] = event.status
            if event.rolled_back and event.active_agent is not None:
                # A rolled-back turn leaves the conversation with the agent it began with.
                active_agent = event.active_agent
    return Batch(numbered, last_seq + len(numbered), active_agent, closed)


def now() -> datetime:
    """The timestamp written to ``created_at`` / ``updated_at`` (aware, UTC)."""
    return datetime.now(UTC)


def new_turn_id() -> str:
    """A fresh turn id."""
    return uuid.uuid4().hex


def not_found(conversation_id: str) -> ConversationNotFoundError:
    """The error for an unknown conversation, worded alike by every backend."""
    return ConversationNotFoundError(f"no conversation with id {conversation_id!r}")


def busy(conversation_id: str, turn_id: str) -> ConversationBusyError:
    """The error for a conversation whose other turn still runs under its lease."""
    return ConversationBusyError(
        f"conversation {conversation_id!r} is busy: turn {turn_id} is still running; "
        "retry when it ends"
    )


def first_in_line(places: Sequence[tuple[str, float]], key: str, clock: float) -> str | None:
    """The key of a live place ahead of ``key``'s in a queue (in order), or None."""
    for other, until in places:
        if other == key:
            return None
        if until > clock:
            return other
    return None  # ``key`` holds no place: its send no longer waits in line


def queued_behind(conversation_id: str) -> ConversationBusyError:
    """The error for a queued send whose place is not yet first in line."""
    return ConversationBusyError(
        f"conversation {conversation_id!r} is busy: messages sent before this one run first"
    )


def lost_runner(turn_id: str) -> list[Event]:
    """The events that close a turn whose runner died (its lease ran out)."""
    error = ErrorEvent(
        code="runner_lost",
        message="the replica running this turn stopped before it ended; send again to retry",
        turn_id=turn_id,
    )
    return [error, DoneEvent(status="error", turn_id=turn_id)]


def lease_lost(conversation_id: str, turn_id: str) -> LeaseLostError:
    """The error for a fenced write into a turn its runner no longer holds."""
    return LeaseLostError(
        f"turn {turn_id} of conversation {conversation_id!r} is no longer held by this "
        "runner (it ended, or another runner took it over); nothing was stored"
    )
