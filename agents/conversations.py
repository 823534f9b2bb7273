"""``Conversations``: where a user message enters and a turn is driven to its end.

It serializes the turns of each conversation (one at a time, in arrival order; across
entry replicas the store's turn lease refuses a second replica's send with
``ConversationBusyError``), stores the user message under its idempotency key before
anything else happens, runs the turn on the conversation's active agent, and closes it
with a stored ``done`` event.

Recovery, without a person:

- The runner renews the turn's lease every few seconds (``lease_s``). A runner that
  dies stops renewing; once its lease runs out the turn is *stale*.
- A retried send (same idempotency key) joins its turn: it streams the stored events,
  waits while a live runner goes on, takes a stale turn over and resumes it, and
  replays a finished one. Never a 409, never a second message. ``after_seq`` (an SSE
  ``Last-Event-ID``) skips what the caller already has.
- ``recover`` (run every few seconds by the entry deployments) resumes stale turns
  nobody retried; a new message to a conversation whose turn is stale closes that turn
  with ``runner_lost`` and ``done``.
- ``drive_turn`` resumes a turn whose agent replica died (``PeerLostError``) from the
  stored log, on another replica, a bounded number of times (``RECOVERY_DELAYS_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from agents._streams import closing
from agents.errors import (
    ConversationBusyError,
    ConversationNotFoundError,
    IdempotencyMismatchError,
    LeaseLostError,
    NoPendingApprovalError,
    RayAgentsError,
    UnknownAgentError,
    remote_cause,
)
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TurnUsage,
)
from agents.observability import metrics as m
from agents.observability.logging import content
from agents.observability.scope import Scope
from agents.observability.tracing import carrier, end_span, start_span, trace_id_of
from agents.peers import Peers
from agents.protocol import (
    DEFAULT_MAX_HOPS,
    Budget,
    DecisionRequest,
    Multitask,
    SendRequest,
    TokenBudgets,
    TurnContext,
    TurnRequest,
)
from agents.store.base import ConversationInfo, ConversationStore, TurnRecord

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["ENDS", "Conversations", "drive_turn"]

DEFAULT_TURN_TIMEOUT_S = 300.0
DEFAULT_LEASE_S = 6.0
"""How long a turn's runner holds it without renewing; it renews every third of it."""
JOIN_POLL_S = 0.2
"""How often a joined send looks for the events of a turn that runs elsewhere."""
RECOVERY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
"""The pauses before each resumption of a turn whose agent replica died: 4 tries in
about 7.5 s, the time Serve takes to notice a dead replica and route around it."""
_NEW_CONVERSATIONS = uuid.UUID("0b8f6a62-2f7e-4a57-9a8e-2b3f9d3c6a10")
_DECISION_WINDOW = 16
"""Events read at a time, newest first, to find the call a decision is for."""
RunTurn = Callable[[str, TurnRequest], AsyncIterator[Event]]
Stop = Literal["interrupt", "rollback", "cancel"]
"""Why a running turn is stopped: a newer message's policy, or a caller's cancel."""
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
        lease_s: float = DEFAULT_LEASE_S,
        recovery_delays_s: Sequence[float] = RECOVERY_DELAYS_S,
        multitask: Multitask = "enqueue",
        budgets: TokenBudgets | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.agents = frozenset(agents)
        if default_agent not in self.agents:
            raise UnknownAgentError(f"default agent {default_agent!r} is not an agent of the app")
        self.default_agent = default_agent
        self.multitask: Multitask = multitask
        """What a new message does to a turn that still runs, unless it says."""
        self.budgets = budgets or TokenBudgets()
        """The token budgets of a turn whose send brings none (and of resumed turns)."""
        self._peers = peers
        self._max_hops = max_hops
        self._turn_timeout_s = turn_timeout_s
        self._lease_s = lease_s
        self._recovery_delays_s = tuple(recovery_delays_s)
        self._clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # The turns this replica runs: set the event to stop one (it lost its lease).
        self._running: dict[tuple[str, str], asyncio.Event] = {}

    async def send(self, request: SendRequest) -> AsyncGenerator[Event, None]:
        """Store the message, run the turn, stream its events; ``done`` comes last.

        A retried send (the same idempotency key) joins the turn its first attempt
        started, wherever that runs, instead of running it again. A new message to a
        conversation whose turn still runs follows its ``multitask`` policy (the app's
        default when it names none): reject it, queue behind it, or interrupt it.
        """
        key = request.idempotency_key or uuid.uuid4().hex
        # A retried first send (same key, no id yet) must land in the same conversation.
        conversation_id = request.conversation_id or (
            uuid.uuid5(_NEW_CONVERSATIONS, key).hex if request.idempotency_key else uuid.uuid4().hex
        )
        policy = request.multitask or self.multitask
        # A retry of a turn (its key) joins it whatever the policy: only a new one makes way.
        if policy != "enqueue" and (
            request.idempotency_key is None or await self.store.turn(conversation_id, key) is None
        ):
            await self._make_way(conversation_id, policy)
        # An enqueued message to a conversation takes its place in the store's queue as
        # it comes, so turns open in arrival order across every replica.
        queued = policy == "enqueue" and request.conversation_id is not None
        async with self._in_line(conversation_id, key, queued) as begun:
            # Queued sends wait by their places, not by this replica's lock: a lock taken
            # out of place order would hold up the send ahead of its holder.
            async with self._turn_lock(conversation_id, exclusive=not queued):
                info = await self.store.conversation(conversation_id)
                agent = (
                    info.active_agent if info is not None else request.agent or self.default_agent
                )
                self._check_agent(agent)
                turn = self._run_turn(
                    conversation_id,
                    agent,
                    MessageEvent(content=request.message, agent=agent),
                    key=key,
                    timeout_s=request.timeout_s,
                    variables=request.variables,
                    after_seq=request.after_seq,
                    tokens=request.tokens,
                    fingerprint=_fingerprint(request),
                    wait=policy != "reject",
                    webhook=request.webhook,
                    budgets=request.budgets,
                    tenant=info.owner or "" if info is not None else "",
                    begun=begun,
                )
                # A caller that leaves closes the turn now, not at garbage collection.
                async with closing(turn) as events:
                    async for event in events:
                        yield event

    @asynccontextmanager
    async def _in_line(
        self, conversation_id: str, key: str, queued: bool
    ) -> AsyncIterator[asyncio.Event | None]:
        """Hold the send's place in the conversation's queue until its turn opens
        (yields the event the turn sets then), renewing it while the send waits; a
        send that stops waiting leaves the queue. Not ``queued``: yields None."""
        if not queued:
            yield None
            return
        begun = asyncio.Event()
        await self.store.take_place(conversation_id, key, until=self._lease())

        async def renew() -> None:
            while not begun.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(begun.wait(), self._lease_s / 3)
                if not begun.is_set():
                    await self.store.renew_place(conversation_id, key, until=self._lease())

        renewing = asyncio.create_task(renew())
        try:
            yield begun
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, RayAgentsError):
                await renewing
            if not begun.is_set():  # it gave up (timeout, caller gone, error): step out
                # A store that fails here must not hide why the send gave up: its
                # place lapses with its lease and the sends behind it move on.
                with contextlib.suppress(RayAgentsError):
                    await self.store.leave_place(conversation_id, key)

    async def interrupt(
        self, conversation_id: str, turn_id: str, *, policy: Stop = "interrupt"
    ) -> bool:
        """Stop a running turn and close it with ``done(status="interrupted")``;
        whether it was running.

        The turn's lease is taken from its runner, so nothing it writes from now on is
        stored: what it stored before stays. Its generation and tool call stop at once
        when it runs here, at its runner's next write or lease renewal when it runs on
        another replica. With ``policy`` 'rollback' the turn leaves the history the
        agents see (its events stay in the log; its done event says ``rolled_back``) and
        the conversation's active agent goes back to the one the turn began with.
        ('cancel': a caller stopped it, without a new message.)
        """
        rollback = policy == "rollback"
        stopper = uuid.uuid4().hex
        taken = await self.store.lease_turn(
            conversation_id, turn_id, runner=stopper, lease_until=self._lease(), force=True
        )
        if not taken:
            return False  # it ended meanwhile
        opening = await self.store.events(conversation_id, turn_id=turn_id, limit=1)
        info = await self.store.conversation(conversation_id)
        began = opening[0].agent if opening else None
        agent = began if rollback else (info.active_agent if info is not None else None)
        done = DoneEvent(
            status="interrupted",
            rolled_back=rollback,
            turn_id=turn_id,
            agent=agent,
            active_agent=agent,
            conversation_id=conversation_id,
        )
        try:
            await self.store.append(conversation_id, [done], runner=stopper)
        except LeaseLostError:
            return False  # its runner closed it between the two: it ended on its own
        stopped = self._running.get((conversation_id, turn_id))
        if stopped is not None:
            stopped.set()
        m.TURNS_INTERRUPTED.inc(policy=policy)
        log.info(
            "turn interrupted",
            extra={"conversation_id": conversation_id, "turn_id": turn_id, "policy": policy},
        )
        return True

    async def _make_way(self, conversation_id: str, policy: Multitask) -> None:
        """Before a new turn opens: refuse it, or stop the turn that runs (``policy``).
        An ``enqueue``d turn waits for the turn lock and the store's lease instead."""
        if policy == "enqueue":
            return
        running = await self.store.running_turn(conversation_id)
        if policy == "reject":
            # A turn of this conversation that runs, or waits to run, on this replica.
            if conversation_id in self._locks or (
                running is not None and running.leased(self._clock())
            ):
                raise ConversationBusyError(
                    f"conversation {conversation_id!r} is busy: a turn is still running "
                    "(multitask 'reject'); retry when it ends, or send with 'enqueue', "
                    "'interrupt' or 'rollback'"
                )
            return
        if running is not None:
            stop: Stop = "rollback" if policy == "rollback" else "interrupt"
            await self.interrupt(conversation_id, running.turn_id, policy=stop)

    async def recover(self, *, limit: int = 100) -> int:
        """Resume the turns whose runner died and that nobody retried; how many.

        Each stale turn is taken over (its lease, atomically: one replica wins) and
        run on from its stored log to its ``done``, so no turn stays open.
        """
        claimed = []
        for turn in await self.store.stale_turns(self._clock(), limit=limit):
            runner = uuid.uuid4().hex
            if await self.store.lease_turn(
                turn.conversation_id, turn.turn_id, runner=runner, lease_until=self._lease()
            ):  # else another replica (or the retried send) took it
                claimed.append((turn, runner))
        outcomes = await asyncio.gather(
            *(self._resume(turn, runner) for turn, runner in claimed), return_exceptions=True
        )
        for (turn, _), outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # each turn closed itself; say why
                log.warning(
                    "a resumed turn failed: %s",
                    outcome,
                    extra={"conversation_id": turn.conversation_id, "turn_id": turn.turn_id},
                )
        return len(claimed)

    async def _resume(self, turn: TurnRecord, runner: str) -> None:
        log.warning(
            "resuming a turn whose runner died",
            extra={"conversation_id": turn.conversation_id, "turn_id": turn.turn_id},
        )
        async with self._turn_lock(turn.conversation_id):
            # The caller's variables were stored with the turn: it goes on with them.
            events = self._continue(
                turn,
                runner,
                agent=None,
                seen=0,
                timeout_s=None,
                variables=dict(turn.variables),
                tokens=False,
            )
            async with closing(events) as running:
                async for _ in running:
                    pass

    async def _run_turn(
        self,
        conversation_id: str,
        agent: str,
        opening: MessageEvent | ApprovalEvent,
        *,
        key: str,
        timeout_s: float | None,
        variables: dict[str, str],
        after_seq: int = 0,
        tokens: bool = True,
        fingerprint: str | None = None,
        wait: bool = True,
        webhook: str | None = None,
        budgets: TokenBudgets | None = None,
        tenant: str | None = None,
        begun: asyncio.Event | None = None,
    ) -> AsyncIterator[Event]:
        """Open the turn ``opening`` starts, or join the one its key opened before,
        and stream it to its ``done``, leaving out events up to ``after_seq``.
        ``fingerprint`` digests the request; a join must bring the same one. While
        another replica's turn of the conversation runs, ``wait`` for it to end (up to
        the turn's deadline) instead of raising ``ConversationBusyError``."""
        runner = uuid.uuid4().hex
        waited_until = self._clock() + (timeout_s or self._turn_timeout_s)
        while True:
            try:
                turn, created = await self.store.begin_turn(
                    conversation_id,
                    opening,
                    idempotency_key=key,
                    agent=agent,
                    lease_until=self._lease(),
                    runner=runner,
                    fingerprint=fingerprint,
                    variables=variables,
                    webhook=webhook,
                    queued=begun is not None,
                )
                if begun is not None:
                    begun.set()  # its place in the queue is left with the turn's opening
                break
            except ConversationBusyError:
                if not wait or self._clock() >= waited_until:
                    raise
                await asyncio.sleep(JOIN_POLL_S)
                # The turn it waits for may hand the conversation to another agent: a
                # message goes to whoever is active once it is stored.
                info = await self.store.conversation(conversation_id)
                if info is not None and isinstance(opening, MessageEvent):
                    agent = info.active_agent
                    opening = opening.model_copy(update={"agent": agent})
        run_on: dict[str, Any] = {
            "timeout_s": timeout_s,
            "variables": variables,
            "tokens": tokens,
            "budgets": budgets,
            "tenant": tenant,
        }
        if created:
            events = self._continue(turn, runner, agent=agent, seen=after_seq, **run_on)
        else:
            await self._check_same(turn, opening, key, fingerprint)
            # A retry: follow the turn while it runs elsewhere, take it over if its
            # runner died, replay it if it ended.
            events = self._follow(turn, after_seq, **run_on)
        async with closing(events) as running:
            async for event in running:
                yield event

    async def _follow(self, turn: TurnRecord, seen: int, **run_on: Any) -> AsyncIterator[Event]:
        """Follow a turn another runner holds, from the store, to its ``done`` (yielded
        with ``last_seq``), leaving out events up to ``seen``; if that runner dies
        too, take the turn over and run it on (``run_on``: ``_continue``'s arguments)."""
        conversation_id = turn.conversation_id
        runner = uuid.uuid4().hex
        while True:
            stored = await self.store.events(
                conversation_id, after_seq=max(seen, turn.user_seq - 1), turn_id=turn.turn_id
            )
            for event in stored:
                seen = event.seq or seen
                if isinstance(event, DoneEvent):  # its result, as the runner gave it
                    yield event.model_copy(update={"last_seq": event.seq})
                    return
                yield event
            current = await self.store.turn_by_id(conversation_id, turn.turn_id)
            if current is None:
                raise LeaseLostError(
                    f"turn {turn.turn_id} was stopped: its conversation was deleted"
                )
            if current.status != "running":
                continue  # it ended since: its done is stored, read it
            if not current.leased(self._clock()) and await self.store.lease_turn(
                conversation_id, turn.turn_id, runner=runner, lease_until=self._lease()
            ):
                break  # its runner died: this one runs it on, reading where it got to
            await asyncio.sleep(JOIN_POLL_S)
        events = self._continue(turn, runner, agent=None, seen=seen, **run_on)
        async with closing(events) as running:
            async for event in running:
                yield event

    async def _check_same(
        self,
        turn: TurnRecord,
        opening: MessageEvent | ApprovalEvent,
        key: str,
        fingerprint: str | None,
    ) -> None:
        """Refuse a retry whose request differs from the one that opened the turn: its
        stored opening event, and the fingerprint of the rest (turns stored before
        fingerprints were kept have none: their opening event alone decides)."""
        first = await self.store.events(
            turn.conversation_id, after_seq=turn.user_seq - 1, turn_id=turn.turn_id, limit=1
        )
        fields = ("type", "content", "call_id", "approved")
        differs = bool(first) and any(
            getattr(first[0], f, None) != getattr(opening, f, None) for f in fields
        )
        if differs or turn.fingerprint not in (None, fingerprint):
            raise IdempotencyMismatchError(
                f"idempotency key {key!r} was used for a different request in this "
                "conversation; a retry must repeat it exactly (a new message needs a new key)"
            )

    async def _continue(
        self,
        turn: TurnRecord,
        runner: str,
        *,
        agent: str | None,
        seen: int,
        timeout_s: float | None,
        variables: dict[str, str],
        tokens: bool,
        budgets: TokenBudgets | None = None,
        tenant: str | None = None,
    ) -> AsyncIterator[Event]:
        """Run a turn this runner holds from its stored events to its ``done``,
        renewing its lease meanwhile; events up to ``seen`` are not yielded again.
        ``agent`` runs it; None: the conversation's active agent, read from the store.
        ``tokens``: whether its answers stream token events."""
        conversation_id = turn.conversation_id
        deadline = self._clock() + (timeout_s or self._turn_timeout_s)
        running = False
        taken = False
        lost = self._running[(conversation_id, turn.turn_id)] = asyncio.Event()
        renewing = asyncio.create_task(self._renew(turn, runner, lost))
        try:
            stored = await self.store.events(
                conversation_id, after_seq=turn.user_seq - 1, turn_id=turn.turn_id
            )
            for event in stored:
                if (event.seq or 0) > seen:
                    seen = event.seq or seen
                    yield event
            if agent is None or tenant is None:  # a resumed turn: read where it got to
                info = await self.store.conversation(conversation_id)
                tenant = info.owner or "" if info is not None else ""
                if agent is None:  # it goes on at the agent it has reached
                    agent = info.active_agent if info is not None else self.default_agent
            limits = budgets or self.budgets
            budget = Budget(
                tenant=tenant,
                conversation_id=conversation_id,
                **limits.model_dump(),
            )
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
                runner=runner,
                tokens=tokens,
                budget=budget,
            )
            opening = stored[0]
            resume = opening if isinstance(opening, ApprovalEvent) else None
            request = TurnRequest(
                context=context,
                after_seq=stored[-1].seq or 0,
                resume=resume,
                retry=len(stored) > 1,  # a runner died after the turn began: go on
            )
            running = True  # from here drive_turn closes the turn, however it ends
            driven = drive_turn(
                self.store,
                self._peers.run,
                agent,
                request,
                tail=stored[-1],
                recovery_delays_s=self._recovery_delays_s,
            )
            observed = _observed(driven, context, span, agent, opening)
            try:
                async with closing(_until_lost(observed, lost, turn)) as driving:
                    async for event in driving:
                        seen = max(seen, event.seq or 0)
                        yield event
            except LeaseLostError:
                # Another runner holds the turn now: a newer message that interrupted
                # it, or a replica that took it over after this one stalled past its
                # lease. Either stores the rest of the turn: the caller follows it.
                taken = True
        finally:
            self._running.pop((conversation_id, turn.turn_id), None)
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            if not running:  # the caller left before the turn ran: close it anyway
                await asyncio.shield(_fail(self.store, conversation_id, turn.turn_id, None, runner))
        if taken:
            rest = self._follow(
                turn,
                seen,
                timeout_s=timeout_s,
                variables=variables,
                tokens=tokens,
                budgets=budgets,
                tenant=tenant,
            )
            async with closing(rest) as following:
                async for event in following:
                    yield event

    async def _renew(self, turn: TurnRecord, runner: str, lost: asyncio.Event) -> None:
        """Keep renewing the turn's lease while it runs (a task of ``_continue``); set
        ``lost`` once the store says the turn is no longer this runner's."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                held = await self.store.lease_turn(
                    turn.conversation_id, turn.turn_id, runner=runner, lease_until=self._lease()
                )
            except RayAgentsError as exc:  # the store hiccuped; the lease has time left
                log.warning("could not renew a turn's lease: %s", exc)
                continue
            if not held:  # it ended, was deleted, or (after a stall) was taken over
                lost.set()
                return

    def _lease(self) -> float:
        return self._clock() + self._lease_s

    async def decide(self, request: DecisionRequest) -> AsyncGenerator[Event, None]:
        """Approve or reject a paused tool call and run the turn that resumes it.

        The decision is stored first and opens the resuming turn; deciding twice the
        same way replays that turn. Raises ``NoPendingApprovalError`` when nothing waits for
        it: no such call, a call a later message closed, or one already decided the
        other way.
        """
        conversation_id = request.conversation_id
        key = f"approval:{request.call_id}"
        async with self._turn_lock(conversation_id):
            info = await self.store.conversation(conversation_id)
            if info is None:
                raise ConversationNotFoundError(f"no conversation with id {conversation_id!r}")
            decided = await self.store.turn(conversation_id, key)
            variables: dict[str, str] = {}
            if decided is not None:
                agent = await self._decided_agent(decided, request)
                variables = dict(decided.variables)
            else:
                pending = await self._pending_approval(info, request.call_id)
                agent = pending.agent or self.default_agent
                # The resumed turn renders the prompt the paused one did: its variables.
                paused = await self.store.turn_by_id(conversation_id, pending.turn_id or "")
                variables = dict(paused.variables) if paused is not None else {}
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
                key=key,
                timeout_s=request.timeout_s,
                variables=variables,
                tokens=request.tokens,
                budgets=request.budgets,
                tenant=info.owner or "",
            )
            async with closing(turn) as resumed:
                async for event in resumed:
                    yield event

    async def _pending_approval(
        self, info: ConversationInfo, call_id: str
    ) -> ApprovalRequiredEvent:
        """The call's ``approval_required`` event, if the call still waits; else raise.

        Only the conversation's last turn can hold a waiting call (a new message closes
        the calls before it, a decision opens the turn that runs its call), so the log
        is read backwards, a few events at a time, back to that turn's opening event.
        """
        conversation_id = info.conversation_id
        upper = info.last_seq
        while upper > 0:
            lower = max(0, upper - _DECISION_WINDOW)
            window = await self.store.events(conversation_id, after_seq=lower, limit=upper - lower)
            for event in reversed(window):
                if isinstance(event, ApprovalRequiredEvent) and event.call_id == call_id:
                    return event
                if isinstance(event, MessageEvent | ApprovalEvent):
                    upper = 0  # the last turn's opening: no call before it waits
                    break
            else:
                upper = lower
        raise NoPendingApprovalError(
            f"no tool call {call_id!r} waits for approval in {conversation_id!r} (a later "
            "message closes the calls that waited before it)"
        )

    async def _decided_agent(self, turn: TurnRecord, request: DecisionRequest) -> str:
        """The agent of the decision that opened ``turn``; a repeat of it replays the
        turn, the opposite decision is refused (the call no longer waits)."""
        [made] = await self.store.events(
            turn.conversation_id, after_seq=turn.user_seq - 1, turn_id=turn.turn_id, limit=1
        )
        if not isinstance(made, ApprovalEvent) or made.approved != request.approved:
            verdict = (
                "approved" if isinstance(made, ApprovalEvent) and made.approved else "rejected"
            )
            raise NoPendingApprovalError(
                f"tool call {request.call_id!r} was already {verdict}; it waits for no decision"
            )
        return made.agent or self.default_agent

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
        """Delete a conversation, stopping a turn of it that runs (its generation and
        tool call too): here at once, on another replica at its next lease renewal."""
        deleted = await self.store.delete(conversation_id, force=True)
        for (running, _), lost in list(self._running.items()):
            if running == conversation_id:
                lost.set()
        return deleted

    async def history(
        self, conversation_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The stored events of a conversation (at most ``limit`` of them)."""
        return await self.store.events(conversation_id, after_seq=after_seq, limit=limit)

    async def history_of_turn(self, turn: TurnRecord) -> list[Event]:
        """The stored events of one turn, from the event that opened it."""
        return await self.store.events(
            turn.conversation_id, after_seq=turn.user_seq - 1, turn_id=turn.turn_id
        )

    async def follow(
        self, conversation_id: str, turn_id: str, *, after_seq: int = 0
    ) -> AsyncGenerator[Event, None]:
        """A turn's stored events after ``after_seq`` as they are stored, wherever it
        runs, up to its done event (tokens are not stored: none come)."""
        seen = after_seq
        while True:
            events = await self.store.events(conversation_id, after_seq=seen, turn_id=turn_id)
            for event in events:
                seen = event.seq or seen
                if isinstance(event, DoneEvent):
                    yield event.model_copy(update={"last_seq": event.seq})
                    return
                yield event
            if not events:
                turn = await self.store.turn_by_id(conversation_id, turn_id)
                if turn is None:
                    raise ConversationNotFoundError(
                        f"turn {turn_id!r} of conversation {conversation_id!r} is gone"
                    )
                if turn.status != "running":  # ended: its done (if any) was read above
                    if not await self.store.events(
                        conversation_id, after_seq=seen, turn_id=turn_id
                    ):
                        return
                    continue
                await asyncio.sleep(JOIN_POLL_S)

    def _check_agent(self, agent: str) -> None:
        if agent not in self.agents:
            raise UnknownAgentError(
                f"unknown agent {agent!r}; the app's agents: {', '.join(sorted(self.agents))}"
            )

    @asynccontextmanager
    async def _turn_lock(
        self, conversation_id: str, *, exclusive: bool = True
    ) -> AsyncIterator[None]:
        # One lock per conversation with waiters; dropped when nobody holds or waits.
        # Not ``exclusive``: the send only counts as one of the conversation's here.
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock if exclusive else contextlib.nullcontext():
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users == 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)


async def drive_turn(
    store: ConversationStore,
    run: RunTurn,
    agent: str,
    request: TurnRequest,
    *,
    tail: Event | None = None,
    recovery_delays_s: Sequence[float] = RECOVERY_DELAYS_S,
) -> AsyncIterator[Event]:
    """Run a turn on ``agent`` and close it with a stored ``done`` event.

    ``tail`` is the turn's last stored event, when a lost runner's turn is resumed:
    a turn whose last event ended it (an answer, an error, a pause) is only closed.
    A part whose agent replica died (a ``retryable`` error) is resumed from the stored
    log on the agent the turn has reached, after each pause of ``recovery_delays_s``;
    other errors, and the last failure, end the turn with a stored ``error`` event.
    """
    ctx = request.context
    done: DoneEvent | None = None
    closed = False
    failure: BaseException | None = None
    last = request.after_seq
    try:
        ending = ENDS.get(type(tail)) if tail is not None else None
        if ending is not None:
            done = DoneEvent(status=ending, usage=TurnUsage(hops=ctx.hops), active_agent=agent)
        pauses = iter(recovery_delays_s)
        while done is None:
            try:
                async with closing(run(agent, request)) as events:
                    async for event in events:
                        if isinstance(event, DoneEvent):
                            done = event
                            continue
                        if event.seq is not None:
                            if event.seq <= last:
                                continue  # a resumed part passes on what it finds stored
                            last, tail = event.seq, event
                        if isinstance(event, HandoffEvent) and event.agent is not None:
                            ctx = ctx.hop(f"{event.agent}->{event.to_agent}")
                        yield event
                break
            except LeaseLostError:
                closed = True  # another runner holds the turn now: it closes it
                raise
            except RayAgentsError as exc:
                pause = next(pauses, None) if exc.retryable else None
                deadline_left = ctx.deadline is None or ctx.deadline > time.time() + (pause or 0)
                if pause is None or not deadline_left:
                    error = ErrorEvent(
                        code=exc.code, message=exc.message, agent=agent, turn_id=ctx.turn_id
                    )
                    [stored] = await store.append(ctx.conversation_id, [error], runner=ctx.runner)
                    yield stored
                    break
                log.warning(
                    "resuming a turn whose agent replica died: %s",
                    exc.message,
                    extra={"conversation_id": ctx.conversation_id, "turn_id": ctx.turn_id},
                )
                await asyncio.sleep(pause)
            # Go on from what the lost part stored, on the agent the turn has reached.
            for event in await store.events(
                ctx.conversation_id, after_seq=last, turn_id=ctx.turn_id
            ):
                last, tail = event.seq or last, event
                yield event
            info = await store.conversation(ctx.conversation_id)
            agent = info.active_agent if info is not None else agent
            ending = ENDS.get(type(tail)) if tail is not None else None
            if ending is not None:
                done = DoneEvent(status=ending, usage=TurnUsage(hops=ctx.hops), active_agent=agent)
            request = request.model_copy(
                update={"context": ctx, "after_seq": last, "history": None, "retry": True}
            )
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
        [stored_done] = await store.append(ctx.conversation_id, [final], runner=ctx.runner)
        closed = True
        yield stored_done.model_copy(update={"last_seq": stored_done.seq})
    except Exception as exc:
        failure = exc
        raise
    finally:
        if not closed:
            # The caller went away (or something failed) mid-turn: do not leave it running.
            await asyncio.shield(
                _fail(store, ctx.conversation_id, ctx.turn_id, failure, ctx.runner)
            )


async def _observed(
    events: AsyncIterator[Event],
    ctx: TurnContext,
    span: Span,
    agent: str,
    opening: Event,
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


async def _until_lost(
    events: AsyncIterator[Event], lost: asyncio.Event, turn: TurnRecord
) -> AsyncIterator[Event]:
    """The turn's events until ``lost`` is set: then the work producing them is
    cancelled (the model's generation, a tool call) and ``LeaseLostError`` raised. Once the
    turn's ``done`` came, its end is not a loss."""
    watch = asyncio.ensure_future(lost.wait())
    try:
        while True:
            step = asyncio.ensure_future(anext(events))
            await asyncio.wait({step, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
                raise LeaseLostError(
                    f"turn {turn.turn_id} was stopped: its conversation was deleted, or "
                    "another runner took it over"
                )
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            yield event
            if isinstance(event, DoneEvent):
                async for rest in events:  # nothing follows done; drain all the same
                    yield rest
                return
    finally:
        watch.cancel()


async def _fail(
    store: ConversationStore,
    conversation_id: str,
    turn_id: str,
    failure: BaseException | None,
    runner: str | None,
) -> None:
    # Close the turn the way every turn closes (error, then done), so a retry that
    # replays it still ends with done. The error says what happened: the caller left,
    # or (a bug, or a failure below) its code; what was raised can name files or hosts,
    # so it goes to the log, not into the conversation.
    if failure is None:
        error = ErrorEvent(
            code="cancelled", message="the caller went away before the turn ended", turn_id=turn_id
        )
    else:
        cause = remote_cause(failure)
        code = cause.code if isinstance(cause, RayAgentsError) else "internal"
        log.error(
            "a turn failed: %s: %s",
            type(cause).__name__,
            cause,
            exc_info=failure,
            extra={"conversation_id": conversation_id, "turn_id": turn_id},
        )
        message = f"the turn failed ({code}); the server's log has the cause under this turn id"
        error = ErrorEvent(code=code, message=message, turn_id=turn_id)
    try:
        closing_events: list[Event] = [error, DoneEvent(status="error", turn_id=turn_id)]
        await store.append(conversation_id, closing_events, runner=runner)
    except RayAgentsError:
        pass  # the store is down; the turn's lease runs out and it is resumed later


def _fingerprint(request: SendRequest) -> str:
    """A digest of what a send asks for (message, agent, variables): a retry with the
    same idempotency key must bring the same one. Not the deadline, nor how the reply
    is delivered (streamed, from which seq): a retry may change those."""
    asked = request.model_dump(include={"message", "agent", "variables"})
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


# The events that end an agent's part of a turn, and the status each ends it with.
ENDS: dict[type, Literal["ok", "error", "paused"]] = {
    AnswerEvent: "ok",
    ErrorEvent: "error",
    ApprovalRequiredEvent: "paused",
}
