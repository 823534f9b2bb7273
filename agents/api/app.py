"""The HTTP API: FastAPI routes over ``Conversations``, all under ``/v1``.

    GET    /healthz, /readyz                      liveness; readiness (the store answers)
    GET    /v1/agents, /v1/agents/{name}          the agents
    POST   /v1/conversations                      start one        GET/DELETE .../{id}
                                                  (DELETE stops a running turn)
    GET    /v1/conversations/{id}/messages        stored events, paginated
    POST   /v1/conversations/{id}/messages        a turn: JSON, or SSE with stream (a retry
                                                  with the same idempotency key joins it;
                                                  Last-Event-ID resumes its stream), or
                                                  202 at once with background
    GET    /v1/conversations/{id}/turns/{turn_id}         a turn's status and result
    GET    /v1/conversations/{id}/turns/{turn_id}/events  its stored events as SSE, to
                                                  its done (Last-Event-ID resumes)
    POST   /v1/conversations/{id}/turns/{turn_id}/cancel  stop a running turn
    GET    /v1/usage                              the tenant's tokens by day, agent, model
    POST   /v1/conversations/{id}/approvals/{call_id}   decide a paused tool call
    GET    /v1/models, POST /v1/chat/completions  OpenAI-compatible; model = agent

``create_app`` builds it over a ``Conversations`` (in a Serve replica, or in-process
for tests). Every route but health needs an API key; conversations belong to the
key's tenant. Turns are bounded per key and per replica, never queued without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Sequence,
)
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from agents._streams import closing, with_heartbeats
from agents.api._a2a import install_a2a
from agents.api._auth import Authenticator, Caller
from agents.api._errors import ApiError, api_error, install_error_handlers
from agents.api._guard import RequestGuard
from agents.api._limits import RateLimiter, Slots
from agents.api._mcp import MCP_ROUTE, McpEndpoint
from agents.api._openai import ChatCompletionRequest, ChunkWriter, completion, split_history
from agents.api._results import turn_result
from agents.api._sse import HEARTBEAT, EventStreamResponse, data_frame, event_frame
from agents.api._telemetry import RequestTelemetry
from agents.api._webhooks import Webhooks
from agents.api.spec import ApiSpec, Scope
from agents.api.types import (
    MAX_SEQ,
    AgentInfo,
    AgentList,
    ApprovalDecision,
    Conversation,
    CreateConversation,
    ErrorBody,
    MessagesPage,
    SendMessage,
    TurnResult,
    UsageReport,
    UsageRow,
)
from agents.budgets import spent
from agents.conversations import Conversations
from agents.errors import (
    BudgetExceededError,
    RayAgentsError,
    VariableNotAllowedError,
    WebhookNotAllowedError,
)
from agents.events import (
    DoneEvent,
    ErrorEvent,
    Event,
)
from agents.observability import metrics as m
from agents.protocol import Budget, DecisionRequest, SendRequest, TokenBudgets
from agents.spec import AgentSpec
from agents.store.base import ConversationInfo, TurnRecord

__all__ = ["create_app"]

log = logging.getLogger("ray_agents.api")

_AFTER: set[asyncio.Task[object]] = set()
"""Tasks a turn's end started (a webhook's delivery): kept so none is collected."""
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503, 504)
}


def create_app(
    conversations: Conversations,
    agents: Sequence[AgentSpec],
    spec: ApiSpec,
    *,
    behind_serve: bool = False,
) -> FastAPI:
    """The API app over ``conversations``; ``agents`` describe the app's agents."""
    from agents import __version__

    app = FastAPI(
        title="ray-agents",
        version=__version__,
        description="Multi-agent conversations over a shared LLM pool.",
        responses=_ERRORS,
    )
    app.state.api = _Api(conversations, agents, spec, Webhooks(conversations.store, spec.webhooks))
    install_error_handlers(app)
    app.add_middleware(
        RequestGuard, max_body_bytes=spec.limits.max_body_bytes, add_header=not behind_serve
    )
    app.add_middleware(RequestTelemetry)  # the last added is the outermost
    app.include_router(_router)
    if spec.a2a.enabled:
        install_a2a(
            app,
            app.state.api,
            agents,
            spec.a2a,
            authenticate=_scoped("conversations"),
            default_agent=conversations.default_agent,
            secured=not spec.open,
        )
    if spec.mcp.enabled:
        endpoint = McpEndpoint(
            app.state.api, agents, authenticate=_scoped("conversations"), local_only=spec.open
        )
        app.state.api.mcp = endpoint
        app.router.routes.append(Route(MCP_ROUTE, endpoint, methods=["GET", "POST", "DELETE"]))
    return app


class _Api:
    """What the routes share: the conversations, the agents, keys and limits."""

    def __init__(
        self,
        conversations: Conversations,
        agents: Sequence[AgentSpec],
        spec: ApiSpec,
        webhooks: Webhooks,
    ) -> None:
        self.conversations = conversations
        self.webhooks = webhooks
        self.mcp: McpEndpoint | None = None
        """The MCP server at /mcp, when the app serves one."""
        # Background turns run as tasks of this replica; kept here so none is collected.
        self.background: set[asyncio.Task[None]] = set()
        self.limits = spec.limits
        self.auth = Authenticator(spec)
        self.rate = RateLimiter(spec.limits.requests_per_minute, spec.limits.burst)
        self.key_turns = Slots(
            spec.limits.max_streams_per_key, "rate_limit_exceeded", "concurrent turns per key"
        )
        self.turns = Slots(spec.limits.max_concurrent_turns, "overloaded", "turns in progress")
        self.started = int(time.time())
        self.budgets = spec.budgets
        self.specs = {a.name: a for a in agents}
        self.agents = {
            a.name: AgentInfo(
                name=a.name,
                description=a.description,
                model=a.model,
                tools=list(a.tools),
                handoffs=list(a.handoffs),
                asks=list(a.asks),
                default=a.name == conversations.default_agent,
            )
            for a in agents
        }

    async def close(self) -> None:
        """Stop what the routes started: webhook deliveries, the MCP server's task."""
        await self.webhooks.close()
        if self.mcp is not None:
            await self.mcp.close()

    def check_variables(self, info: ConversationInfo, variables: dict[str, str]) -> None:
        """400 naming each variable the conversation's active agent does not let a
        caller set (its ``caller_variables``)."""
        spec = self.specs.get(info.active_agent)
        refused = spec.refused_variables(variables) if spec is not None else []
        if refused:
            allowed = ", ".join(spec.caller_variables) if spec is not None else ""
            raise VariableNotAllowedError(
                f"variables: agent {info.active_agent!r} does not let a caller set "
                f"{', '.join(map(repr, refused))} (it allows: {allowed or 'none'})"
            )

    async def check_budget(
        self, caller: Caller, conversation_id: str, idempotency_key: str | None = None
    ) -> TokenBudgets:
        """The token budgets of a turn ``caller`` starts in the conversation (the app's,
        with the key's own over them); 429 ``budget_exceeded`` when one is spent. A
        retry of a turn already begun (its idempotency key) is not refused: it joins."""
        limits = self.budgets.overridden(caller.budgets)
        if not limits.limited:  # nothing to check: no store read on the send path
            return limits
        if idempotency_key is not None and conversation_id:
            if await self.conversations.store.turn(conversation_id, idempotency_key):
                return limits
        budget = Budget(
            tenant=caller.tenant, conversation_id=conversation_id, **limits.model_dump()
        )
        reason = await spent(self.conversations.store, budget, time.time())
        if reason is not None:
            raise BudgetExceededError(
                f"{reason}: no new turn starts until the budget is raised or its period ends"
            )
        return limits

    async def owned_turn(self, conversation_id: str, turn_id: str, caller: Caller) -> TurnRecord:
        """A turn of the caller's conversation; 404 for a missing one (and for a turn of
        another tenant's conversation)."""
        await self.owned(conversation_id, caller)
        turn = await self.conversations.store.turn_by_id(conversation_id, turn_id)
        if turn is None:
            raise ApiError("not_found", f"no turn {turn_id!r} in conversation {conversation_id!r}")
        return turn

    async def owned(self, conversation_id: str, caller: Caller) -> ConversationInfo:
        """The caller's conversation; 404 for a missing one and for another tenant's."""
        info = await self.conversations.get(conversation_id)
        if info is None or info.owner != caller.tenant:
            raise ApiError("not_found", f"no conversation with id {conversation_id!r}")
        return info

    def run_in_background(self, started: _Started, conversation_id: str, turn_id: str) -> None:
        """Drive a started turn to its end in a task of this replica, then send its
        webhook (if it has one: the store knows). Should this replica die first, the
        turn's lease runs out and another replica resumes it, and sends the webhook."""

        async def run() -> None:
            try:
                await started.all()
            except Exception:  # the turn closed itself in the store; the log says why
                log.exception("a background turn failed", extra={"turn_id": turn_id})
            await self.webhooks.deliver(conversation_id, turn_id)

        task = asyncio.get_running_loop().create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def start(self, caller: Caller, events: AsyncGenerator[Event, None]) -> _Started:
        """Take the turn's places in the limits and run it up to its first event.

        Errors before the first event (an unknown agent, a busy conversation) become
        plain error responses; after it, the turn reports them as events.
        """
        try:
            self.key_turns.take(caller.key_hash)
        except ApiError:
            m.API_RATE_LIMITED.inc(reason="streams")
            raise
        try:
            self.turns.take()
        except ApiError:
            self.key_turns.give(caller.key_hash)
            raise
        released = False

        async def finish() -> None:
            nonlocal released
            if released:
                return
            released = True
            try:
                await events.aclose()
            finally:
                self.turns.give()
                self.key_turns.give(caller.key_hash)

        try:
            first = await anext(events)
        except BaseException:
            await asyncio.shield(finish())
            raise
        return _Started(first, events, finish)


@dataclass
class _Started:
    """A turn that produced its first event: the rest, and its cleanup."""

    first: Event
    rest: AsyncGenerator[Event, None]
    finish: Callable[[], Awaitable[None]]

    def on_end(
        self,
        then: Callable[[str, str], Coroutine[Any, Any, object]],
        conversation_id: str,
        turn_id: str,
    ) -> None:
        """After the cleanup, start ``then(conversation_id, turn_id)`` in a task."""
        finish = self.finish

        async def finished() -> None:
            await finish()
            task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
                then(conversation_id, turn_id)
            )
            _AFTER.add(task)
            task.add_done_callback(_AFTER.discard)

        self.finish = finished

    async def all(self) -> list[Event]:
        """Every event of the turn, to its end."""
        try:
            return [self.first] + [event async for event in self.rest]
        finally:
            await asyncio.shield(self.finish())

    async def frames(self, heartbeat_s: float) -> AsyncIterator[Event | None]:
        """The events, and None for each idle ``heartbeat_s``."""
        yield self.first
        async for item in with_heartbeats(self.rest, heartbeat_s):
            yield item


def _api(request: Request) -> _Api:
    api: _Api = request.app.state.api
    return api


def _caller(request: Request) -> Caller:
    api = _api(request)
    caller = api.auth(request)
    try:
        api.rate.take(caller.key_hash, caller.requests_per_minute, caller.burst)
    except ApiError:
        m.API_RATE_LIMITED.inc(reason="rate")
        raise
    return caller


def _scoped(scope: Scope) -> Callable[[Request], Caller]:
    """A dependency: the caller, whose key must have ``scope`` (else 403)."""

    def caller(request: Request) -> Caller:
        found = _caller(request)
        found.require(scope)
        return found

    return caller


ApiDep = Annotated[_Api, Depends(_api)]
CallerDep = Annotated[Caller, Depends(_caller)]
"""Any valid key (reading the app's agents and models)."""
OwnerDep = Annotated[Caller, Depends(_scoped("conversations"))]
"""A key with the ``conversations`` scope: its tenant's conversations."""
ApproverDep = Annotated[Caller, Depends(_scoped("approvals"))]
"""A key with the ``approvals`` scope: decisions on its tenant's paused tool calls."""
_router = APIRouter()


@_router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@_router.get("/readyz", tags=["health"])
async def readyz(api: ApiDep) -> dict[str, str]:
    """The app can serve: its conversation store answers."""
    try:
        await api.conversations.get("readyz-probe")
    except RayAgentsError as exc:
        raise ApiError("agent_unavailable", "the conversation store is unavailable") from exc
    return {"status": "ready"}


@_router.get("/v1/agents", tags=["agents"])
async def list_agents(api: ApiDep, caller: CallerDep) -> AgentList:
    """The application's agents."""
    return AgentList(data=list(api.agents.values()))


@_router.get("/v1/agents/{name}", tags=["agents"])
async def get_agent(name: str, api: ApiDep, caller: CallerDep) -> AgentInfo:
    """One agent."""
    info = api.agents.get(name)
    if info is None:
        raise ApiError("not_found", f"no agent named {name!r}; see GET /v1/agents")
    return info


@_router.post("/v1/conversations", status_code=201, tags=["conversations"])
async def create_conversation(
    body: CreateConversation, api: ApiDep, caller: OwnerDep
) -> Conversation:
    """Start a conversation with an agent (the app's default agent if none is named)."""
    if body.agent is not None and body.agent not in api.agents:
        raise ApiError("not_found", f"no agent named {body.agent!r}; see GET /v1/agents")
    info = await api.conversations.create(
        agent=body.agent, owner=caller.tenant, metadata=body.metadata
    )
    return _conversation(info)


@_router.get("/v1/conversations/{conversation_id}", tags=["conversations"])
async def get_conversation(conversation_id: str, api: ApiDep, caller: OwnerDep) -> Conversation:
    """A conversation's header."""
    return _conversation(await api.owned(conversation_id, caller))


@_router.delete("/v1/conversations/{conversation_id}", status_code=204, tags=["conversations"])
async def delete_conversation(conversation_id: str, api: ApiDep, caller: OwnerDep) -> Response:
    """Delete a conversation and everything stored with it; a turn that runs stops."""
    await api.owned(conversation_id, caller)
    await api.conversations.delete(conversation_id)
    return Response(status_code=204)


@_router.get("/v1/conversations/{conversation_id}/messages", tags=["conversations"])
async def list_messages(
    conversation_id: str,
    api: ApiDep,
    caller: OwnerDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Events with seq above this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page.")] = 100,
) -> MessagesPage:
    """The conversation's stored events in order (tokens are never stored)."""
    await api.owned(conversation_id, caller)
    events = await api.conversations.history(conversation_id, after_seq=after, limit=limit + 1)
    page, more = events[:limit], len(events) > limit
    last = page[-1].seq if page else None
    return MessagesPage(data=page, has_more=more, next_after=last if more else None)


@_router.post(
    "/v1/conversations/{conversation_id}/messages",
    tags=["conversations"],
    response_model=TurnResult,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def send_message(
    conversation_id: str, body: SendMessage, request: Request, api: ApiDep, caller: OwnerDep
) -> Response:
    """Send a user message: the turn's result, or its events as Server-Sent Events."""
    if len(body.content) > api.limits.max_message_chars:
        raise ApiError(
            "invalid_request",
            f"content: {len(body.content)} characters; the limit is {api.limits.max_message_chars}",
        )
    api.check_variables(await api.owned(conversation_id, caller), body.variables)
    if body.webhook is not None and not api.webhooks.allows(body.webhook):
        raise WebhookNotAllowedError(
            "webhook: the URL is not in the app's api.webhooks.allow list (ask the operator "
            "to allow its scheme, host, port and path)"
        )
    stream = _streamed(request, body.stream) and not body.background
    budgets = await api.check_budget(caller, conversation_id, body.idempotency_key)
    send = SendRequest(
        message=body.content,
        conversation_id=conversation_id,
        idempotency_key=body.idempotency_key,
        timeout_s=body.timeout_s,
        variables=body.variables,
        after_seq=0 if body.background else _last_event_id(request, body.idempotency_key),
        tokens=stream,
        multitask=body.multitask,
        webhook=body.webhook,
        budgets=budgets,
    )
    started = await api.start(caller, api.conversations.send(send))
    if body.background:
        return await _accepted(api, conversation_id, started)
    if body.webhook is not None:  # told once the turn ends, however its reply is read
        started.on_end(api.webhooks.deliver, conversation_id, started.first.turn_id or "")
    return await _reply(request, api, conversation_id, started, stream)


async def _accepted(api: _Api, conversation_id: str, started: _Started) -> Response:
    """202 for a background turn: its id and its opening event; it runs on here. (A
    retried background send of a turn that ended gets its status as it is.)"""
    turn_id = started.first.turn_id or ""
    api.run_in_background(started, conversation_id, turn_id)
    m.API_BACKGROUND_TURNS.inc(agent=started.first.agent or "")
    turn = await api.conversations.store.turn_by_id(conversation_id, turn_id)
    status = turn.status if turn is not None else "running"
    accepted = turn_result(conversation_id, [started.first], status=status)
    location = f"/v1/conversations/{conversation_id}/turns/{turn_id}"
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": location}
    )


@_router.get("/v1/conversations/{conversation_id}/turns/{turn_id}", tags=["conversations"])
async def get_turn(conversation_id: str, turn_id: str, api: ApiDep, caller: OwnerDep) -> TurnResult:
    """A turn's status ('running' until its done event) and its result so far."""
    turn = await api.owned_turn(conversation_id, turn_id, caller)
    events = await api.conversations.history_of_turn(turn)
    return turn_result(conversation_id, events, status=turn.status)


@_router.get(
    "/v1/conversations/{conversation_id}/turns/{turn_id}/events",
    tags=["conversations"],
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def turn_events(
    conversation_id: str,
    turn_id: str,
    request: Request,
    api: ApiDep,
    caller: OwnerDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Events with seq above this (or Last-Event-ID).")
    ] = 0,
) -> Response:
    """A turn's stored events as Server-Sent Events, as they are stored, to its done
    (tokens are not stored, so none stream here). ``Last-Event-ID`` resumes."""
    await api.owned_turn(conversation_id, turn_id, caller)
    after = max(after, _event_id(request))
    api.key_turns.take(caller.key_hash)  # an open stream is one of the key's places
    followed = api.conversations.follow(conversation_id, turn_id, after_seq=after)

    async def frames() -> AsyncIterator[bytes]:
        async with closing(followed) as events:
            async for item in with_heartbeats(events, api.limits.heartbeat_s):
                yield HEARTBEAT if item is None else event_frame(item)

    async def release() -> None:
        api.key_turns.give(caller.key_hash)

    return EventStreamResponse(frames(), release)


@_router.post(
    "/v1/conversations/{conversation_id}/turns/{turn_id}/cancel",
    tags=["conversations"],
)
async def cancel_turn(
    conversation_id: str, turn_id: str, api: ApiDep, caller: OwnerDep
) -> TurnResult:
    """Stop a running turn (its generation and tool call too); it ends with
    ``done(status="interrupted")``. A turn that already ended is returned as it is."""
    turn = await api.owned_turn(conversation_id, turn_id, caller)
    stopped = await api.conversations.interrupt(conversation_id, turn_id, policy="cancel")
    if not stopped:  # it had ended (perhaps just now): as it is
        turn = await api.conversations.store.turn_by_id(conversation_id, turn_id) or turn
    events = await api.conversations.history_of_turn(turn)
    return turn_result(conversation_id, events, status="interrupted" if stopped else turn.status)


@_router.post(
    "/v1/conversations/{conversation_id}/approvals/{call_id}",
    tags=["conversations"],
    response_model=TurnResult,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def decide(
    conversation_id: str,
    call_id: str,
    body: ApprovalDecision,
    request: Request,
    api: ApiDep,
    caller: ApproverDep,
) -> Response:
    """Approve or reject a tool call that waits; the resumed turn is the reply."""
    await api.owned(conversation_id, caller)
    stream = _streamed(request, body.stream)
    decision = DecisionRequest(
        conversation_id=conversation_id,
        call_id=call_id,
        approved=body.approve,
        reason=body.reason,
        tokens=stream,
        budgets=await api.check_budget(caller, conversation_id),
    )
    started = await api.start(caller, api.conversations.decide(decision))
    return await _reply(request, api, conversation_id, started, stream)


@_router.get("/v1/usage", tags=["usage"])
async def usage(
    api: ApiDep,
    caller: CallerDep,
    start: Annotated[
        date | None, Query(description="First UTC day (default: the first of this month).")
    ] = None,
    end: Annotated[date | None, Query(description="Last UTC day (default: today).")] = None,
) -> UsageReport:
    """The caller's tenant's tokens per UTC day, agent and model, from the store (every
    key of the tenant, every conversation, deleted ones too)."""
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise ApiError("invalid_request", f"start: {start} is after end ({end})")
    if (end - start).days > 366:
        raise ApiError("invalid_request", "start, end: at most 366 days at a time")
    rows = await api.conversations.store.usage(
        caller.tenant, start=start.isoformat(), end=end.isoformat()
    )
    data = [UsageRow(**r.model_dump(exclude={"tenant", "conversation_id"})) for r in rows]
    return UsageReport(
        tenant=caller.tenant,
        start=start,
        end=end,
        data=data,
        prompt_tokens=sum(r.prompt_tokens for r in data),
        completion_tokens=sum(r.completion_tokens for r in data),
        calls=sum(r.calls for r in data),
    )


@_router.get("/v1/models", tags=["openai"])
async def list_models(api: ApiDep, caller: CallerDep) -> dict[str, Any]:
    """The agents, as OpenAI models."""
    data = [
        {"id": name, "object": "model", "created": api.started, "owned_by": "ray-agents"}
        for name in api.agents
    ]
    return {"object": "list", "data": data}


@_router.post("/v1/chat/completions", tags=["openai"])
async def chat_completions(
    body: ChatCompletionRequest, request: Request, api: ApiDep, caller: OwnerDep
) -> Response:
    """OpenAI-compatible chat: ``model`` is an agent; the messages are the history."""
    if body.model not in api.agents:
        raise ApiError("not_found", f"no agent (model) named {body.model!r}; see GET /v1/models")
    if len(body.messages) > api.limits.max_history_messages:
        raise ApiError(
            "invalid_request",
            f"messages: {len(body.messages)} messages; the limit is "
            f"{api.limits.max_history_messages}",
        )
    history, text = split_history(
        body.messages, max_chars=api.limits.max_message_chars, agent=body.model
    )
    request_id: str = request.state.request_id
    budgets = await api.check_budget(caller, "")  # the tenant's: the conversation is new
    turn = _stateless_turn(api, caller, body.model, history, text, request_id, body.stream, budgets)
    started = await api.start(caller, turn)
    if not body.stream:
        return JSONResponse(completion(request_id, body.model, await started.all()))
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    writer = ChunkWriter(request_id, body.model, include_usage=include_usage)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for item in started.frames(api.limits.heartbeat_s):
                if item is None:
                    yield HEARTBEAT
                    continue
                for chunk in writer.chunks(item):
                    yield data_frame(chunk)
        except Exception as exc:
            error = _logged(api_error(exc), request_id, exc)
            detail = {
                "type": error.type,
                "code": error.code,
                "message": error.message,
                "request_id": request_id,
            }
            yield data_frame({"error": detail})
        yield data_frame("[DONE]")

    return EventStreamResponse(chunks(), started.finish)


async def _stateless_turn(
    api: _Api,
    caller: Caller,
    agent: str,
    history: list[Event],
    text: str,
    request_id: str,
    stream: bool,
    budgets: TokenBudgets,
) -> AsyncGenerator[Event, None]:
    """A turn in a conversation of its own that holds ``history``, deleted at the end."""
    conversations = api.conversations
    info = await conversations.create(
        agent=agent,
        owner=caller.tenant,
        metadata={"source": "chat.completions", "request_id": request_id},
    )
    try:
        if history:
            await conversations.store.append(info.conversation_id, history)
        send = SendRequest(
            message=text, conversation_id=info.conversation_id, tokens=stream, budgets=budgets
        )
        async with closing(conversations.send(send)) as events:
            async for event in events:
                yield event
    finally:
        await asyncio.shield(_forget(conversations, info.conversation_id))


async def _forget(conversations: Conversations, conversation_id: str) -> None:
    try:
        await conversations.delete(conversation_id)
    except RayAgentsError as exc:  # left behind; it holds nothing anyone can reach
        log.warning("could not delete stateless conversation %s: %s", conversation_id, exc)


def _streamed(request: Request, stream: bool) -> bool:
    """Whether the caller asked for the turn as Server-Sent Events (the body's
    ``stream``, or an ``Accept: text/event-stream`` header)."""
    return stream or "text/event-stream" in request.headers.get("accept", "")


async def _reply(
    request: Request, api: _Api, conversation_id: str, started: _Started, stream: bool
) -> Response:
    """The turn as JSON (``TurnResult``), or as an SSE stream of its events."""
    if not stream:
        return JSONResponse(turn_result(conversation_id, await started.all()).model_dump())
    request_id: str = request.state.request_id

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for item in started.frames(api.limits.heartbeat_s):
                yield HEARTBEAT if item is None else event_frame(item)
        except Exception as exc:  # the turn stored its own end; tell the client
            error = _logged(api_error(exc), request_id, exc)
            yield event_frame(ErrorEvent(code=error.code, message=error.message))
            yield event_frame(DoneEvent(status="error", conversation_id=conversation_id))

    return EventStreamResponse(frames(), started.finish)


def _event_id(request: Request) -> int:
    """The SSE ``Last-Event-ID`` header (a seq), or 0."""
    raw = request.headers.get("last-event-id")
    if raw is None or not raw.strip():
        return 0
    if not raw.strip().isdigit() or int(raw) > MAX_SEQ:
        raise ApiError("invalid_request", f"Last-Event-ID: {raw[:40]!r} is not an event id (a seq)")
    return int(raw)


def _last_event_id(request: Request, idempotency_key: str | None) -> int:
    """The SSE ``Last-Event-ID`` of a reconnecting stream: the seq it has up to.

    It only makes sense for a retried send (the same idempotency key): without one the
    send starts a new turn, whose events the caller cannot have seen.
    """
    seq = _event_id(request)
    if seq and idempotency_key is None:
        raise ApiError(
            "invalid_request",
            "Last-Event-ID resumes a turn: send it with the turn's idempotency_key",
        )
    return seq


def _conversation(info: ConversationInfo) -> Conversation:
    return Conversation(
        id=info.conversation_id,
        agent=info.active_agent,
        created_at=info.created_at,
        updated_at=info.updated_at,
        last_seq=info.last_seq,
        metadata=info.metadata,
    )


def _logged(error: ApiError, request_id: str, exc: Exception) -> ApiError:
    if error.hidden:  # the caller got a fixed sentence: the log keeps the cause
        level = logging.ERROR if error.type == "internal_error" else logging.WARNING
        log.log(level, "request %s failed mid-stream (%s)", request_id, error.code, exc_info=exc)
    return error
