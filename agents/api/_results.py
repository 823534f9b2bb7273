"""A turn's ``TurnResult`` from its events: the JSON reply, a background run's status,
and a webhook's payload are all built here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from agents.api.types import TurnResult
from agents.events import (
    AnswerEvent,
    ApprovalRequiredEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    TokenEvent,
    TurnUsage,
)

__all__ = ["turn_result"]

Status = Literal["running", "ok", "error", "paused", "interrupted"]


def turn_result(
    conversation_id: str, events: Sequence[Event], *, status: Status | None = None
) -> TurnResult:
    """The turn that ``events`` (its events so far, in order) describe. ``status``: the
    store's, for a turn read back (a turn without its done event yet is 'running');
    else the done event's, or 'error' when the turn has none."""
    stored = [e for e in events if not isinstance(e, TokenEvent)]
    done = next((e for e in reversed(stored) if isinstance(e, DoneEvent)), None)
    answer = next((e for e in reversed(stored) if isinstance(e, AnswerEvent)), None)
    error = next((e for e in reversed(stored) if isinstance(e, ErrorEvent)), None)
    if status is None:
        status = done.status if done is not None else "error"
    turn_id = done.turn_id if done is not None else None
    if turn_id is None:
        turn_id = next((e.turn_id for e in stored if e.turn_id is not None), None)
    return TurnResult(
        conversation_id=conversation_id,
        turn_id=turn_id,
        status=status,
        answer=answer.text if answer is not None else None,
        output=answer.output if answer is not None else None,
        agent=done.active_agent if done is not None else None,
        pending_approvals=[e for e in stored if isinstance(e, ApprovalRequiredEvent)]
        if status == "paused"
        else [],
        error=error if status == "error" else None,
        usage=done.usage if done is not None else TurnUsage(),
        events=stored,
    )
