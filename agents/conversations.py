"""``Conversations``: where a user message enters and a turn is driven to its end.

It serializes the turns of each conversation (one at a time, in arrival order; across
entry replicas the store's turn lease refuses a second replica's send with
``ConversationBusy``), stores the user message under its idempotency key before
anything else happens,
runs the turn on the conversation's active agent, and closes it with a stored
``done`` event. A retried send replays the stored turn instead of running it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from agents._streams import closing
from agents.errors import (
    ConversationNotFound,
    NoPendingApproval,
    RayAgentsError,
    UnknownAgentError,
)
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    MessageEvent,
    TurnUsage,
)
from agents.observability.logging import content
from agents.observability.scope import Scope
from agents.observability.tracing import carrier, end_span, start_span, trace_id_of
from agents.peers import Peers
from agents.protocol import (
    DEFAULT_MAX_HOPS,
    DecisionRequest,
    SendRequest,
    TurnContext,
    TurnRequest,
)
from agents.store._batch import busy
from agents.store.base import ConversationInfo, ConversationStore

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Conversations", "drive_turn"]

DEFAULT_TURN_TIMEOUT_S = 300.0
LEASE_GRACE_S = 10.0
_NEW_CONVERSATIONS = uuid.UUID("0b8f6a62-2f7e-4a57-9a8e-2b3f9d3c6a10")
RunTurn = Callable[[str, TurnRequest], AsyncIterator[Event]]
log = logging.getLogger("ray_agents.conversations")


class Conversations:
    """The entry to an application's agents (the API ingress wraps one)."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        peers: Peers,
        agents: Iterable[str],
        default_agent: str,
        max_hops: int = DEFAULT_MAX_HOPS,
        turn_timeout_s: float = DEFAULT_TURN_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agents = frozenset(agents)
        if default_agent not in self.agents:
            raise UnknownAgentError(f"default agent {default_agent!r} is not an agent of the app")
        self.default_agent = default_agent
        self._peers = peers
        self._max_hops = max_hops
        self._turn_timeout_s = turn_timeout_s
        self._clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def send(self, request: SendRequest) -> AsyncGenerator[Event, None]:
        """Store the message, run the turn, stream its events; ``done`` comes last."""
        key = request.idempotency_key or uuid.uuid4().hex
        # A retried first send (same key, no id yet) must land in the same conversation.
        conversation_id = request.conversation_id or (
            uuid.uuid5(_NEW_CONVERSATIONS, key).hex if request.idempotency_key else uuid.uuid4().hex
        )
        async with self._turn_lock(conversation_id):
            info = await self.store.conversation(conversation_id)
            agent = info.active_agent if info is not None else request.agent or self.default_agent
            self._check_agent(agent)
            turn = self._run_turn(
                conversation_id,
                agent,
                MessageEvent(content=request.message, agent=agent),
                key=key,
                timeout_s=request.timeout_s,
                variables=request.variables,
            )
            # A caller that leaves closes the turn now, not at garbage collection.
            async with closing(turn) as events:
                async for event in events:
                    yield event

    async def _run_turn(
        self,
        conversation_id: str,
        agent: str,
        opening: MessageEvent | ApprovalEvent,
        *,
        key: str,
        timeout_s: float | None,
        variables: dict[str, str],
    ) -> AsyncIterator[Event]:
        """Open (or find) the turn ``opening`` starts, then run it to its ``done``."""
        deadline = self._clock() + (timeout_s or self._turn_timeout_s)
        # The lease keeps other entry replicas off the conversation while this turn
        # runs; a runner that dies frees it once the deadline (and grace) passed.
        turn, created = await self.store.begin_turn(
            conversation_id,
            opening,
            idempotency_key=key,
            agent=agent,
            lease_until=deadline + LEASE_GRACE_S,
        )
        if not created and turn.leased(self._clock()):
            raise busy(conversation_id, turn.turn_id)  # the retried turn runs elsewhere
        stored = await self.store.events(
            conversation_id, after_seq=turn.user_seq - 1, turn_id=turn.turn_id
        )
        if not created and turn.status != "running":
            for event in stored:  # a retry of a finished turn: the stored events are
                if isinstance(event, DoneEvent):  # its result, as the first run gave it
                    event = event.model_copy(update={"last_seq": event.seq})
                yield event
            return
        # A new turn, or one whose runner died before closing it: run (on) from here.
        running = False
        try:
            for event in stored:
                yield event
            # The turn's span (a child of the API request's, if any) and its trace id
            # go to every agent the turn reaches; a random id when tracing is off.
            span = start_span(
                "conversation.turn",
                attributes={
                    "ray_agents.conversation_id": conversation_id,
                    "ray_agents.turn_id": turn.turn_id,
                    "ray_agents.agent": agent,
                },
            )
            context = TurnContext(
                conversation_id=conversation_id,
                turn_id=turn.turn_id,
                trace_id=trace_id_of(span) or uuid.uuid4().hex,
                trace=carrier(span),
                deadline=deadline,
                max_hops=self._max_hops,
                variables=variables,
            )
            after = stored[-1].seq if stored else turn.user_seq
            resume = stored[0] if isinstance(stored[0], ApprovalEvent) else None
            request = TurnRequest(context=context, after_seq=after or 0, resume=resume)
            running = True  # from here drive_turn closes the turn, however it ends
            driven = drive_turn(self.store, self._peers.run, agent, request)
            async with closing(_observed(driven, context, span, agent, opening)) as driving:
                async for event in driving:
                    yield event
        finally:
            if not running:  # the caller left before the turn ran: close it anyway
                await asyncio.shield(_fail(self.store, conversation_id, turn.turn_id))

    async def decide(self, request: DecisionRequest) -> AsyncGenerator[Event, None]:
        """Approve or reject a paused tool call and run the turn that resumes it.

        The decision is stored first and opens the resuming turn; deciding twice
        replays that turn. Raises ``NoPendingApproval`` when nothing waits for it.
        """
        conversation_id = request.conversation_id
        async with self._turn_lock(conversation_id):
            if await self.store.conversation(conversation_id) is None:
                raise ConversationNotFound(f"no conversation with id {conversation_id!r}")
            events = await self.store.events(conversation_id)
            pending = next(
                (
                    e
                    for e in reversed(events)
                    if isinstance(e, ApprovalRequiredEvent) and e.call_id == request.call_id
                ),
                None,
            )
            if pending is None:
                raise NoPendingApproval(
                    f"no tool call {request.call_id!r} waits for approval in {conversation_id!r}"
                )
            agent = pending.agent or self.default_agent
            decision = ApprovalEvent(
                call_id=request.call_id,
                approved=request.approved,
                reason=request.reason,
                agent=agent,
            )
            turn = self._run_turn(
                conversation_id,
                agent,
                decision,
                key=f"approval:{request.call_id}",
                timeout_s=request.timeout_s,
                variables={},
            )
            async with closing(turn) as resumed:
                async for event in resumed:
                    yield event

    async def create(
        self,
        *,
        agent: str | None = None,
        owner: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ConversationInfo:
        """Start an empty conversation whose first message ``agent`` answers."""
        agent = agent or self.default_agent
        self._check_agent(agent)
        return await self.store.create(
            uuid.uuid4().hex, agent=agent, owner=owner, metadata=metadata
        )

    async def get(self, conversation_id: str) -> ConversationInfo | None:
        """The conversation's header, or None."""
        return await self.store.conversation(conversation_id)

    async def delete(self, conversation_id: str) -> bool:
        """Delete a conversation; ``ConversationBusy`` while one of its turns runs."""
        return await self.store.delete(conversation_id)

    async def history(
        self, conversation_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The stored events of a conversation (at most ``limit`` of them)."""
        return await self.store.events(conversation_id, after_seq=after_seq, limit=limit)

    def _check_agent(self, agent: str) -> None:
        if agent not in self.agents:
            raise UnknownAgentError(
                f"unknown agent {agent!r}; the app's agents: {', '.join(sorted(self.agents))}"
            )

    @asynccontextmanager
    async def _turn_lock(self, conversation_id: str) -> AsyncIterator[None]:
        # One lock per conversation with waiters; dropped when nobody holds or waits.
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users == 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)


async def drive_turn(
    store: ConversationStore, run: RunTurn, agent: str, request: TurnRequest
) -> AsyncIterator[Event]:
    """Run a turn on ``agent`` and close it with a stored ``done`` event.

    An agent that cannot be reached or dies mid-turn ends the turn with a stored
    ``error`` event; what was stored before stays.
    """
    ctx = request.context
    done: DoneEvent | None = None
    closed = False
    try:
        try:
            async with closing(run(agent, request)) as events:
                async for event in events:
                    if isinstance(event, DoneEvent):
                        done = event
                    else:
                        yield event
        except RayAgentsError as exc:
            error = ErrorEvent(code=exc.code, message=exc.message, agent=agent, turn_id=ctx.turn_id)
            [stored] = await store.append(ctx.conversation_id, [error])
            yield stored
        if done is None:
            final = DoneEvent(status="error", usage=TurnUsage(hops=ctx.hops), active_agent=agent)
        else:
            final = done.model_copy(update={"seq": None})
        final = final.model_copy(
            update={
                "turn_id": ctx.turn_id,
                "agent": final.agent or agent,
                "conversation_id": ctx.conversation_id,
            }
        )
        [stored_done] = await store.append(ctx.conversation_id, [final])
        closed = True
        yield stored_done.model_copy(update={"last_seq": stored_done.seq})
    finally:
        if not closed:
            # The caller went away (or the store failed) mid-turn: do not leave it running.
            await asyncio.shield(_fail(store, ctx.conversation_id, ctx.turn_id))


async def _observed(
    events: AsyncIterator[Event],
    ctx: TurnContext,
    span: Span,
    agent: str,
    opening: MessageEvent | ApprovalEvent,
) -> AsyncIterator[Event]:
    """The turn's events, each produced inside its span with its conversation and
    trace in the log fields; a log line when it starts and one when it ends."""
    scope = Scope(span, conversation_id=ctx.conversation_id, trace_id=ctx.trace_id)
    said = content(user_message=opening.content) if isinstance(opening, MessageEvent) else {}
    with scope.active():
        log.info("turn started", extra={"turn_id": ctx.turn_id, "agent": agent, **said})
    answer: dict[str, str] = {}
    status = "cancelled"
    try:
        async with closing(scope.stream(events)) as scoped:
            async for event in scoped:
                if isinstance(event, AnswerEvent):
                    answer = content(answer=event.text)
                elif isinstance(event, DoneEvent):
                    status = event.status
                    with scope.active():
                        log.info(
                            "turn ended",
                            extra={
                                "turn_id": ctx.turn_id,
                                "status": event.status,
                                "active_agent": event.active_agent,
                                "steps": event.usage.steps,
                                "hops": event.usage.hops,
                                **answer,
                            },
                        )
                yield event
    finally:
        span.set_attribute("ray_agents.status", status)
        end_span(span, None if status in ("ok", "paused") else status)


async def _fail(store: ConversationStore, conversation_id: str, turn_id: str) -> None:
    # Close the turn the way every turn closes (error, then done), so a retry that
    # replays it still ends with done.
    error = ErrorEvent(
        code="cancelled", message="the caller went away before the turn ended", turn_id=turn_id
    )
    try:
        await store.append(conversation_id, [error, DoneEvent(status="error", turn_id=turn_id)])
    except RayAgentsError:
        pass  # the store is down; the turn's lease runs out and frees the conversation
