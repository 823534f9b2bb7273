"""The blocking client: ``Client``, its resources, conversation handles and event streams.

Requests, parsing and retry rules come from ``_base``; this module only sends.
``_async`` mirrors it with ``await``.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Generator
from datetime import date
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx
from tenacity import Retrying

from agents.api.types import (
    AgentInfo,
    Conversation,
    MessagesPage,
    Multitask,
    TurnResult,
    UsageReport,
)
from agents.client._base import (
    Call,
    ConversationState,
    Pager,
    Requests,
    Resumption,
    check_stream,
    retry_options,
)
from agents.client._exceptions import APIConnectionError, status_error, transport_error
from agents.client._sse import EventDecoder
from agents.events import DoneEvent, Event

__all__ = [
    "Agents",
    "BackgroundTurn",
    "Client",
    "ConversationHandle",
    "Conversations",
    "EventStream",
]

T = TypeVar("T")


class Client:
    """A blocking client of a ray-agents application's HTTP API.

    ``base_url`` defaults to ``$RAY_AGENTS_URL`` or ``http://127.0.0.1:8000`` (the
    server's root; a trailing ``/v1`` is accepted); ``api_key`` to
    ``$RAY_AGENTS_API_KEY``. ``timeout`` bounds each request (streams wait at least
    45 s for data, three server heartbeats); ``max_retries`` is how many times a failed
    request is retried (0 disables retries). ``http_client`` replaces the underlying
    ``httpx.Client`` (proxies, a test transport); the caller then closes it.
    ``sleep`` is what waits between retries (tests pass a recorder).

    Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self._requests = Requests(base_url, api_key, timeout)
        self._max_retries = max_retries
        self._http = http_client or httpx.Client()
        self._owns_http = http_client is None
        self._sleep = sleep
        self.agents = Agents(self)
        """The application's agents."""
        self.conversations = Conversations(self)
        """Create, open and delete conversations."""

    def usage(self, start: date | None = None, end: date | None = None) -> UsageReport:
        """The tenant's tokens per UTC day, agent and model (``GET /v1/usage``), from
        ``start`` (default: the first of this month) to ``end`` (default: today)."""
        return self._call(self._requests.usage(start, end))

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return self._requests.base_url

    def close(self) -> None:
        """Close the connections (not those of an ``http_client`` passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, call: Call[T]) -> T:
        response = self._send(call, stream=False)
        return call.parse(response)

    def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        retrying = Retrying(sleep=self._sleep, **retry_options(self._max_retries, call.retry))
        return retrying(self._send_once, call.request, stream)

    def _send_once(self, request: httpx.Request, stream: bool) -> httpx.Response:
        try:
            response = self._http.send(request, stream=stream)
            if response.is_error:
                try:
                    response.read()
                finally:
                    response.close()
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if response.is_error:
            raise status_error(response)
        return response

    def _stream(self, call: Call[Any], observe: Callable[[Event], Event]) -> EventStream:
        resumption = Resumption(call, self._max_retries)
        return EventStream(
            lambda again: self._send(again, stream=True), resumption, observe, self._sleep
        )


class EventStream:
    """The events of one streamed turn, in order, ending with its ``DoneEvent``.

    The request is sent when iteration starts; an error reply raises there. A turn
    that fails yields an ``ErrorEvent`` and ``DoneEvent(status="error")``, not an
    exception. Leave a ``with`` block or call ``close()`` to stop reading early.
    """

    def __init__(
        self,
        open_stream: Callable[[Call[Any]], httpx.Response],
        resumption: Resumption,
        observe: Callable[[Event], Event],
        sleep: Callable[[float], None],
    ) -> None:
        self._events = self._run(open_stream, resumption, observe, sleep)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _run(
        open_stream: Callable[[Call[Any]], httpx.Response],
        resumption: Resumption,
        observe: Callable[[Event], Event],
        sleep: Callable[[float], None],
    ) -> Generator[Event, None, None]:
        while True:
            response = open_stream(resumption.call())
            try:
                check_stream(response)
                decoder = EventDecoder()
                for line in response.iter_lines():
                    event = decoder.decode(line)
                    if event is not None:
                        resumption.seen(event)
                        yield observe(event)
                        if isinstance(event, DoneEvent):
                            return
                error = APIConnectionError("the stream ended before the turn's done event")
            except httpx.TransportError as exc:
                error = transport_error(exc)
                error.__cause__ = exc
            finally:
                response.close()
            sleep(resumption.broken(error))


class Agents:
    """``client.agents``: the application's agents."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> builtins.list[AgentInfo]:
        """Every agent of the application."""
        return self._client._call(self._client._requests.list_agents())

    def get(self, name: str) -> AgentInfo:
        """One agent, by name (``NotFoundError`` if there is none)."""
        return self._client._call(self._client._requests.get_agent(name))


class Conversations:
    """``client.conversations``: create, open and delete conversations."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self, agent: str | None = None, *, metadata: dict[str, str] | None = None
    ) -> ConversationHandle:
        """Start a conversation with ``agent`` (default: the application's default agent)."""
        call = self._client._requests.create_conversation(agent, metadata)
        return ConversationHandle(self._client, self._client._call(call))

    def get(self, conversation_id: str) -> ConversationHandle:
        """Open an existing conversation (``NotFoundError`` if there is none)."""
        call = self._client._requests.get_conversation(conversation_id)
        return ConversationHandle(self._client, self._client._call(call))

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its stored events."""
        self._client._call(self._client._requests.delete_conversation(conversation_id))


class ConversationHandle(ConversationState):
    """A conversation: send it messages, stream turns, decide paused tool calls.

    ``id``, ``agent`` and ``info`` are kept current by the turns sent through it.
    Every send and decision carries an idempotency key (a fresh one unless given),
    so a retried request never runs a turn twice.
    """

    def __init__(self, client: Client, info: Conversation) -> None:
        super().__init__(info)
        self._client = client

    def __repr__(self) -> str:
        return f"ConversationHandle(id={self.id!r}, agent={self.agent!r})"

    def refresh(self) -> Conversation:
        """Fetch the conversation's header again."""
        self._info = self._client._call(self._client._requests.get_conversation(self.id))
        return self._info

    @overload
    def send(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
        background: Literal[False] = False,
        webhook: str | None = None,
    ) -> TurnResult: ...

    @overload
    def send(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
        background: Literal[True],
        webhook: str | None = None,
    ) -> BackgroundTurn: ...

    def send(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
        background: bool = False,
        webhook: str | None = None,
    ) -> TurnResult | BackgroundTurn:
        """Send a message and wait for the turn to end.

        ``timeout_s`` is the turn's deadline on the server (the client waits that long
        plus a margin); ``variables`` fill the agent's instruction placeholders. A
        failed turn is ``status == "error"`` with ``error`` set, not an exception.
        ``multitask``: what this message does to a turn of the conversation that still
        runs (``reject``, ``enqueue``, ``interrupt``, ``rollback``; default: the app's).
        With ``background`` the reply comes at once: a ``BackgroundTurn`` to ``wait()``
        for or ``stream()``; ``webhook`` is a URL told when the turn ends.
        """
        call = self._client._requests.send(
            self.id,
            text,
            stream=False,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
            variables=variables,
            multitask=multitask,
            background=background,
            webhook=webhook,
        )
        result = self._client._call(call)
        if background:
            return BackgroundTurn(self, result)
        return self._observe_result(result)

    def stream(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
    ) -> EventStream:
        """Send a message and stream the turn's events (see ``send`` for the arguments)."""
        call = self._client._requests.send(
            self.id,
            text,
            stream=True,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
            variables=variables,
            multitask=multitask,
        )
        return self._client._stream(call, self._observe)

    def turn(self, turn_id: str) -> TurnResult:
        """A turn of this conversation: its status ('running' until it ends) and result."""
        return self._client._call(self._client._requests.get_turn(self.id, turn_id))

    def cancel(self, turn_id: str) -> TurnResult:
        """Stop a running turn; it ends with ``done(status="interrupted")``."""
        return self._client._call(self._client._requests.cancel_turn(self.id, turn_id))

    def messages(self, after: int = 0, *, limit: int | None = None) -> list[Event]:
        """The stored events with ``seq`` above ``after``, every page (or ``limit`` events)."""
        pager = Pager(after, limit)
        while pager.more:
            pager.add(self.messages_page(pager.after, pager.page_size))
        return pager.events

    def messages_page(self, after: int = 0, limit: int = 100) -> MessagesPage:
        """One page of stored events; pass ``next_after`` as ``after`` for the next."""
        return self._client._call(self._client._requests.messages(self.id, after, limit))

    def approve(self, call_id: str, reason: str = "") -> TurnResult:
        """Run the paused tool call ``call_id`` and wait for the resumed turn."""
        return self._decide(call_id, approve=True, reason=reason)

    def reject(self, call_id: str, reason: str = "") -> TurnResult:
        """Refuse the paused tool call (``reason`` tells the agent) and wait for the turn."""
        return self._decide(call_id, approve=False, reason=reason)

    def stream_approve(self, call_id: str, reason: str = "") -> EventStream:
        """Run the paused tool call and stream the resumed turn."""
        call = self._client._requests.decide(
            self.id, call_id, approve=True, reason=reason, stream=True
        )
        return self._client._stream(call, self._observe)

    def stream_reject(self, call_id: str, reason: str = "") -> EventStream:
        """Refuse the paused tool call and stream the resumed turn."""
        call = self._client._requests.decide(
            self.id, call_id, approve=False, reason=reason, stream=True
        )
        return self._client._stream(call, self._observe)

    def delete(self) -> None:
        """Delete the conversation and its stored events."""
        self._client.conversations.delete(self.id)

    def _decide(self, call_id: str, *, approve: bool, reason: str) -> TurnResult:
        call = self._client._requests.decide(
            self.id, call_id, approve=approve, reason=reason, stream=False
        )
        return self._observe_result(self._client._call(call))


class BackgroundTurn:
    """A turn sent with ``background=True``: it runs on the server whether or not
    anyone waits. ``accepted`` is the 202 reply (status 'running', the opening event)."""

    def __init__(self, conversation: ConversationHandle, accepted: TurnResult) -> None:
        self._conversation = conversation
        self.accepted = accepted

    def __repr__(self) -> str:
        return f"BackgroundTurn(id={self.id!r}, conversation_id={self.conversation_id!r})"

    @property
    def id(self) -> str:
        """The turn's id."""
        return self.accepted.turn_id or ""

    @property
    def conversation_id(self) -> str:
        """The conversation it runs in."""
        return self.accepted.conversation_id

    def status(self) -> TurnResult:
        """The turn now: 'running', or how it ended, with its events so far."""
        return self._conversation.turn(self.id)

    def stream(self) -> EventStream:
        """The turn's stored events from its start, as they are stored, to its done (a
        broken stream reconnects after the last event received)."""
        client = self._conversation._client
        call = client._requests.turn_events(self.conversation_id, self.id)
        return client._stream(call, self._conversation._observe)

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.5) -> TurnResult:
        """Wait for the turn to end and return its result; ``TimeoutError`` after
        ``timeout`` seconds (the turn runs on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = self.status()
            if result.status != "running":
                return self._conversation._observe_result(result)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"turn {self.id} still runs after {timeout} s")
            self._conversation._client._sleep(poll_s)

    def cancel(self) -> TurnResult:
        """Stop the turn (its generation and tool call too)."""
        return self._conversation.cancel(self.id)
