"""A2A v1 (Agent2Agent) over the app's agents, with the official ``a2a-sdk``.

    GET  /.well-known/agent-card.json               the default agent's card
    GET  /a2a/{agent}/.well-known/agent-card.json   each published agent's card
    POST /a2a/{agent}                               JSON-RPC 2.0: SendMessage,
                                                    SendStreamingMessage (SSE), GetTask,
                                                    ListTasks, CancelTask, SubscribeToTask

A task is one of our turns and its context is the conversation: a task id is
``<conversation id>~<turn id>``, a context id a conversation id. The SDK parses and
answers the JSON-RPC; ``TurnTasks`` (its ``RequestHandler``) runs every method on
``Conversations``, so a task lives in the store: any API replica answers for it, and it
outlives the replica that started it. Callers send the app's API keys (Bearer) and see
their tenant's tasks only; a send takes the same places in the limits as any turn.

How a turn's events become A2A's:

    message (the user's)      the Task, working, with the message in its history
    token                     an artifact update of ``answer`` (appended)
    tool_call, tool_result,   a working status update; the event rides as a data part
    handoff, ask, approval
    answer                    ``answer`` again, whole (append: false, last chunk)
    done                      the final status: completed, failed (with the error),
                              canceled (interrupted), input-required (an approval waits)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.types import a2a_pb2 as pb
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    DEFAULT_LIST_TASKS_PAGE_SIZE,
    MAX_LIST_TASKS_PAGE_SIZE,
    PROTOCOL_VERSION_1_0,
)
from a2a.utils.errors import (
    A2AError,
    ContentTypeNotSupportedError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf.json_format import MessageToDict
from starlette.routing import Route

from agents._streams import closing
from agents.api._auth import Caller
from agents.api._errors import ApiError, api_error
from agents.api.spec import A2ASpec
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    AskEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agents.protocol import SendRequest
from agents.spec import AgentSpec
from agents.store.base import TurnRecord

if TYPE_CHECKING:
    from agents.api.app import _Api

__all__ = ["A2A_ROUTE", "TurnTasks", "agent_card", "install_a2a", "split_task_id", "task_id"]

A2A_ROUTE = "/a2a"
"""Where each agent's JSON-RPC endpoint and card live: ``/a2a/{agent}``."""
ANSWER = "answer"
"""The artifact id (and name) of a turn's answer."""
_SEP = "~"  # not in a conversation id's alphabet, nor in a turn id's
_STATES = {
    "running": pb.TASK_STATE_WORKING,
    "ok": pb.TASK_STATE_COMPLETED,
    "error": pb.TASK_STATE_FAILED,
    "interrupted": pb.TASK_STATE_CANCELED,
    "paused": pb.TASK_STATE_INPUT_REQUIRED,
}
_TERMINAL = {pb.TASK_STATE_COMPLETED, pb.TASK_STATE_FAILED, pb.TASK_STATE_CANCELED}
_INPUT_MODES = ["text/plain", "application/json"]
_CONTEXTS = uuid.UUID("0b7d8f4e-3c1a-4e55-9a61-5d2f0c9e7b31")
_CONTEXT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # a conversation id


def task_id(conversation_id: str, turn_id: str) -> str:
    """The A2A task id of a turn."""
    return f"{conversation_id}{_SEP}{turn_id}"


def split_task_id(value: str) -> tuple[str, str]:
    """The conversation and turn of an A2A task id; ``TaskNotFoundError`` if it is none."""
    conversation_id, sep, turn_id = value.rpartition(_SEP)
    if not sep or not conversation_id or not turn_id:
        raise TaskNotFoundError(message=f"no task {value[:200]!r}")
    return conversation_id, turn_id


def agent_card(spec: AgentSpec, url: str, *, secured: bool, version: str) -> pb.AgentCard:
    """The Agent Card of ``spec``, reached at ``url`` (its JSON-RPC endpoint): one skill
    for the agent itself and one per tool it may call."""
    description = spec.description or f"The {spec.name} agent."
    skills = [
        pb.AgentSkill(
            id=spec.name,
            name=spec.name,
            description=description,
            tags=["agent", *(f"handoff:{peer}" for peer in spec.handoffs)],
        ),
        *(
            pb.AgentSkill(
                id=f"{spec.name}.{tool}",
                name=tool,
                description=f"{spec.name} may call the {tool!r} tool on the way to its answer.",
                tags=["tool"],
            )
            for tool in spec.tools
        ),
    ]
    card = pb.AgentCard(
        name=spec.name,
        description=description,
        version=version,
        supported_interfaces=[
            pb.AgentInterface(
                url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION_1_0
            )
        ],
        capabilities=pb.AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=_INPUT_MODES,
        default_output_modes=_INPUT_MODES,
        skills=skills,
    )
    if secured:
        card.security_schemes["bearer"].http_auth_security_scheme.CopyFrom(
            pb.HTTPAuthSecurityScheme(
                scheme="bearer", description="An API key of the app: 'Bearer <key>'."
            )
        )
        card.security_requirements.add().schemes["bearer"].CopyFrom(pb.StringList())
    return card


class _CallerContext(DefaultServerCallContextBuilder):
    """The SDK's call context (the headers: A2A-Version, extensions), carrying the
    caller our auth found."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["caller"] = request.state.caller
        return context


class TurnTasks(RequestHandler):
    """A2A's methods for one agent, run on the app's ``Conversations``."""

    def __init__(self, api: _Api, agent: str) -> None:
        self.api = api
        self.agent = agent

    async def on_message_send(
        self, params: pb.SendMessageRequest, context: ServerCallContext
    ) -> pb.Task | pb.Message:
        """Run the turn the message opens; its task when it ends (or at once, working,
        with ``return_immediately``)."""
        caller = _caller_of(context)
        send = await self._send_request(params, caller, tokens=False)
        conversation_id = send.conversation_id or ""
        try:
            started = await self.api.start(caller, self.api.conversations.send(send))
            if params.configuration.return_immediately:
                turn = started.first.turn_id or ""
                self.api.run_in_background(started, conversation_id, turn)
                task = _task(conversation_id, turn, [started.first], "running")
            else:
                events = await started.all()
                done = events[-1] if isinstance(events[-1], DoneEvent) else None
                status = done.status if done is not None else "error"
                task = _task(conversation_id, started.first.turn_id or "", events, status)
        except A2AError:
            raise
        except Exception as exc:
            raise _a2a_error(exc) from exc
        return _cut_history(task, params.configuration)

    async def on_message_send_stream(
        self, params: pb.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        """The turn's events as A2A stream events: the task, updates, its final status."""
        caller = _caller_of(context)
        send = await self._send_request(params, caller, tokens=True)
        try:
            started = await self.api.start(caller, self.api.conversations.send(send))
        except Exception as exc:
            raise _a2a_error(exc) from exc
        updates = _Updates(send.conversation_id or "", started.first.turn_id or "")
        try:
            for item in updates.of(started.first):
                yield item
            async for event in started.rest:
                for item in updates.of(event):
                    yield item
        except A2AError:
            raise
        except Exception as exc:  # the turn stored its own end; the stream says why
            yield updates.failed(_a2a_error(exc).message)
        finally:
            await started.finish()

    async def on_get_task(
        self, params: pb.GetTaskRequest, context: ServerCallContext
    ) -> pb.Task | None:
        """The task as the store has it."""
        turn = await self._turn(params.id, _caller_of(context))
        events = await self.api.conversations.history_of_turn(turn)
        task = _task(turn.conversation_id, turn.turn_id, events, turn.status)
        if params.HasField("history_length"):
            _keep_last(task, params.history_length)
        return task

    async def on_list_tasks(
        self, params: pb.ListTasksRequest, context: ServerCallContext
    ) -> pb.ListTasksResponse:
        """The tasks of one context (``context_id`` is required), newest first."""
        if not params.context_id:
            raise InvalidParamsError(message="context_id is required: tasks are listed per context")
        try:
            info = await self.api.owned(params.context_id, _caller_of(context))
            events = await self.api.conversations.history(info.conversation_id)
        except Exception as exc:
            raise _a2a_error(exc) from exc
        by_turn: dict[str, list[Event]] = {}
        for event in events:
            if event.turn_id is not None:
                by_turn.setdefault(event.turn_id, []).append(event)
        tasks = [
            _task(info.conversation_id, turn, turn_events, _status_of(turn_events))
            for turn, turn_events in reversed(by_turn.items())
        ]
        if params.status:
            tasks = [t for t in tasks if t.status.state == params.status]
        size = min(params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE, MAX_LIST_TASKS_PAGE_SIZE)
        start = int(params.page_token) if params.page_token.isdigit() else 0
        page = tasks[start : start + size]
        for task in page:
            if params.HasField("history_length"):
                _keep_last(task, params.history_length)
        more = start + size < len(tasks)
        return pb.ListTasksResponse(
            tasks=page,
            next_page_token=str(start + size) if more else "",
            page_size=size,
            total_size=len(tasks),
        )

    async def on_cancel_task(
        self, params: pb.CancelTaskRequest, context: ServerCallContext
    ) -> pb.Task | None:
        """Stop the running turn (its generation and tool call too): canceled."""
        turn = await self._turn(params.id, _caller_of(context))
        if _STATES[turn.status] in _TERMINAL:
            raise TaskNotCancelableError(message=f"the task has ended ({turn.status})")
        conversations = self.api.conversations
        stopped = await conversations.interrupt(turn.conversation_id, turn.turn_id, policy="cancel")
        if not stopped:
            raise TaskNotCancelableError(message="the task ended before it could be canceled")
        events = await conversations.history_of_turn(turn)
        return _task(turn.conversation_id, turn.turn_id, events, "interrupted")

    async def on_subscribe_to_task(
        self, params: pb.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        """The task now, then its updates as they are stored (tokens are not stored)."""
        turn = await self._turn(params.id, _caller_of(context))
        if _STATES[turn.status] in _TERMINAL:
            raise UnsupportedOperationError(message=f"the task has ended ({turn.status})")
        conversations = self.api.conversations
        events = await conversations.history_of_turn(turn)
        updates = _Updates(turn.conversation_id, turn.turn_id)
        yield _task(turn.conversation_id, turn.turn_id, events, turn.status)
        updates.opened = True
        seen = events[-1].seq if events and events[-1].seq is not None else turn.user_seq
        followed = conversations.follow(turn.conversation_id, turn.turn_id, after_seq=seen)
        async with closing(followed) as stored:
            async for event in stored:
                for item in updates.of(event):
                    yield item

    async def on_create_task_push_notification_config(
        self, params: pb.TaskPushNotificationConfig, context: ServerCallContext
    ) -> pb.TaskPushNotificationConfig:
        """Not offered: the card says so (the HTTP API's webhooks are the way)."""
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: pb.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> pb.TaskPushNotificationConfig:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: pb.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> pb.ListTaskPushNotificationConfigsResponse:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: pb.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        """Not offered."""
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: pb.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> pb.AgentCard:
        """Not offered: the public card is the whole card."""
        raise ExtendedAgentCardNotConfiguredError

    async def _send_request(
        self, params: pb.SendMessageRequest, caller: Caller, *, tokens: bool
    ) -> SendRequest:
        """Our send for an A2A message: its context (a conversation of the caller's,
        made when new), its text, and its id as the idempotency key (a resent message
        joins its turn instead of running twice)."""
        message = params.message
        if message.role != pb.ROLE_USER:
            raise InvalidParamsError(message="message.role must be ROLE_USER")
        accepted = set(params.configuration.accepted_output_modes)
        if accepted and not accepted & {*_INPUT_MODES, "text/*", "*/*"}:
            raise ContentTypeNotSupportedError(
                message=f"this agent answers in {', '.join(_INPUT_MODES)} only"
            )
        text = _text_of(message.parts)
        if len(text) > self.api.limits.max_message_chars:
            raise InvalidParamsError(
                message=f"the message has {len(text)} characters; the limit is "
                f"{self.api.limits.max_message_chars}"
            )
        try:
            conversation_id = await self._context(message, caller)
            budgets = await self.api.check_budget(caller, conversation_id, message.message_id)
        except Exception as exc:
            raise _a2a_error(exc) from exc
        return SendRequest(
            message=text,
            conversation_id=conversation_id,
            agent=self.agent,
            idempotency_key=message.message_id[:256] or None,
            timeout_s=_timeout_of(params),
            tokens=tokens,
            budgets=budgets,
        )

    async def _context(self, message: pb.Message, caller: Caller) -> str:
        api = self.api
        if message.task_id:  # a task goes on only while it waits for input
            turn = await self._turn(message.task_id, caller)
            if message.context_id and message.context_id != turn.conversation_id:
                raise InvalidParamsError(message="message.task_id is not of message.context_id")
            if turn.status != "paused":
                raise UnsupportedOperationError(
                    message=f"task {message.task_id!r} takes no more input ({turn.status}); "
                    "send the message in its context without a task_id"
                )
            raise UnsupportedOperationError(
                message="the task waits for a person's approval of a tool call: decide it at "
                f"POST /v1/conversations/{turn.conversation_id}/approvals/{{call_id}}"
            )
        context_id = message.context_id
        if not context_id:  # a new context; a resent message lands in the same one
            key = f"{caller.tenant}\n{self.agent}\n{message.message_id}"
            context_id = uuid.uuid5(_CONTEXTS, key).hex if message.message_id else uuid.uuid4().hex
        found = await api.conversations.get(context_id)
        if found is not None:
            info = found
        else:
            if not _CONTEXT_ID.match(context_id):
                raise InvalidParamsError(message="message.context_id: 1-128 of A-Z a-z 0-9 _ . : -")
            info = await api.conversations.store.create(
                context_id, agent=self.agent, owner=caller.tenant, metadata={"source": "a2a"}
            )
        if info.owner != caller.tenant:
            raise InvalidParamsError(message=f"no context {message.context_id!r}")
        return info.conversation_id

    async def _turn(self, value: str, caller: Caller) -> TurnRecord:
        conversation_id, turn = split_task_id(value)
        try:
            return await self.api.owned_turn(conversation_id, turn, caller)
        except ApiError as exc:
            if exc.type == "not_found":
                raise TaskNotFoundError(message=f"no task {value[:200]!r}") from None
            raise _a2a_error(exc) from exc


class _Updates:
    """One turn's events as A2A stream events, in order."""

    def __init__(self, conversation_id: str, turn_id: str) -> None:
        self.conversation_id = conversation_id
        self.turn_id = turn_id
        self.task_id = task_id(conversation_id, turn_id)
        self.opened = False
        self.streaming = False
        self.error: ErrorEvent | None = None
        self.answer: AnswerEvent | None = None

    def of(self, event: Event) -> list[Any]:
        """What ``event`` adds to the stream (nothing for some)."""
        if not self.opened:
            self.opened = True
            if not isinstance(event, MessageEvent):  # a retried send joins mid-turn
                return [_task(self.conversation_id, self.turn_id, [], "running"), *self.of(event)]
            return [_task(self.conversation_id, self.turn_id, [event], "running")]
        if isinstance(event, TokenEvent):
            append, self.streaming = self.streaming, True
            return [self._artifact([pb.Part(text=event.text)], append=append, last=False)]
        if isinstance(event, AnswerEvent):
            self.answer = event
            return [self._artifact(_answer_parts(event), append=False, last=True)]
        if isinstance(event, ErrorEvent):
            self.error = event
            return []
        if isinstance(event, DoneEvent):
            state = _STATES.get(event.status, pb.TASK_STATE_FAILED)
            note = _status_note(state, self.error, self.answer, event)
            return [self._status(state, note, event)]
        if isinstance(event, MessageEvent):
            return []
        return [self._status(pb.TASK_STATE_WORKING, _event_message(event), None)]

    def failed(self, message: str) -> Any:
        """The final update of a stream that broke off."""
        return self._status(pb.TASK_STATE_FAILED, _agent_message(message), None)

    def _artifact(self, parts: list[pb.Part], *, append: bool, last: bool) -> Any:
        return pb.TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.conversation_id,
            artifact=pb.Artifact(artifact_id=ANSWER, name=ANSWER, parts=parts),
            append=append,
            last_chunk=last,
        )

    def _status(self, state: int, message: pb.Message | None, done: DoneEvent | None) -> Any:
        status = pb.TaskStatus(state=state)  # type: ignore[arg-type]
        if message is not None:
            message.context_id, message.task_id = self.conversation_id, self.task_id
            status.message.CopyFrom(message)
        status.timestamp.GetCurrentTime()
        update = pb.TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.conversation_id, status=status
        )
        if done is not None:
            update.metadata.update(_done_metadata(done, self.error))
        return update


def _task(conversation_id: str, turn_id: str, events: Sequence[Event], status: str) -> pb.Task:
    """A turn as an A2A task: its messages, its answer artifact and its status."""
    the_id = task_id(conversation_id, turn_id)
    task = pb.Task(id=the_id, context_id=conversation_id)
    answer: AnswerEvent | None = None
    error: ErrorEvent | None = None
    done: DoneEvent | None = None
    for event in events:
        if isinstance(event, MessageEvent):
            task.history.append(_user_message(event))
        elif isinstance(event, AnswerEvent):
            answer = event
            task.history.append(_agent_message(event.text, event.seq))
            task.artifacts.append(
                pb.Artifact(artifact_id=ANSWER, name=ANSWER, parts=_answer_parts(event))
            )
        elif isinstance(event, ErrorEvent):
            error = event
        elif isinstance(event, DoneEvent):
            done = event
    for message in task.history:
        message.context_id, message.task_id = conversation_id, the_id
    state = _STATES.get(status, pb.TASK_STATE_FAILED)
    task.status.state = state  # type: ignore[assignment]
    note = _status_note(state, error, answer, done)
    if note is not None:
        note.context_id, note.task_id = conversation_id, the_id
        task.status.message.CopyFrom(note)
    task.status.timestamp.GetCurrentTime()
    if done is not None:
        task.metadata.update(_done_metadata(done, error))
    return task


def _status_of(events: Sequence[Event]) -> str:
    done = next((e for e in reversed(events) if isinstance(e, DoneEvent)), None)
    return done.status if done is not None else "running"


def _status_note(
    state: int, error: ErrorEvent | None, answer: AnswerEvent | None, done: DoneEvent | None
) -> pb.Message | None:
    if state == pb.TASK_STATE_FAILED and error is not None:
        return _agent_message(f"{error.code}: {error.message}", error.seq)
    if state == pb.TASK_STATE_COMPLETED and answer is not None:
        return _agent_message(answer.text, answer.seq)
    if state == pb.TASK_STATE_CANCELED:
        return _agent_message("The task was canceled.", done.seq if done else None)
    if state == pb.TASK_STATE_INPUT_REQUIRED:
        return _agent_message(
            "A tool call waits for a person's approval (POST /v1/conversations/{id}/"
            "approvals/{call_id} with a key that has the approvals scope).",
            done.seq if done else None,
        )
    return None


def _done_metadata(done: DoneEvent, error: ErrorEvent | None) -> dict[str, Any]:
    """The turn's end, for callers that read it: who has the conversation now, what it
    used, and the error code of a failed turn (a ray-agents caller maps it back)."""
    out: dict[str, Any] = {
        "active_agent": done.active_agent or "",
        "rolled_back": done.rolled_back,
        "usage": done.usage.model_dump(),
    }
    if error is not None:
        out["error_code"] = error.code
    return out


def _answer_parts(answer: AnswerEvent) -> list[pb.Part]:
    parts = [pb.Part(text=answer.text, media_type="text/plain")]
    if answer.output is not None:
        data = pb.Part(media_type="application/json")
        data.data.struct_value.update(answer.output)
        parts.append(data)
    return parts


def _user_message(event: MessageEvent) -> pb.Message:
    return pb.Message(
        message_id=f"seq-{event.seq}",
        role=pb.ROLE_USER,
        parts=[pb.Part(text=event.content, media_type="text/plain")],
    )


def _agent_message(text: str, seq: int | None = None) -> pb.Message:
    return pb.Message(
        message_id=f"seq-{seq}" if seq is not None else "",
        role=pb.ROLE_AGENT,
        parts=[pb.Part(text=text, media_type="text/plain")],
    )


def _event_message(event: Event) -> pb.Message:
    """A working update: a line of text for people, the event itself as data."""
    data = pb.Part(media_type="application/json")
    data.data.struct_value.update(json.loads(event.model_dump_json(exclude_none=True)))
    message = _agent_message(_summary(event), event.seq)
    message.parts.append(data)
    return message


def _summary(event: Event) -> str:
    if isinstance(event, ToolCallEvent):
        return f"{event.agent} calls {event.name}"
    if isinstance(event, ToolResultEvent):
        return f"{event.name} answered" + (" with an error" if event.is_error else "")
    if isinstance(event, HandoffEvent):
        return f"{event.agent} hands the conversation to {event.to_agent}"
    if isinstance(event, AskEvent):
        return f"{event.agent} asks {event.to_agent}"
    if isinstance(event, ApprovalRequiredEvent):
        return f"{event.name} waits for a person's approval"
    if isinstance(event, ApprovalEvent):
        return "approved" if event.approved else "rejected"
    return event.type


def _text_of(parts: Sequence[pb.Part]) -> str:
    """The message's text: its text parts, and its data parts as JSON."""
    pieces: list[str] = []
    for part in parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            pieces.append(part.text)
        elif kind == "data":
            pieces.append(json.dumps(MessageToDict(part.data), ensure_ascii=False))
        else:
            raise ContentTypeNotSupportedError(
                message="only text and data parts are accepted (no files)"
            )
    text = "\n".join(p for p in pieces if p)
    if not text.strip():
        raise InvalidParamsError(message="message.parts: no text")
    return text


def _timeout_of(params: pb.SendMessageRequest) -> float | None:
    """The caller's deadline as seconds left (``timeout_s`` metadata: a ray-agents
    caller sends what its own turn has left), within the API's bounds."""
    value = params.metadata.fields.get("timeout_s")
    if value is None or value.WhichOneof("kind") != "number_value":
        return None
    seconds: float = value.number_value
    return min(max(seconds, 0.001), 3600.0)


def _keep_last(task: pb.Task, history_length: int) -> None:
    if history_length <= 0:
        del task.history[:]
    elif len(task.history) > history_length:
        del task.history[: len(task.history) - history_length]


def _cut_history(task: pb.Task, configuration: pb.SendMessageConfiguration) -> pb.Task:
    if configuration.HasField("history_length"):
        _keep_last(task, configuration.history_length)
    return task


def _caller_of(context: ServerCallContext) -> Caller:
    caller: Caller = context.state["caller"]
    return caller


def _a2a_error(exc: BaseException) -> A2AError:
    """The A2A error an exception from below stands for; its message is the one the
    HTTP API would send (never a hidden cause), its data our type and code."""
    if isinstance(exc, A2AError):
        return exc
    error = api_error(exc)
    data = {"type": error.type, "code": error.code}
    if error.type in ("invalid_request", "not_found", "idempotency_mismatch"):
        return InvalidParamsError(message=error.message, data=data)
    return InternalError(message=error.message, data=data)


def install_a2a(
    app: FastAPI,
    api: _Api,
    agents: Sequence[AgentSpec],
    spec: A2ASpec,
    *,
    authenticate: Callable[[Request], Caller],
    default_agent: str,
    secured: bool,
) -> None:
    """Serve A2A for ``agents`` (those that do not opt out) on ``app``."""
    from agents import __version__

    published = {a.name: a for a in agents if a.a2a}
    rpc = {
        name: create_jsonrpc_routes(TurnTasks(api, name), "/", context_builder=_CallerContext())[
            0
        ].endpoint
        for name in published
    }

    def card_for(request: Request, name: str) -> Response:
        found = published.get(name)
        if found is None:
            raise ApiError("not_found", f"no agent {name!r} is published over A2A")
        base = spec.public_url or str(request.base_url).rstrip("/")
        card = agent_card(
            found, f"{base.rstrip('/')}{A2A_ROUTE}/{name}", secured=secured, version=__version__
        )
        return JSONResponse(agent_card_to_dict(card))

    async def default_card(request: Request) -> Response:
        return card_for(request, default_agent)

    async def named_card(request: Request) -> Response:
        return card_for(request, request.path_params["agent"])

    async def call(request: Request) -> Response:
        name = request.path_params["agent"]
        if name not in rpc:
            raise ApiError("not_found", f"no agent {name!r} is published over A2A")
        request.state.caller = authenticate(request)
        response: Response = await rpc[name](request)
        return response

    if default_agent in published:
        app.router.routes.append(Route(AGENT_CARD_WELL_KNOWN_PATH, default_card, methods=["GET"]))
    app.router.routes.append(
        Route(f"{A2A_ROUTE}/{{agent}}{AGENT_CARD_WELL_KNOWN_PATH}", named_card, methods=["GET"])
    )
    app.router.routes.append(Route(f"{A2A_ROUTE}/{{agent}}", call, methods=["POST"]))
