"""What the sync and async clients share: requests, parsing, retries, conversation state.

Each API operation is a ``Call``: the ``httpx.Request`` to send, how to parse a
successful reply, and which failures may be retried. The clients only send calls
(with tenacity around ``send``), so every route, header, timeout and error mapping
is written once, here.

Retries: a call is retried on 429 and 503 (waiting ``Retry-After``, capped at
``MAX_RETRY_WAIT``, else exponential backoff with full jitter) and on connection
failures that happened before the request reached the server. A call marked
``Retry.SAFE`` (GETs, DELETE, and sends and decisions, which carry an idempotency
key) is also retried when the connection broke before a response came back, and on
500, 502 and 504 (a replica that died under the request: the retried send joins the
turn its first attempt started); creating a conversation is not (a retry could create
a second one). Timeouts are not retried. A streamed send whose connection breaks
once events flow reconnects with ``Last-Event-ID`` (``Resumption``).

Replies are parsed forward compatibly: a field this SDK does not know, anywhere in a
reply (events included, which the server itself builds with ``extra="forbid"``), is
ignored, so a newer server that adds one does not break older clients.
"""

from __future__ import annotations

import enum
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import wait_random_exponential as _wait_random_exponential

from agents import __version__
from agents.api.types import (
    AgentInfo,
    AgentList,
    ApprovalDecision,
    Conversation,
    CreateConversation,
    MessagesPage,
    Multitask,
    SendMessage,
    TurnResult,
    UsageReport,
)
from agents.client._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
)
from agents.client._sse import KNOWN_EVENT_TYPES
from agents.events import DoneEvent, Event, HandoffEvent

__all__ = [
    "DEFAULT_URL",
    "MAX_RETRY_WAIT",
    "PAGE_SIZE",
    "STREAM_READ_TIMEOUT",
    "Call",
    "ConversationState",
    "Pager",
    "Requests",
    "Resumption",
    "Retry",
    "check_stream",
    "retry_options",
]

log = logging.getLogger("agents.client")

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_RETRY_WAIT = 30.0
"""The longest a retry waits, whatever ``Retry-After`` says."""
STREAM_READ_TIMEOUT = 45.0
"""The least read timeout of a stream: three of the server's 15 s heartbeats."""
TURN_TIMEOUT_MARGIN = 10.0
"""How much longer than a turn's ``timeout_s`` the client waits for its reply."""
PAGE_SIZE = 100
"""Events per request when ``messages()`` walks a conversation's pages."""

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Retry(enum.Enum):
    """Which connection failures a call may be retried on."""

    SAFE = "safe"
    """Idempotent: also when the request may have reached the server."""
    UNSAFE = "unsafe"
    """Only when the request surely did not reach the server."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation: the request, how to read its reply, and its retry class."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]
    retry: Retry = Retry.SAFE
    resumable: bool = False
    """A streamed send: a broken stream reconnects with ``Last-Event-ID``."""


class Resumption:
    """Where a streamed turn has got to, so a broken stream can pick up from there.

    A send carries its idempotency key, so sending it again joins its turn (wherever
    it runs, or after its runner died) instead of starting one; ``Last-Event-ID``
    (the seq of the last stored event received) leaves out what was already received.
    Tokens streamed while disconnected are lost; stored events are not.
    """

    def __init__(self, call: Call[Any], max_reconnects: int) -> None:
        self._call = call
        self._left = max_reconnects if call.resumable else 0
        self._tries = 0
        self.last_seq = 0

    def call(self) -> Call[Any]:
        """The call to (re)open the stream with."""
        if not self.last_seq:
            return self._call
        request = self._call.request
        headers = httpx.Headers(request.headers)
        headers["Last-Event-ID"] = str(self.last_seq)
        again = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=request.content,
            extensions=request.extensions,
        )
        return Call(again, self._call.parse, self._call.retry, self._call.resumable)

    def seen(self, event: Event) -> None:
        """Note an event received."""
        if event.seq is not None:
            self.last_seq = max(self.last_seq, event.seq)

    def broken(self, error: APIConnectionError) -> float:
        """The seconds to wait before reconnecting; raises ``error`` when out of tries."""
        if self._left <= 0:
            raise error
        self._left -= 1
        self._tries += 1
        log.info("stream broke (%s); reconnecting after seq %d", error, self.last_seq)
        return min(0.25 * 2.0**self._tries, MAX_RETRY_WAIT)


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_backoff = _wait_random_exponential(multiplier=0.5, max=8)


def _should_retry(kind: Retry, exc: BaseException) -> bool:
    if isinstance(exc, APIStatusError):
        if exc.code == "budget_exceeded":  # a spent budget does not come back by waiting
            return False
        return exc.status_code in (429, 503) or (
            kind is Retry.SAFE and exc.status_code in (500, 502, 504)
        )
    if isinstance(exc, APIConnectionError):
        cause = exc.__cause__
        return isinstance(cause, _NOT_SENT) or (
            kind is Retry.SAFE and isinstance(cause, _MAYBE_SENT)
        )
    return False


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, APIStatusError) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_WAIT)
    return float(_backoff(state))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.info("retrying after %s (attempt %d)", exc, state.attempt_number)


def retry_options(max_retries: int, kind: Retry) -> dict[str, Any]:
    """Keyword arguments of ``tenacity.Retrying``/``AsyncRetrying`` for a call."""
    return {
        "stop": stop_after_attempt(max_retries + 1),
        "wait": _wait,
        "retry": retry_if_exception(partial(_should_retry, kind)),
        "before_sleep": _log_retry,
        "reraise": True,
    }


def check_stream(response: httpx.Response) -> None:
    """Raise unless a successful reply is an event stream."""
    kind = response.headers.get("content-type", "")
    if not kind.startswith("text/event-stream"):
        raise APIResponseValidationError(
            f"expected an event stream, got {kind or 'no content type'}",
            status_code=response.status_code,
        )


def _model(model: type[M], response: httpx.Response) -> M:
    try:
        if model in (TurnResult, MessagesPage):  # they carry events: drop unknown kinds
            return model.model_validate(_known_events(response.json()), extra="ignore")
        return model.model_validate_json(response.content, extra="ignore")
    except ValueError as exc:  # not JSON, or not the model (ValidationError)
        raise APIResponseValidationError(
            f"{response.request.method} {response.request.url.path}: "
            f"the reply is not a valid {model.__name__}: {exc}",
            status_code=response.status_code,
        ) from exc


def _known_events(data: Any) -> Any:
    """``data`` without the events of a type this SDK does not know (a newer server's),
    as an event stream skips them."""
    if isinstance(data, dict):
        for field in ("events", "data"):
            events = data.get(field)
            if isinstance(events, list):
                data[field] = [
                    e
                    for e in events
                    if not isinstance(e, dict) or e.get("type") in KNOWN_EVENT_TYPES
                ]
    return data


def _agents(response: httpx.Response) -> list[AgentInfo]:
    return _model(AgentList, response).data


def _nothing(response: httpx.Response) -> None:
    return None


class Requests:
    """Builds the ``Call`` of every API operation."""

    def __init__(
        self, base_url: str | None, api_key: str | None, timeout: float | httpx.Timeout
    ) -> None:
        url = base_url or os.environ.get("RAY_AGENTS_URL") or DEFAULT_URL
        self.base_url = url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key if api_key is not None else os.environ.get("RAY_AGENTS_API_KEY")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)

    def list_agents(self) -> Call[list[AgentInfo]]:
        """``GET /v1/agents``."""
        return Call(self._request("GET", "/agents"), _agents)

    def get_agent(self, name: str) -> Call[AgentInfo]:
        """``GET /v1/agents/{name}``."""
        return Call(self._request("GET", f"/agents/{_q(name)}"), partial(_model, AgentInfo))

    def create_conversation(
        self, agent: str | None, metadata: dict[str, str] | None
    ) -> Call[Conversation]:
        """``POST /v1/conversations``: not idempotent, so retried only when unsent."""
        body = CreateConversation(agent=agent, metadata=metadata or {})
        request = self._request("POST", "/conversations", body=body)
        return Call(request, partial(_model, Conversation), Retry.UNSAFE)

    def get_conversation(self, conversation_id: str) -> Call[Conversation]:
        """``GET /v1/conversations/{id}``."""
        request = self._request("GET", f"/conversations/{_q(conversation_id)}")
        return Call(request, partial(_model, Conversation))

    def delete_conversation(self, conversation_id: str) -> Call[None]:
        """``DELETE /v1/conversations/{id}``."""
        return Call(self._request("DELETE", f"/conversations/{_q(conversation_id)}"), _nothing)

    def messages(self, conversation_id: str, after: int, limit: int) -> Call[MessagesPage]:
        """``GET /v1/conversations/{id}/messages``: one page of stored events."""
        path = f"/conversations/{_q(conversation_id)}/messages"
        request = self._request("GET", path, params={"after": after, "limit": limit})
        return Call(request, partial(_model, MessagesPage))

    def send(
        self,
        conversation_id: str,
        text: str,
        *,
        stream: bool,
        idempotency_key: str | None,
        timeout_s: float | None,
        variables: dict[str, str] | None,
        multitask: Multitask | None = None,
        background: bool = False,
        webhook: str | None = None,
    ) -> Call[TurnResult]:
        """``POST /v1/conversations/{id}/messages``, always with an idempotency key
        (a background send's reply is 202 with the turn so far)."""
        body = SendMessage(
            content=text,
            idempotency_key=idempotency_key or uuid.uuid4().hex,
            stream=stream,
            timeout_s=timeout_s,
            variables=variables or {},
            multitask=multitask,
            background=background,
            webhook=webhook,
        )
        path = f"/conversations/{_q(conversation_id)}/messages"
        request = self._request("POST", path, body=body, stream=stream, turn_timeout=timeout_s)
        return Call(request, partial(_model, TurnResult), resumable=stream)

    def usage(self, start: date | None, end: date | None) -> Call[UsageReport]:
        """``GET /v1/usage``: the tenant's tokens per day, agent and model."""
        params = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v is not None}
        return Call(self._request("GET", "/usage", params=params), partial(_model, UsageReport))

    def get_turn(self, conversation_id: str, turn_id: str) -> Call[TurnResult]:
        """``GET /v1/conversations/{id}/turns/{turn_id}``."""
        path = f"/conversations/{_q(conversation_id)}/turns/{_q(turn_id)}"
        return Call(self._request("GET", path), partial(_model, TurnResult))

    def turn_events(self, conversation_id: str, turn_id: str) -> Call[None]:
        """``GET /v1/conversations/{id}/turns/{turn_id}/events``: a turn's stored events
        as SSE; a broken stream reconnects with ``Last-Event-ID``."""
        path = f"/conversations/{_q(conversation_id)}/turns/{_q(turn_id)}/events"
        return Call(self._request("GET", path, stream=True), _nothing, resumable=True)

    def cancel_turn(self, conversation_id: str, turn_id: str) -> Call[TurnResult]:
        """``POST /v1/conversations/{id}/turns/{turn_id}/cancel`` (stopping twice is
        harmless, so it is retried like an idempotent request)."""
        path = f"/conversations/{_q(conversation_id)}/turns/{_q(turn_id)}/cancel"
        return Call(self._request("POST", path), partial(_model, TurnResult))

    def decide(
        self, conversation_id: str, call_id: str, *, approve: bool, reason: str, stream: bool
    ) -> Call[TurnResult]:
        """``POST /v1/conversations/{id}/approvals/{call_id}``.

        A repeated decision cannot run the call twice (the server answers 409
        no_pending_approval), so it is retried like an idempotent request; it also
        carries an ``Idempotency-Key`` header for servers that replay on it.
        """
        body = ApprovalDecision(approve=approve, reason=reason, stream=stream)
        path = f"/conversations/{_q(conversation_id)}/approvals/{_q(call_id)}"
        request = self._request("POST", path, body=body, stream=stream)
        request.headers["Idempotency-Key"] = uuid.uuid4().hex
        return Call(request, partial(_model, TurnResult))

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, int | str] | None = None,
        stream: bool = False,
        turn_timeout: float | None = None,
    ) -> httpx.Request:
        headers = {
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": f"ray-agents-python/{__version__}",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = body.model_dump_json(exclude_none=True).encode()
        timeout = self._timeout(stream, turn_timeout)
        return httpx.Request(
            method,
            f"{self.base_url}/v1{path}",
            params=params,
            headers=headers,
            content=content,
            extensions={"timeout": timeout.as_dict()},
        )

    def _timeout(self, stream: bool, turn_timeout: float | None) -> httpx.Timeout:
        read = self.timeout.read
        if read is not None and stream:
            read = max(read, STREAM_READ_TIMEOUT)
        elif read is not None and turn_timeout is not None:
            read = max(read, turn_timeout + TURN_TIMEOUT_MARGIN)
        return httpx.Timeout(
            connect=self.timeout.connect,
            read=read,
            write=self.timeout.write,
            pool=self.timeout.pool,
        )


def _q(segment: str) -> str:
    return quote(segment, safe="")


class Pager:
    """Walks the pages of a conversation's stored events, up to an optional limit."""

    def __init__(self, after: int, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.after = after
        self.limit = limit
        self.events: list[Event] = []
        self.more = True

    @property
    def page_size(self) -> int:
        """How many events to ask for next."""
        return PAGE_SIZE if self.limit is None else min(PAGE_SIZE, self.limit - len(self.events))

    def add(self, page: MessagesPage) -> None:
        """Take a page; ``more`` says whether another one is needed."""
        self.events.extend(page.data)
        full = self.limit is not None and len(self.events) >= self.limit
        self.more = page.has_more and page.next_after is not None and not full
        if page.next_after is not None:
            self.after = page.next_after


class ConversationState:
    """What a conversation handle knows: its header, kept current by its turns."""

    def __init__(self, info: Conversation) -> None:
        self._info = info

    @property
    def id(self) -> str:
        """The conversation's id."""
        return self._info.id

    @property
    def agent(self) -> str:
        """The agent that answers the next message (as of the last turn or refresh)."""
        return self._info.agent

    @property
    def info(self) -> Conversation:
        """The conversation's header as last seen (``refresh()`` fetches it again)."""
        return self._info

    def _observe(self, event: Event) -> Event:
        update: dict[str, Any] = {}
        if isinstance(event, HandoffEvent):
            update["agent"] = event.to_agent
        elif isinstance(event, DoneEvent):
            if event.active_agent:
                update["agent"] = event.active_agent
            if event.last_seq is not None:
                update["last_seq"] = event.last_seq
        if update:
            self._info = self._info.model_copy(update=update)
        return event

    def _observe_result(self, result: TurnResult) -> TurnResult:
        if result.agent:
            self._info = self._info.model_copy(update={"agent": result.agent})
        return result
