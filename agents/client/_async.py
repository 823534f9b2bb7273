"""The asyncio client: ``AsyncClient``, its resources, handles and event streams.

It mirrors ``_sync`` with ``await``; requests, parsing and retry rules come from
``_base``, so this module only sends.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import date
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx
from tenacity import AsyncRetrying

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
    "AsyncAgents",
    "AsyncBackgroundTurn",
    "AsyncClient",
    "AsyncConversationHandle",
    "AsyncConversations",
    "AsyncEventStream",
]

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of a ray-agents application's HTTP API.

    Same arguments as ``Client``; ``http_client`` is an ``httpx.AsyncClient`` and
    ``sleep`` a coroutine function. Use it with ``async with``, or ``await aclose()``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self._requests = Requests(base_url, api_key, timeout)
        self._max_retries = max_retries
        self._http = http_client or httpx.AsyncClient()
        self._owns_http = http_client is None
        self._sleep = sleep
        self.agents = AsyncAgents(self)
        """The application's agents."""
        self.conversations = AsyncConversations(self)
        """Create, open and delete conversations."""

    async def usage(self, start: date | None = None, end: date | None = None) -> UsageReport:
        """The tenant's tokens per UTC day, agent and model (``GET /v1/usage``), from
        ``start`` (default: the first of this month) to ``end`` (default: today)."""
        return await self._call(self._requests.usage(start, end))

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return self._requests.base_url

    async def aclose(self) -> None:
        """Close the connections (not those of an ``http_client`` passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def close(self) -> None:
        """Same as ``aclose()``."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(self, call: Call[T]) -> T:
        response = await self._send(call, stream=False)
        return call.parse(response)

    async def _send(self, call: Call[Any], *, stream: bool) -> httpx.Response:
        retrying = AsyncRetrying(sleep=self._sleep, **retry_options(self._max_retries, call.retry))
        return await retrying(self._send_once, call.request, stream)

    async def _send_once(self, request: httpx.Request, stream: bool) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=stream)
            if response.is_error:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if response.is_error:
            raise status_error(response)
        return response

    def _stream(self, call: Call[Any], observe: Callable[[Event], Event]) -> AsyncEventStream:
        resumption = Resumption(call, self._max_retries)
        return AsyncEventStream(
            lambda again: self._send(again, stream=True), resumption, observe, self._sleep
        )


class AsyncEventStream:
    """The events of one streamed turn, for ``async for``; see ``EventStream``."""

    def __init__(
        self,
        open_stream: Callable[[Call[Any]], Awaitable[httpx.Response]],
        resumption: Resumption,
        observe: Callable[[Event], Event],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._events = self._run(open_stream, resumption, observe, sleep)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @staticmethod
    async def _run(
        open_stream: Callable[[Call[Any]], Awaitable[httpx.Response]],
        resumption: Resumption,
        observe: Callable[[Event], Event],
        sleep: Callable[[float], Awaitable[None]],
    ) -> AsyncGenerator[Event, None]:
        while True:
            response = await open_stream(resumption.call())
            try:
                check_stream(response)
                decoder = EventDecoder()
                async for line in response.aiter_lines():
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
                await response.aclose()
            await sleep(resumption.broken(error))


class AsyncAgents:
    """``client.agents``: the application's agents."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> builtins.list[AgentInfo]:
        """Every agent of the application."""
        return await self._client._call(self._client._requests.list_agents())

    async def get(self, name: str) -> AgentInfo:
        """One agent, by name (``NotFoundError`` if there is none)."""
        return await self._client._call(self._client._requests.get_agent(name))


class AsyncConversations:
    """``client.conversations``: create, open and delete conversations."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self, agent: str | None = None, *, metadata: dict[str, str] | None = None
    ) -> AsyncConversationHandle:
        """Start a conversation with ``agent`` (default: the application's default agent)."""
        call = self._client._requests.create_conversation(agent, metadata)
        return AsyncConversationHandle(self._client, await self._client._call(call))

    async def get(self, conversation_id: str) -> AsyncConversationHandle:
        """Open an existing conversation (``NotFoundError`` if there is none)."""
        call = self._client._requests.get_conversation(conversation_id)
        return AsyncConversationHandle(self._client, await self._client._call(call))

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its stored events."""
        await self._client._call(self._client._requests.delete_conversation(conversation_id))


class AsyncConversationHandle(ConversationState):
    """A conversation, for asyncio; see ``ConversationHandle``."""

    def __init__(self, client: AsyncClient, info: Conversation) -> None:
        super().__init__(info)
        self._client = client

    def __repr__(self) -> str:
        return f"AsyncConversationHandle(id={self.id!r}, agent={self.agent!r})"

    async def refresh(self) -> Conversation:
        """Fetch the conversation's header again."""
        self._info = await self._client._call(self._client._requests.get_conversation(self.id))
        return self._info

    @overload
    async def send(
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
    async def send(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
        background: Literal[True],
        webhook: str | None = None,
    ) -> AsyncBackgroundTurn: ...

    async def send(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
        background: bool = False,
        webhook: str | None = None,
    ) -> TurnResult | AsyncBackgroundTurn:
        """Send a message and wait for the turn to end (see ``ConversationHandle.send``);
        with ``background``, an ``AsyncBackgroundTurn`` at once."""
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
        result = await self._client._call(call)
        if background:
            return AsyncBackgroundTurn(self, result)
        return self._observe_result(result)

    def stream(
        self,
        text: str,
        *,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        variables: dict[str, str] | None = None,
        multitask: Multitask | None = None,
    ) -> AsyncEventStream:
        """Send a message and stream the turn's events, with ``async for``."""
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

    async def turn(self, turn_id: str) -> TurnResult:
        """A turn of this conversation: its status ('running' until it ends) and result."""
        return await self._client._call(self._client._requests.get_turn(self.id, turn_id))

    async def cancel(self, turn_id: str) -> TurnResult:
        """Stop a running turn; it ends with ``done(status="interrupted")``."""
        return await self._client._call(self._client._requests.cancel_turn(self.id, turn_id))

    async def messages(self, after: int = 0, *, limit: int | None = None) -> list[Event]:
        """The stored events with ``seq`` above ``after``, every page (or ``limit`` events)."""
        pager = Pager(after, limit)
        while pager.more:
            pager.add(await self.messages_page(pager.after, pager.page_size))
        return pager.events

    async def messages_page(self, after: int = 0, limit: int = 100) -> MessagesPage:
        """One page of stored events; pass ``next_after`` as ``after`` for the next."""
        return await self._client._call(self._client._requests.messages(self.id, after, limit))

    async def approve(self, call_id: str, reason: str = "") -> TurnResult:
        """Run the paused tool call ``call_id`` and wait for the resumed turn."""
        return await self._decide(call_id, approve=True, reason=reason)

    async def reject(self, call_id: str, reason: str = "") -> TurnResult:
        """Refuse the paused tool call (``reason`` tells the agent) and wait for the turn."""
        return await self._decide(call_id, approve=False, reason=reason)

    def stream_approve(self, call_id: str, reason: str = "") -> AsyncEventStream:
        """Run the paused tool call and stream the resumed turn."""
        call = self._client._requests.decide(
            self.id, call_id, approve=True, reason=reason, stream=True
        )
        return self._client._stream(call, self._observe)

    def stream_reject(self, call_id: str, reason: str = "") -> AsyncEventStream:
        """Refuse the paused tool call and stream the resumed turn."""
        call = self._client._requests.decide(
            self.id, call_id, approve=False, reason=reason, stream=True
        )
        return self._client._stream(call, self._observe)

    async def delete(self) -> None:
        """Delete the conversation and its stored events."""
        await self._client.conversations.delete(self.id)

    async def _decide(self, call_id: str, *, approve: bool, reason: str) -> TurnResult:
        call = self._client._requests.decide(
            self.id, call_id, approve=approve, reason=reason, stream=False
        )
        return self._observe_result(await self._client._call(call))


class AsyncBackgroundTurn:
    """A turn sent with ``background=True``, for asyncio; see ``BackgroundTurn``."""

    def __init__(self, conversation: AsyncConversationHandle, accepted: TurnResult) -> None:
        self._conversation = conversation
        self.accepted = accepted

    def __repr__(self) -> str:
        return f"AsyncBackgroundTurn(id={self.id!r}, conversation_id={self.conversation_id!r})"

    @property
    def id(self) -> str:
        """The turn's id."""
        return self.accepted.turn_id or ""

    @property
    def conversation_id(self) -> str:
        """The conversation it runs in."""
        return self.accepted.conversation_id

    async def status(self) -> TurnResult:
        """The turn now: 'running', or how it ended, with its events so far."""
        return await self._conversation.turn(self.id)

    def stream(self) -> AsyncEventStream:
        """The turn's stored events from its start to its done, with ``async for``."""
        client = self._conversation._client
        call = client._requests.turn_events(self.conversation_id, self.id)
        return client._stream(call, self._conversation._observe)

    async def wait(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - the same arguments as BackgroundTurn.wait
        *,
        poll_s: float = 0.5,
    ) -> TurnResult:
        """Wait for the turn to end and return its result; ``TimeoutError`` after
        ``timeout`` seconds (the turn runs on)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            result = await self.status()
            if result.status != "running":
                return self._conversation._observe_result(result)
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"turn {self.id} still runs after {timeout} s")
            await self._conversation._client._sleep(poll_s)

    async def cancel(self) -> TurnResult:
        """Stop the turn (its generation and tool call too)."""
        return await self._conversation.cancel(self.id)
