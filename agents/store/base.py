"""The conversation store: the durable truth behind every agent replica's cache.

A conversation is an append-only log of events with gap-free sequence numbers
(1, 2, 3, ...). Appends are atomic and totally ordered per conversation even when many
processes write at once. A turn starts with ``begin_turn``, which stores the user
message under an idempotency key: a retried send finds the turn it already started
instead of storing the message twice. A ``done`` event closes its turn.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.events import ApprovalEvent, Event, MessageEvent

__all__ = ["ConversationInfo", "ConversationStore", "TurnRecord", "Usage", "UsageTotals"]

TurnStatus = Literal["running", "ok", "error", "paused", "interrupted"]
DeliveryState = Literal["pending", "delivered", "failed"]


class ConversationInfo(BaseModel):
    """A conversation's header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conversation_id: str
    active_agent: str = Field(description="The agent that answers the next turn.")
    last_seq: int = Field(description="Seq of the newest event; 0 when empty.")
    created_at: datetime
    updated_at: datetime
    owner: str | None = Field(
        None, description="The tenant it belongs to (the API's key holder); None: anyone."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="The creator's own labels, stored as given."
    )


class TurnRecord(BaseModel):
    """One turn: the user message that opened it and how it ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conversation_id: str
    turn_id: str
    idempotency_key: str
    user_seq: int = Field(description="Seq of the user message that opened the turn.")
    status: TurnStatus = Field(description="'running' until a done event closes it.")
    lease_until: float | None = Field(
        None, description="Epoch seconds the turn's runner holds the conversation until."
    )
    runner: str | None = Field(
        None, description="Who holds the lease: the id of the attempt that runs the turn."
    )
    fingerprint: str | None = Field(
        None,
        description=(
            "A digest of the request that opened the turn (its message, variables, ...), "
            "so a reuse of its idempotency key for another request can be told from a retry."
        ),
    )
    variables: tuple[tuple[str, str], ...] = Field(
        (),
        description=(
            "The caller's variables for the turn, as sorted (name, value) pairs (the "
            "record stays hashable): a resumed turn runs with them too."
        ),
    )

    webhook: str | None = Field(
        None, description="The URL told when the turn ends (a background run's webhook)."
    )
    delivery: DeliveryState | None = Field(
        None,
        description=(
            "The webhook's delivery: 'pending' until a sender has it answered "
            "('delivered') or gives up ('failed'); None without a webhook."
        ),
    )
    delivery_until: float | None = Field(
        None, description="Epoch seconds a sender holds the pending delivery until."
    )

    def leased(self, now: float) -> bool:
        """Whether the turn still runs under a live lease."""
        return self.status == "running" and self.lease_until is not None and self.lease_until > now


class Usage(BaseModel):
    """Tokens one tenant's agent used with one model on one day (UTC), in one
    conversation: what ``add_usage`` adds to, and a row of ``usage``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="UTC date, YYYY-MM-DD.")
    conversation_id: str = ""
    agent: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    calls: int = Field(0, description="Generate calls counted.")

    @property
    def tokens(self) -> int:
        """What budgets count: prompt and completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class UsageTotals(BaseModel):
    """Tokens (prompt + completion) spent so far, as budgets count them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_day: int = 0
    tenant_month: int = 0
    conversation: int = 0


class ConversationStore(abc.ABC):
    """Where conversations live. Implementations: ``SQLiteStore``, ``PostgresStore``.

    Every method is safe to call concurrently, from many tasks and many processes.
    """

    async def open(self) -> None:  # noqa: B027 - an optional hook
        """Connect and create the schema if needed; called once before use."""

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections."""

    @abc.abstractmethod
    async def create(
        self,
        conversation_id: str,
        *,
        agent: str,
        owner: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ConversationInfo:
        """Create an empty conversation whose first turn ``agent`` answers.

        An id that exists already is left as it is, and its header is returned.
        """

    @abc.abstractmethod
    async def delete(self, conversation_id: str, *, force: bool = False) -> bool:
        """Delete the conversation with its events and turns; False if it did not exist.

        Raises ``ConversationBusyError`` while one of its turns runs under a live lease,
        unless ``force``: then the turn's runner finds its lease gone and stops.
        """

    @abc.abstractmethod
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
        """Store ``message`` and open a turn, creating the conversation if new.

        The opening event is a user message, or a person's decision on a pending
        tool call (which opens the turn that resumes the paused one).

        ``agent`` becomes the active agent of a new conversation. Returns the turn and
        whether it is new; when ``idempotency_key`` was seen before in this
        conversation, nothing is stored and the earlier turn is returned with False.
        The stored message gets the turn's ``turn_id`` and its ``seq``; ``fingerprint``
        is kept with the turn as given (the caller's digest of its request), and so are
        ``variables`` (the caller's, which a resumed turn runs with). A ``webhook``
        makes the turn's delivery 'pending' (see ``undelivered``).

        With ``lease_until`` (epoch seconds; the runner renews it with ``lease_turn``
        while the turn runs) the turn is exclusive and held by ``runner``: while another
        turn of the conversation runs under a live lease, nothing is stored and
        ``ConversationBusyError`` is raised; a running turn whose lease ran out (its runner
        died) is closed first, in the log: a ``runner_lost`` error and a ``done``.
        Without a lease, turns never conflict.

        ``queued``: the send holds a place in the conversation's queue (``take_place``)
        under ``idempotency_key``. While a live place ahead of it waits, nothing is
        stored and ``ConversationBusyError`` is raised; the turn that opens leaves its
        place, in the same transaction.
        """

    @abc.abstractmethod
    async def take_place(self, conversation_id: str, idempotency_key: str, *, until: float) -> None:
        """Join the conversation's queue behind every send that joined before (or, for
        a key that holds a place, keep it): turns of queued sends open in this order.

        A place is live until ``until`` (epoch seconds, kept with ``renew_place``): the
        place of a sender that died stops holding up those behind it once it lapses.
        """

    @abc.abstractmethod
    async def renew_place(
        self, conversation_id: str, idempotency_key: str, *, until: float
    ) -> None:
        """Keep a place live until ``until``; a place that was left stays left."""

    @abc.abstractmethod
    async def leave_place(self, conversation_id: str, idempotency_key: str) -> None:
        """Leave the queue (a send that stops waiting); no place is no error."""

    @abc.abstractmethod
    async def append(
        self, conversation_id: str, events: Sequence[Event], *, runner: str | None = None
    ) -> list[Event]:
        """Append events atomically, in order; returns them with their ``seq`` set.

        A ``handoff`` event makes its ``to_agent`` the active agent; a ``done`` event
        closes its turn with its status. Token events are refused (never stored).
        Raises ``ConversationNotFoundError`` for an unknown conversation.

        With ``runner`` the write is fenced: every event's turn must still run, held by
        ``runner``; otherwise nothing is stored and ``LeaseLostError`` is raised (a stalled
        runner whose turn was taken over cannot write into it).
        """

    @abc.abstractmethod
    async def events(
        self,
        conversation_id: str,
        *,
        after_seq: int = 0,
        turn_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Stored events with ``seq > after_seq`` (of one turn if given), in order;
        at most ``limit`` of them when given."""

    @abc.abstractmethod
    async def conversation(self, conversation_id: str) -> ConversationInfo | None:
        """The conversation's header, or None if it does not exist."""

    @abc.abstractmethod
    async def turn(self, conversation_id: str, idempotency_key: str) -> TurnRecord | None:
        """The turn opened under ``idempotency_key``, or None."""

    @abc.abstractmethod
    async def turn_by_id(self, conversation_id: str, turn_id: str) -> TurnRecord | None:
        """The turn with ``turn_id``, or None."""

    @abc.abstractmethod
    async def lease_turn(
        self,
        conversation_id: str,
        turn_id: str,
        *,
        runner: str,
        lease_until: float,
        force: bool = False,
    ) -> bool:
        """Hold a running turn for ``runner`` until ``lease_until``; whether it did.

        It renews ``runner``'s own lease, or takes over a turn whose lease ran out (its
        runner died). False when the turn ended or another runner's lease is live;
        with ``force`` a live lease is taken too (a newer message interrupts the turn:
        its runner's next fenced write or renewal finds the lease gone, and it stops).
        """

    @abc.abstractmethod
    async def running_turn(self, conversation_id: str) -> TurnRecord | None:
        """The conversation's running turn (live lease or not), or None."""

    @abc.abstractmethod
    async def undelivered(self, now: float, *, limit: int = 100) -> list[TurnRecord]:
        """Ended turns whose webhook delivery is pending and held by no sender at
        ``now``: their sender died, or nobody sent it yet."""

    @abc.abstractmethod
    async def claim_delivery(self, conversation_id: str, turn_id: str, *, until: float) -> bool:
        """Hold a pending delivery until ``until`` (epoch seconds), if nobody holds it
        now; whether it did. One sender at a time sends a webhook."""

    @abc.abstractmethod
    async def end_delivery(
        self, conversation_id: str, turn_id: str, state: Literal["delivered", "failed"]
    ) -> None:
        """Record how a turn's webhook delivery ended."""

    @abc.abstractmethod
    async def stale_turns(self, now: float, *, limit: int = 100) -> list[TurnRecord]:
        """Running turns whose lease ran out before ``now``: their runners died."""

    @abc.abstractmethod
    async def fail_turn(self, conversation_id: str, turn_id: str) -> None:
        """Mark a turn that died without its done event as ended in error."""

    @abc.abstractmethod
    async def add_usage(self, usage: Usage) -> None:
        """Add a generate call's tokens to its (tenant, day, conversation, agent, model)
        row. Rows outlive their conversation: they are what was spent."""

    @abc.abstractmethod
    async def usage_totals(self, tenant: str, conversation_id: str, day: str) -> UsageTotals:
        """The tenant's tokens on ``day`` (YYYY-MM-DD) and in its month, and the
        conversation's tokens (all days)."""

    @abc.abstractmethod
    async def usage(self, tenant: str, *, start: str, end: str) -> list[Usage]:
        """The tenant's usage per day, agent and model (conversations summed, so
        ``conversation_id`` is empty) from ``start`` to ``end`` (both included), in
        day, agent, model order."""
