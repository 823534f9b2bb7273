"""``AgentService``: one agent replica's state, behind its Serve deployment.

It runs the agent's turns (``AgentLoop``), stores every event before passing it on,
and keeps hot conversations' histories in an LRU cache bounded twice: by how many
conversations it holds and by their approximate size in bytes, so a few huge
conversations evict others instead of growing the replica without bound. The store is
the truth: a cache miss, or a cache that fell behind (another agent took some turns),
reloads only the events it lacks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from agents.budgets import Meter
from agents.conversations import ENDS, drive_turn
from agents.errors import PeerLostError
from agents.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
)
from agents.messages import load_messages, messages_from_events
from agents.protocol import AskRequest, AskResult, TurnRequest
from agents.store.base import ConversationStore
from agents.turn import AgentLoop

__all__ = ["AgentService"]

DEFAULT_CACHE_SIZE = 4096
DEFAULT_CACHE_BYTES = 256 * 2**20
"""The most bytes (approximately) of cached histories one agent replica keeps."""
_MESSAGE_OVERHEAD = 200
"""About what a langchain message object costs beyond its text."""


@dataclass
class _Cached:
    messages: list[BaseMessage]
    last_seq: int
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = _approx_size(self.messages)

    def extend(self, messages: list[BaseMessage]) -> None:
        self.messages += messages
        self.size += _approx_size(messages)


def _approx_size(messages: list[BaseMessage]) -> int:
    """Bytes a history holds, roughly: its text, its tool calls' arguments, and a
    fixed cost per message."""
    size = 0
    for message in messages:
        size += _MESSAGE_OVERHEAD + len(str(message.content))
        for call in getattr(message, "tool_calls", None) or []:
            size += len(call["name"]) + len(repr(call["args"]))
    return size


class AgentService:
    """Serves one agent: turns, hand-offs in, questions in."""

    def __init__(
        self,
        loop: AgentLoop,
        store: ConversationStore,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        replica_id: str = "local",
    ) -> None:
        """``cache_size`` conversations at most stay cached, holding ``cache_bytes``
        (approximately) at most; the least recently used go first."""
        self.loop = loop
        self.name = loop.spec.name
        self.replica_id = replica_id
        self._store = store
        self._meter = Meter(store)
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0

    @property
    def cached_conversations(self) -> int:
        """How many conversations the cache holds."""
        return len(self._cache)

    @property
    def cached_bytes(self) -> int:
        """About how many bytes the cached histories hold."""
        return self._cached_bytes

    def cached_history(self, conversation_id: str) -> list[BaseMessage]:
        """The cached history of a conversation ([] when not cached)."""
        cached = self._cache.get(conversation_id)
        return list(cached.messages) if cached is not None else []

    async def run(self, request: TurnRequest) -> AsyncIterator[Event]:
        """This agent's part of a turn; ``done`` (not stored) comes last.

        A ``retry`` (the caller lost the replica that ran it) first looks for what an
        earlier attempt stored, passes it on and goes on from there; a part that
        already ended is not run again.
        """
        ctx = request.context
        if request.retry:
            stored = await self._store.events(
                ctx.conversation_id, after_seq=request.after_seq, turn_id=ctx.turn_id
            )
            earlier: list[Event] = [e for e in stored if not isinstance(e, DoneEvent)]
            for event in earlier:
                yield event
            if earlier and type(earlier[-1]) in ENDS:
                yield DoneEvent(
                    agent=self.name,
                    status=ENDS[type(earlier[-1])],
                    active_agent=self.name,
                    replicas={self.name: self.replica_id},
                )
                return
            handoffs = [e for e in earlier if isinstance(e, HandoffEvent)]
            if handoffs:  # this part had ended: the turn goes on at the hand-off's target
                raise PeerLostError(f"the turn moved on to {handoffs[-1].to_agent!r}")
            if earlier:
                request = request.model_copy(
                    update={"after_seq": earlier[-1].seq, "history": None, "resume": None}
                )
        history = await self._history(ctx.conversation_id, request.after_seq, request.history)

        async def record(event: Event) -> Event:
            [stored] = await self._store.append(ctx.conversation_id, [event], runner=ctx.runner)
            self._remember(ctx.conversation_id, stored)
            return stored

        events = self.loop.run(
            ctx, history, record, resume=request.resume, recover=request.retry, meter=self._meter
        )
        async for event in events:
            if isinstance(event, DoneEvent):
                replicas = {**event.replicas, self.name: self.replica_id}
                event = event.model_copy(update={"replicas": replicas})
            yield event

    async def ask(self, request: AskRequest) -> AskResult:
        """Answer a peer's question in a sub-conversation; it is stored like any other."""
        ctx = request.context
        sub_id = f"{ctx.conversation_id}:ask:{request.call_id}"
        turn, created = await self._store.begin_turn(
            sub_id,
            MessageEvent(content=request.question, agent=request.asker),
            idempotency_key=request.call_id,
            agent=self.name,
        )
        # The sub-conversation's turn has no lease of its own: its writes are not fenced.
        inner = ctx.model_copy(
            update={"conversation_id": sub_id, "turn_id": turn.turn_id, "runner": None}
        )
        result = AskResult(conversation_id=sub_id)
        if not created and turn.status != "running":
            # A retried ask: its answer is stored; do not answer twice.
            events: AsyncIterator[Event] = _replay(
                await self._store.events(sub_id, turn_id=turn.turn_id)
            )
        else:
            turn_request = TurnRequest(context=inner, after_seq=turn.user_seq)
            events = drive_turn(self._store, self._run_as, self.name, turn_request)
        async for event in events:
            if isinstance(event, AnswerEvent):
                result.text, result.output = event.text, event.output
            elif isinstance(event, ErrorEvent):
                result.error = event
            elif isinstance(event, DoneEvent):
                result.usage = event.usage
                if event.status == "paused":
                    result.error = ErrorEvent(
                        code="approval_in_ask",
                        message=f"{self.name} needs a person's approval; an ask cannot wait",
                    )
        return result

    def _run_as(self, agent: str, request: TurnRequest) -> AsyncIterator[Event]:
        return self.run(request)

    async def _history(
        self, conversation_id: str, after_seq: int, given: list[dict[str, Any]] | None
    ) -> list[BaseMessage]:
        if given is not None:
            cached = _Cached(load_messages(given), after_seq)
        else:
            cached = self._cache.get(conversation_id) or _Cached([], 0)
            if cached.last_seq > after_seq:
                cached = _Cached([], 0)  # cannot happen with one store; reload to be safe
            if cached.last_seq < after_seq:
                events = await self._store.events(conversation_id, after_seq=cached.last_seq)
                events = [e for e in events if e.seq is not None and e.seq <= after_seq]
                if cached.last_seq and any(_rolled_back(e) for e in events):
                    # A turn the cache holds was rolled back: build the history anew.
                    cached = _Cached([], 0)
                    events = await self._store.events(conversation_id)
                    events = [e for e in events if e.seq is not None and e.seq <= after_seq]
                cached = _Cached(
                    cached.messages + messages_from_events(events),
                    events[-1].seq if events and events[-1].seq else cached.last_seq,
                )
        self._put(conversation_id, cached)
        return list(cached.messages)

    def _remember(self, conversation_id: str, event: Event) -> None:
        cached = self._cache.get(conversation_id)
        if cached is None or event.seq is None:
            return
        if event.seq == cached.last_seq + 1:
            before = cached.size
            cached.extend(messages_from_events([event]))
            cached.last_seq = event.seq
            self._cached_bytes += cached.size - before
            self._evict()
        else:
            self._drop(conversation_id)  # a gap: reload on the next turn

    def _put(self, conversation_id: str, cached: _Cached) -> None:
        self._drop(conversation_id)
        self._cache[conversation_id] = cached
        self._cached_bytes += cached.size
        self._evict()

    def _drop(self, conversation_id: str) -> None:
        gone = self._cache.pop(conversation_id, None)
        if gone is not None:
            self._cached_bytes -= gone.size

    def _evict(self) -> None:
        # Least recently used first; a history over the whole budget is not kept either.
        while self._cache and (
            len(self._cache) > self._cache_size or self._cached_bytes > self._cache_bytes
        ):
            _, gone = self._cache.popitem(last=False)
            self._cached_bytes -= gone.size


def _rolled_back(event: Event) -> bool:
    return isinstance(event, DoneEvent) and event.rolled_back


async def _replay(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event
