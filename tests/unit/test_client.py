"""The SDK against a fake of the HTTP API's contract, over httpx.MockTransport.

Every test body runs with both clients: ``api`` yields a factory of ``Client`` or
``AsyncClient``, and ``call``/``collect`` await or iterate whichever it got.
"""

from __future__ import annotations

import inspect
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

import agents.client
from agents.api.types import (
    ERROR_STATUS,
    AgentInfo,
    AgentList,
    ApprovalDecision,
    Conversation,
    CreateConversation,
    SendMessage,
    TurnResult,
)
from agents.client import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    BadRequestError,
    Client,
    ConflictError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    _exceptions,
)
from agents.client._base import MAX_RETRY_WAIT, STREAM_READ_TIMEOUT, Pager
from agents.client._sse import SSEDecoder
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)

KEY = "sk-test"
URL = "http://agents.test"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def error(type_: str, message: str = "nope", **headers: str) -> httpx.Response:
    """An API error reply, as the server sends it."""
    body = {"error": {"type": type_, "message": message, "request_id": "req-err"}}
    return httpx.Response(ERROR_STATUS[type_], json=body, headers=headers)


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body sent in pieces of ``size`` bytes, to both clients."""

    def __init__(self, body: bytes, size: int | None) -> None:
        size = size or max(len(body), 1)
        self.parts = [body[i : i + size] for i in range(0, len(body), size)]

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


class FakeServer:
    """The HTTP API's contract: auth, routes, stored events, scripted turns, SSE.

    ``turns`` are the scripted turns (each message or decision takes the next);
    ``replies`` are served before anything else (an ``Exception`` is raised instead),
    for errors and retries; ``turn_replies`` likewise, but only to messages and
    decisions. ``newline``, ``chunk`` and ``indent`` shape the SSE body.
    """

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.agents = [
            AgentInfo(name="triage", description="routes", model="m", handoffs=["billing"]),
            AgentInfo(name="billing", description="invoices", model="m", tools=["refund"]),
        ]
        self.conversations: dict[str, Conversation] = {}
        self.stored: dict[str, list[Event]] = {}
        self.turns: list[list[Event]] = []
        self.replies: list[httpx.Response | Exception] = []
        self.turn_replies: list[httpx.Response] = []
        self.by_key: dict[str, list[Event]] = {}
        self.newline = "\n"
        self.chunk: int | None = None
        self.indent: int | None = None
        self.extra_sse = ""
        self.cut_after: int | None = None  # the next stream breaks after this many events
        self.added: dict[str, Any] = {}  # fields a newer server adds to every event
        self.new_events: list[dict[str, Any]] = []  # events of kinds a newer server adds

    def dump(self, event: Event) -> dict[str, Any]:
        """An event as JSON, with the fields a newer server adds."""
        return {**json.loads(event.model_dump_json()), **self.added}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.content]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, httpx.RequestError):
                reply.request = request
            if isinstance(reply, Exception):
                raise reply
            return reply
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return error("authentication_error", "invalid API key")
        path = request.url.path
        for method, pattern, route in self._routes():
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                return route(request, *match.groups())
        return error("not_found", f"no route {request.method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        conv = "/v1/conversations/([^/]+)"
        return [
            ("GET", "/v1/agents", self._list_agents),
            ("GET", "/v1/agents/([^/]+)", self._get_agent),
            ("POST", "/v1/conversations", self._create),
            ("GET", conv, self._get),
            ("DELETE", conv, self._delete),
            ("GET", conv + "/messages", self._messages),
            ("POST", conv + "/messages", self._send),
            ("POST", conv + "/approvals/([^/]+)", self._decide),
        ]

    def _list_agents(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=AgentList(data=self.agents).model_dump_json())

    def _get_agent(self, request: httpx.Request, name: str) -> httpx.Response:
        for agent in self.agents:
            if agent.name == name:
                return httpx.Response(200, text=agent.model_dump_json())
        return error("not_found", f"no agent {name!r}")

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = CreateConversation.model_validate_json(request.content)
        if body.agent and body.agent not in {a.name for a in self.agents}:
            return error("not_found", f"no agent {body.agent!r}")
        conv = Conversation(
            id=f"c{len(self.conversations) + 1}",
            agent=body.agent or "triage",
            created_at=NOW,
            updated_at=NOW,
            last_seq=0,
            metadata=body.metadata,
        )
        self.conversations[conv.id] = conv
        self.stored[conv.id] = []
        return httpx.Response(201, text=conv.model_dump_json())

    def _get(self, request: httpx.Request, cid: str) -> httpx.Response:
        if cid not in self.conversations:
            return error("not_found", f"no conversation {cid!r}")
        return httpx.Response(200, text=self.conversations[cid].model_dump_json())

    def _delete(self, request: httpx.Request, cid: str) -> httpx.Response:
        if self.conversations.pop(cid, None) is None:
            return error("not_found", f"no conversation {cid!r}")
        return httpx.Response(204)

    def _messages(self, request: httpx.Request, cid: str) -> httpx.Response:
        after = int(request.url.params.get("after", 0))
        limit = int(request.url.params.get("limit", 100))
        rest = [e for e in self.stored[cid] if (e.seq or 0) > after]
        page = rest[:limit]
        more = len(rest) > limit
        body = {
            "object": "list",
            "data": [self.dump(e) for e in page],
            "has_more": more,
            "next_after": page[-1].seq if more else None,
        }
        return httpx.Response(200, json=body)

    def _send(self, request: httpx.Request, cid: str) -> httpx.Response:
        self._last_event_id = request.headers.get("last-event-id")
        body = SendMessage.model_validate_json(request.content)
        stream = body.stream or request.headers.get("accept") == "text/event-stream"
        first = MessageEvent(content=body.content)
        return self._turn(cid, first, body.idempotency_key, stream)

    def _decide(self, request: httpx.Request, cid: str, call_id: str) -> httpx.Response:
        body = ApprovalDecision.model_validate_json(request.content)
        pending = {e.call_id for e in self.stored[cid] if isinstance(e, ApprovalRequiredEvent)} - {
            e.call_id for e in self.stored[cid] if isinstance(e, ApprovalEvent)
        }
        if call_id not in pending:
            return error("no_pending_approval", f"no call {call_id!r} waits")
        first = ApprovalEvent(call_id=call_id, approved=body.approve, reason=body.reason)
        return self._turn(cid, first, request.headers.get("idempotency-key"), body.stream)

    def _turn(self, cid: str, first: Event, key: str | None, stream: bool) -> httpx.Response:
        if cid not in self.conversations:
            return error("not_found", f"no conversation {cid!r}")
        if self.turn_replies:
            return self.turn_replies.pop(0)
        if key is not None and key in self.by_key:
            events = self.by_key[key]  # a repeated key replays the stored turn
            last = int(self._last_event_id or 0)  # ...after the stream's Last-Event-ID
            stored = [e for e in events if not isinstance(e, TokenEvent)]  # tokens are not
            events = [e for e in stored if e.seq is None or e.seq > last]
        else:
            events = self._run(cid, [first, *self.turns.pop(0)])
            if key is not None:
                self.by_key[key] = events
        return self._sse(events) if stream else self._result(cid, events)

    def _run(self, cid: str, script: list[Event]) -> list[Event]:
        conv, log = self.conversations[cid], self.stored[cid]
        turn_id = uuid.uuid4().hex
        events: list[Event] = []
        for event in script:
            update: dict[str, Any] = {"turn_id": turn_id}
            if isinstance(event, DoneEvent):
                update |= {"conversation_id": cid, "last_seq": len(log)}
                conv = conv.model_copy(update={"agent": event.active_agent or conv.agent})
            elif not isinstance(event, TokenEvent):
                update["seq"] = len(log) + 1
            event = event.model_copy(update=update)
            if event.seq is not None:
                log.append(event)
            events.append(event)
        self.conversations[cid] = conv.model_copy(update={"last_seq": len(log)})
        return events

    def _result(self, cid: str, events: list[Event]) -> httpx.Response:
        done = events[-1]
        assert isinstance(done, DoneEvent)
        answer = next((e for e in events if isinstance(e, AnswerEvent)), None)
        result = TurnResult(
            conversation_id=cid,
            turn_id=done.turn_id,
            status=done.status,
            answer=answer.text if answer else None,
            agent=done.active_agent,
            pending_approvals=[e for e in events if isinstance(e, ApprovalRequiredEvent)],
            error=next((e for e in events if isinstance(e, ErrorEvent)), None),
            usage=done.usage,
            events=[e for e in events if not isinstance(e, TokenEvent)],
        )
        body = json.loads(result.model_dump_json()) | self.added
        body["events"] = [self.dump(e) for e in result.events]
        body["events"][1:1] = self.new_events
        body["pending_approvals"] = [self.dump(e) for e in result.pending_approvals]
        body["usage"] |= self.added
        return httpx.Response(200, json=body)

    def _sse(self, events: list[Event]) -> httpx.Response:
        if self.cut_after is not None:
            events, self.cut_after = events[: self.cut_after], None
        nl = self.newline
        parts = [f": ping{nl}{nl}", self.extra_sse]
        for event in events:
            data = json.dumps(self.dump(event), indent=self.indent)
            lines = [f"event: {event.type}"]
            lines += [f"id: {event.seq}"] if event.seq is not None else []
            lines += [f"data: {line}" for line in data.split("\n")]
            parts.append(nl.join(lines) + nl + nl)
        body = "".join(parts).encode()
        headers = {"content-type": "text/event-stream", "x-request-id": "req-sse"}
        return httpx.Response(200, headers=headers, stream=Chunks(body, self.chunk))


def chat_turn(agent: str = "triage", text: str = "Hello there") -> list[Event]:
    """A turn that streams its answer in two tokens."""
    half = len(text) // 2
    return [
        TokenEvent(agent=agent, text=text[:half]),
        TokenEvent(agent=agent, text=text[half:]),
        AnswerEvent(agent=agent, text=text),
        DoneEvent(active_agent=agent),
    ]


def paused_turn() -> list[Event]:
    """Triage hands off to billing, whose refund waits for approval."""
    return [
        HandoffEvent(agent="triage", to_agent="billing", message="refund"),
        ToolCallEvent(agent="billing", call_id="k1", name="refund", arguments={"order": "A1"}),
        ApprovalRequiredEvent(
            agent="billing", call_id="k1", name="refund", arguments={"order": "A1"}
        ),
        DoneEvent(status="paused", active_agent="billing"),
    ]


def resumed_turn() -> list[Event]:
    return [
        ToolResultEvent(agent="billing", call_id="k1", name="refund", content="refunded"),
        *chat_turn("billing", "Refund done"),
    ]


async def call(value: Any) -> Any:
    """The value of a sync call, or the result of an async one."""
    return await value if inspect.isawaitable(value) else value


async def collect(stream: Any) -> list[Event]:
    if hasattr(stream, "__aiter__"):
        return [event async for event in stream]
    return list(stream)


class Waits:
    """Records what the client would sleep, for both clients, without sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def sync(self, seconds: float) -> None:
        self.seconds.append(seconds)

    async def async_(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture(params=["sync", "async"])
async def api(
    request: pytest.FixtureRequest, server: FakeServer, waits: Waits
) -> AsyncIterator[Callable[..., Any]]:
    """A factory of clients of ``server``: a ``Client`` or an ``AsyncClient``."""
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("api_key", KEY)
        if request.param == "sync":
            client: Any = Client(
                URL,
                http_client=httpx.Client(transport=server.transport()),
                sleep=waits.sync,
                **kwargs,
            )
        else:
            http = httpx.AsyncClient(transport=server.transport())
            client = AsyncClient(URL, http_client=http, sleep=waits.async_, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, Client):
            client._http.close()
        else:
            await client._http.aclose()


@pytest.fixture
def client(api: Callable[..., Any]) -> Any:
    return api()


# --- agents and conversations ---------------------------------------------------


async def test_agents_list_and_get(client: Any, server: FakeServer) -> None:
    agents = await call(client.agents.list())
    assert [a.name for a in agents] == ["triage", "billing"]
    assert (await call(client.agents.get("billing"))).tools == ["refund"]
    request = server.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("ray-agents-python/")
    assert str(request.url) == f"{URL}/v1/agents"


async def test_unknown_agent_is_not_found(client: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        await call(client.agents.get("nobody"))
    assert (caught.value.status_code, caught.value.type) == (404, "not_found")
    assert caught.value.request_id == "req-err"
    assert "nobody" in caught.value.message


async def test_conversation_create_get_refresh_delete(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create(agent="billing", metadata={"user": "u1"}))
    assert (conv.id, conv.agent, conv.info.metadata) == ("c1", "billing", {"user": "u1"})
    assert server.bodies()[-1] == {"agent": "billing", "metadata": {"user": "u1"}}
    again = await call(client.conversations.get("c1"))
    assert again.info == conv.info
    server.conversations["c1"] = server.conversations["c1"].model_copy(update={"agent": "triage"})
    assert (await call(conv.refresh())).agent == "triage"
    assert conv.agent == "triage"
    await call(conv.delete())
    with pytest.raises(NotFoundError):
        await call(client.conversations.get("c1"))
    with pytest.raises(NotFoundError):
        await call(client.conversations.delete("c1"))


async def test_create_without_agent_uses_the_default(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    assert conv.agent == "triage"
    assert server.bodies()[-1] == {"metadata": {}}


async def test_path_segments_are_quoted(client: Any, server: FakeServer) -> None:
    with pytest.raises(NotFoundError):
        await call(client.agents.get("a/b c"))
    assert server.requests[-1].url.raw_path == b"/v1/agents/a%2Fb%20c"


# --- turns ----------------------------------------------------------------------


async def test_send_returns_the_turn_result(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    result = await call(conv.send("hi", timeout_s=5, variables={"user": "Ann"}))
    assert (result.status, result.answer, result.agent) == ("ok", "Hello there", "triage")
    assert [e.type for e in result.events] == ["message", "answer", "done"]
    body = server.bodies()[-1]
    assert body["content"] == "hi" and body["stream"] is False
    assert body["timeout_s"] == 5 and body["variables"] == {"user": "Ann"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["idempotency_key"])
    timeout = server.requests[-1].extensions["timeout"]
    assert timeout["read"] >= 5 + 10


async def test_send_with_a_key_replays_instead_of_running_twice(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    first = await call(conv.send("hi", idempotency_key="k-1"))
    second = await call(conv.send("hi", idempotency_key="k-1"))
    assert first == second
    assert [b["idempotency_key"] for b in server.bodies()[-2:]] == ["k-1", "k-1"]


async def test_send_tracks_the_active_agent(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(paused_turn())
    result = await call(conv.send("refund A1"))
    assert result.status == "paused"
    assert [(p.call_id, p.name) for p in result.pending_approvals] == [("k1", "refund")]
    assert conv.agent == "billing"


async def test_failed_turn_is_a_result_not_an_exception(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(
        [ErrorEvent(code="hop_limit", message="too many hops"), DoneEvent(status="error")]
    )
    result = await call(conv.send("hi"))
    assert result.status == "error"
    assert result.error is not None and result.error.code == "hop_limit"


async def test_stream_yields_typed_events(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append([HandoffEvent(agent="triage", to_agent="billing"), *chat_turn("billing")])
    events = await collect(conv.stream("hi"))
    assert [type(e) for e in events] == [
        MessageEvent,
        HandoffEvent,
        TokenEvent,
        TokenEvent,
        AnswerEvent,
        DoneEvent,
    ]
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == "Hello there"
    assert [e.seq for e in events] == [1, 2, None, None, 3, None]
    assert conv.agent == "billing" and conv.info.last_seq == 3
    request = server.requests[-1]
    assert request.headers["accept"] == "text/event-stream"
    assert json.loads(request.content)["stream"] is True
    assert request.extensions["timeout"]["read"] >= STREAM_READ_TIMEOUT


async def test_failed_streamed_turn_ends_with_error_and_done(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(
        [
            TokenEvent(text="Hel"),
            ErrorEvent(code="deadline_exceeded", message="too slow"),
            DoneEvent(status="error"),
        ]
    )
    events = await collect(conv.stream("hi"))
    assert [e.type for e in events][-2:] == ["error", "done"]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.status == "error"


async def test_stream_refused_before_it_starts_raises(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.replies.append(error("conversation_busy", "a turn is running"))
    with pytest.raises(ConflictError) as caught:
        await collect(conv.stream("hi"))
    assert caught.value.type == "conversation_busy"


async def test_stream_cut_before_done_reconnects_after_its_last_event(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(
        [HandoffEvent(agent="triage", to_agent="billing"), *chat_turn("billing", "Hi you")]
    )
    server.cut_after = 3  # message, handoff, a token: then the connection drops
    events = await collect(conv.stream("hi"))
    # Every stored event exactly once, in order; the lost token is not sent again.
    assert [e.type for e in events] == ["message", "handoff", "token", "answer", "done"]
    assert [e.seq for e in events if e.seq is not None] == [1, 2, 3]
    first, again = server.requests[-2:]
    assert "last-event-id" not in first.headers and again.headers["last-event-id"] == "2"
    assert (
        json.loads(again.content)["idempotency_key"] == json.loads(first.content)["idempotency_key"]
    )


async def test_stream_cut_before_done_is_a_connection_error(
    api: Callable[..., Any], server: FakeServer
) -> None:
    client = api(max_retries=0)
    conv = await call(client.conversations.create())
    body = b'event: token\ndata: {"type": "token", "text": "Hel"}\n\n'
    server.replies.append(
        httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    with pytest.raises(APIConnectionError, match="before the turn's done event"):
        await collect(conv.stream("hi"))


async def test_stream_that_is_not_sse_is_a_validation_error(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.replies.append(httpx.Response(200, json={"status": "ok"}))
    with pytest.raises(APIResponseValidationError, match="expected an event stream"):
        await collect(conv.stream("hi"))


async def test_stream_can_be_closed_early(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    stream = conv.stream("hi")
    if isinstance(client, Client):
        with stream:
            first = next(stream)
        with pytest.raises(StopIteration):
            next(stream)
    else:
        async with stream:
            first = await anext(stream)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    assert isinstance(first, MessageEvent)


# --- SSE ------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("chunk", [None, 1, 7])
@pytest.mark.parametrize("indent", [None, 2])
async def test_sse_framing(
    client: Any, server: FakeServer, newline: str, chunk: int | None, indent: int | None
) -> None:
    """CRLF/CR line ends, bodies split anywhere and multi-line data decode the same."""
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    server.newline, server.chunk, server.indent = newline, chunk, indent
    server.extra_sse = f": ping{newline}{newline}retry: 3000{newline}{newline}"
    events = await collect(conv.stream("hi"))
    assert [e.type for e in events] == ["message", "token", "token", "answer", "done"]


async def test_unknown_event_types_are_skipped(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    server.extra_sse = (
        'event: thought\ndata: {"type": "thought", "text": "hmm"}\n\n'
        'data: {"type": "thought", "text": "no event field"}\n\n'
    )
    events = await collect(conv.stream("hi"))
    assert [e.type for e in events] == ["message", "token", "token", "answer", "done"]


async def test_malformed_known_event_is_a_validation_error(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    server.extra_sse = 'event: token\ndata: {"type": "token"}\n\n'
    with pytest.raises(APIResponseValidationError, match="malformed 'token' event"):
        await collect(conv.stream("hi"))


async def test_an_old_sdk_ignores_new_event_fields_in_json_results(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.added = {"new_field": 1}  # on the result, every event, usage
    server.turns.append(paused_turn())
    result = await call(conv.send("refund A1"))
    assert [e.type for e in result.events] == [
        "message",
        "handoff",
        "tool_call",
        "approval_required",
        "done",
    ]
    assert [p.call_id for p in result.pending_approvals] == ["k1"]
    assert [e.seq for e in await call(conv.messages())] == [1, 2, 3, 4]  # pages too
    assert not hasattr(result.events[-1], "new_field")


async def test_an_old_sdk_skips_new_event_types_in_json_results(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.new_events = [{"type": "reasoning", "seq": 99, "agent": "triage", "text": "hmm"}]
    server.turns.append(paused_turn())
    result = await call(conv.send("refund A1"))  # as an event stream skips them
    assert [e.type for e in result.events][:2] == ["message", "handoff"]
    assert "reasoning" not in [e.type for e in result.events]


async def test_an_old_sdk_ignores_new_event_fields_in_streams(
    client: Any, server: FakeServer
) -> None:
    conv = await call(client.conversations.create())
    server.added = {"new_field": 1}
    server.turns.append(chat_turn())
    streamed = await collect(conv.stream("hi"))
    assert [e.type for e in streamed] == ["message", "token", "token", "answer", "done"]
    assert not hasattr(streamed[-1], "new_field")


def test_sse_decoder_fields() -> None:
    decoder = SSEDecoder()
    lines = [
        ": comment",
        "event: x",
        "id: 7",
        "retry: 10",
        "data:first",
        "data:  second",
        "data",
        "unknown: field",
        "",
    ]
    messages = [decoder.decode(line) for line in lines]
    assert messages[:-1] == [None] * (len(lines) - 1)
    message = messages[-1]
    assert message is not None
    assert (message.event, message.data, message.id, message.retry) == (
        "x",
        "first\n second\n",
        "7",
        10,
    )
    assert decoder.decode("") is None  # a blank line without data dispatches nothing
    for line in ("data: y\r", ""):
        last = decoder.decode(line)
    assert last is not None and (last.event, last.data, last.id) == ("message", "y", "7")


# --- messages and approvals ------------------------------------------------------


async def test_messages_pages_through_every_stored_event(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    server.stored["c1"] = [MessageEvent(seq=i, content=str(i)) for i in range(1, 251)]
    events = await call(conv.messages())
    assert [e.seq for e in events] == list(range(1, 251))
    pages = [r.url.params for r in server.requests if r.url.path.endswith("/messages")]
    assert [(p["after"], p["limit"]) for p in pages] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "100"),
    ]
    assert [e.seq for e in await call(conv.messages(after=240))] == list(range(241, 251))
    assert [e.seq for e in await call(conv.messages(after=50, limit=120))] == list(range(51, 171))
    page = await call(conv.messages_page(after=10, limit=5))
    assert ([e.seq for e in page.data], page.has_more, page.next_after) == (
        [11, 12, 13, 14, 15],
        True,
        15,
    )


def test_pager_rejects_a_useless_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        Pager(0, 0)


@pytest.mark.parametrize("approve", [True, False])
async def test_approve_and_reject(client: Any, server: FakeServer, approve: bool) -> None:
    conv = await call(client.conversations.create())
    server.turns += [paused_turn(), resumed_turn()]
    await call(conv.send("refund A1"))
    decide = conv.approve if approve else conv.reject
    result = await call(decide("k1", reason="ok by me"))
    assert (result.status, result.answer) == ("ok", "Refund done")
    assert server.bodies()[-1] == {"approve": approve, "reason": "ok by me", "stream": False}
    request = server.requests[-1]
    assert request.url.path == "/v1/conversations/c1/approvals/k1"
    assert re.fullmatch(r"[0-9a-f]{32}", request.headers["idempotency-key"])
    with pytest.raises(agents.client.NoPendingApprovalError):
        await call(decide("k1"))


@pytest.mark.parametrize("approve", [True, False])
async def test_stream_decisions(client: Any, server: FakeServer, approve: bool) -> None:
    conv = await call(client.conversations.create())
    server.turns += [paused_turn(), resumed_turn()]
    await collect(conv.stream("refund A1"))
    decide = conv.stream_approve if approve else conv.stream_reject
    events = await collect(decide("k1"))
    assert [e.type for e in events] == [
        "approval",
        "tool_result",
        "token",
        "token",
        "answer",
        "done",
    ]
    first = events[0]
    assert isinstance(first, ApprovalEvent) and first.approved is approve
    assert server.bodies()[-1]["stream"] is True


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize("type_", sorted(ERROR_STATUS))
async def test_each_error_type_maps_to_its_class(
    api: Callable[..., Any], server: FakeServer, type_: str
) -> None:
    client = api(max_retries=0)
    server.replies.append(error(type_, "why", **{"Retry-After": "3"}))
    with pytest.raises(APIStatusError) as caught:
        await call(client.agents.list())
    exc = caught.value
    assert type(exc) is _exceptions._BY_TYPE[type_]
    assert (exc.status_code, exc.type, exc.message) == (ERROR_STATUS[type_], type_, "why")
    assert exc.retry_after == 3.0
    assert str(exc) == f"{ERROR_STATUS[type_]} {type_}: why"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (409, ConflictError),
        (422, BadRequestError),
        (418, APIStatusError),
        (502, InternalServerError),
        (503, ServiceUnavailableError),
    ],
)
async def test_a_body_that_is_not_an_api_error_maps_by_status(
    api: Callable[..., Any], server: FakeServer, status: int, cls: type[APIStatusError]
) -> None:
    client = api(max_retries=0)
    page = httpx.Response(status, text="<html>bad gateway</html>", headers={"X-Request-ID": "r9"})
    server.replies.append(page)
    with pytest.raises(APIStatusError) as caught:
        await call(client.agents.list())
    assert type(caught.value) is cls
    assert (caught.value.type, caught.value.request_id) == ("unknown", "r9")
    assert caught.value.message == "<html>bad gateway</html>"


async def test_wrong_key_is_an_authentication_error(api: Callable[..., Any]) -> None:
    client = api(api_key="wrong")
    with pytest.raises(agents.client.AuthenticationError, match="invalid API key"):
        await call(client.agents.list())


async def test_invalid_success_body_is_a_validation_error(client: Any, server: FakeServer) -> None:
    server.replies.append(httpx.Response(200, json={"data": "nope"}))
    with pytest.raises(APIResponseValidationError, match="not a valid AgentList") as caught:
        await call(client.agents.list())
    assert caught.value.status_code == 200


async def test_an_empty_message_is_refused_before_sending(client: Any, server: FakeServer) -> None:
    conv = await call(client.conversations.create())
    with pytest.raises(ValueError, match="content"):
        await call(conv.send(""))
    assert len(server.requests) == 1


# --- retries --------------------------------------------------------------------


async def test_429_waits_retry_after_and_keeps_the_idempotency_key(
    client: Any, server: FakeServer, waits: Waits
) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    server.replies += [
        error("rate_limit_exceeded", **{"Retry-After": "2"}),
        error("overloaded", **{"Retry-After": "0.5"}),
    ]
    result = await call(conv.send("hi"))
    assert result.answer == "Hello there"
    assert waits.seconds == [2.0, 0.5]
    keys = [b["idempotency_key"] for b in server.bodies()[-3:]]
    assert len(set(keys)) == 1


async def test_retry_after_is_capped(client: Any, server: FakeServer, waits: Waits) -> None:
    server.replies.append(error("rate_limit_exceeded", **{"Retry-After": "600"}))
    await call(client.agents.list())
    assert waits.seconds == [MAX_RETRY_WAIT]


async def test_without_retry_after_the_backoff_is_jittered_exponential(
    api: Callable[..., Any], server: FakeServer, waits: Waits
) -> None:
    client = api(max_retries=3)
    server.replies += [error("agent_unavailable")] * 3
    await call(client.agents.list())
    assert len(waits.seconds) == 3
    assert all(0 <= s <= cap for s, cap in zip(waits.seconds, [0.5, 1, 2], strict=True))


async def test_retries_stop_after_max_retries(
    api: Callable[..., Any], server: FakeServer, waits: Waits
) -> None:
    client = api(max_retries=2)
    server.replies += [error("rate_limit_exceeded", **{"Retry-After": "1"})] * 5
    with pytest.raises(RateLimitError) as caught:
        await call(client.agents.list())
    assert caught.value.retry_after == 1.0
    assert len(server.requests) == 3 and waits.seconds == [1.0, 1.0]


async def test_max_retries_zero_disables_retries(
    api: Callable[..., Any], server: FakeServer, waits: Waits
) -> None:
    client = api(max_retries=0)
    server.replies.append(error("overloaded"))
    with pytest.raises(agents.client.OverloadedError):
        await call(client.agents.list())
    assert len(server.requests) == 1 and waits.seconds == []


@pytest.mark.parametrize("type_", ["invalid_request", "not_found"])
async def test_client_errors_are_not_retried(
    client: Any, server: FakeServer, waits: Waits, type_: str
) -> None:
    server.replies.append(error(type_))
    with pytest.raises(APIStatusError):
        await call(client.agents.list())
    assert len(server.requests) == 1 and waits.seconds == []


async def test_a_500_is_retried_only_where_a_retry_is_safe(
    client: Any, server: FakeServer, waits: Waits
) -> None:
    # A send (it carries an idempotency key) retried after a replica died under it.
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    server.replies.append(httpx.Response(500, text="Internal Server Error"))
    result = await call(conv.send("hi"))
    assert result.answer == "Hello there" and len(waits.seconds) == 1
    keys = {json.loads(r.content)["idempotency_key"] for r in server.requests[-2:]}
    assert len(keys) == 1
    # Creating a conversation is not retried: a retry could create a second one.
    server.replies.append(error("internal_error"))
    with pytest.raises(InternalServerError):
        await call(client.conversations.create())
    assert len(waits.seconds) == 1


async def test_connect_errors_are_retried_with_the_same_key(
    client: Any, server: FakeServer, waits: Waits
) -> None:
    conv = await call(client.conversations.create())
    server.turns.append(chat_turn())
    server.replies += [httpx.ConnectError("refused"), httpx.RemoteProtocolError("dropped")]
    events = await collect(conv.stream("hi"))
    assert events[-1].type == "done"
    assert len(waits.seconds) == 2
    sends = [r for r in server.requests if r.method == "POST" and r.url.path.endswith("messages")]
    assert len(sends) == 3
    assert len({json.loads(r.content)["idempotency_key"] for r in sends}) == 1


async def test_create_is_retried_only_when_surely_unsent(
    client: Any, server: FakeServer, waits: Waits
) -> None:
    server.replies.append(httpx.ConnectError("refused"))
    assert (await call(client.conversations.create())).id == "c1"
    server.replies.append(httpx.RemoteProtocolError("dropped after sending"))
    with pytest.raises(APIConnectionError) as caught:
        await call(client.conversations.create())
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert len(waits.seconds) == 1


async def test_a_read_timeout_is_not_retried(client: Any, server: FakeServer, waits: Waits) -> None:
    server.replies.append(httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError) as caught:
        await call(client.agents.list())
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert caught.value.type == "timeout" and caught.value.status_code is None
    assert waits.seconds == []


async def test_an_unreachable_server_is_a_connection_error(
    api: Callable[..., Any], server: FakeServer
) -> None:
    client = api(max_retries=1)
    server.replies += [httpx.ConnectError("refused")] * 2
    with pytest.raises(APIConnectionError, match=r"GET http://agents\.test/v1/agents failed"):
        await call(client.agents.list())


# --- construction ---------------------------------------------------------------


async def test_url_and_key_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: FakeServer
) -> None:
    monkeypatch.setenv("RAY_AGENTS_URL", "http://env.test/v1/")
    monkeypatch.setenv("RAY_AGENTS_API_KEY", KEY)
    with Client(http_client=httpx.Client(transport=server.transport())) as client:
        assert client.base_url == "http://env.test"
        await call(client.agents.list())
    assert str(server.requests[0].url) == "http://env.test/v1/agents"
    monkeypatch.delenv("RAY_AGENTS_URL")
    with Client(api_key="x") as client:
        assert client.base_url == "http://127.0.0.1:8000"


def test_a_client_closes_only_the_connections_it_owns(server: FakeServer) -> None:
    with Client(URL, KEY) as client:
        assert not client._http.is_closed
    assert client._http.is_closed
    http = httpx.Client(transport=server.transport())
    with Client(URL, KEY, http_client=http):
        pass
    assert not http.is_closed
    http.close()


async def test_an_async_client_closes_its_connections() -> None:
    async with AsyncClient(URL, KEY) as client:
        assert not client._http.is_closed
    assert client._http.is_closed


def test_timeouts() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        Client(URL, KEY, max_retries=-1)
    with Client(URL, KEY, timeout=httpx.Timeout(5.0, connect=1.0)) as client:
        request = client._requests.list_agents().request
    assert request.extensions["timeout"] == {"connect": 1.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def test_retry_after_parses_seconds_and_dates() -> None:
    assert _exceptions.retry_after("1.5") == 1.5
    assert _exceptions.retry_after("-4") == 0.0
    assert _exceptions.retry_after(None) is None
    assert _exceptions.retry_after("soon") is None
    soon = format_datetime(datetime.fromtimestamp(time.time() + 100, UTC), usegmt=True)
    seconds = _exceptions.retry_after(soon)
    assert seconds is not None and 90 < seconds <= 100


# --- the public surface ----------------------------------------------------------


def test_all_is_sorted_and_exported() -> None:
    names = agents.client.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(agents.client, name) is not None


def test_the_exception_tree_is_drawn_and_rooted_in_api_error() -> None:
    doc = _exceptions.__doc__ or ""
    for name in _exceptions.__all__:
        cls = getattr(_exceptions, name)
        assert issubclass(cls, APIError)
        assert re.search(rf"\b{name}\b", doc), name
    for type_, status in ERROR_STATUS.items():
        cls = _exceptions._BY_TYPE[type_]
        assert _exceptions._BY_STATUS.get(status, InternalServerError) in cls.__mro__, type_


def test_every_route_speaks_the_documented_paths() -> None:
    with Client(URL, KEY) as client:
        requests = client._requests
    built = [
        requests.list_agents(),
        requests.get_agent("a"),
        requests.create_conversation(None, None),
        requests.get_conversation("c"),
        requests.delete_conversation("c"),
        requests.messages("c", 0, 100),
        requests.send("c", "hi", stream=False, idempotency_key=None, timeout_s=None, variables={}),
        requests.decide("c", "k", approve=True, reason="", stream=True),
    ]
    assert [(c.request.method, c.request.url.path) for c in built] == [
        ("GET", "/v1/agents"),
        ("GET", "/v1/agents/a"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/conversations/c"),
        ("DELETE", "/v1/conversations/c"),
        ("GET", "/v1/conversations/c/messages"),
        ("POST", "/v1/conversations/c/messages"),
        ("POST", "/v1/conversations/c/approvals/k"),
    ]
