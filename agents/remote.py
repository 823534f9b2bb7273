"""Remote agents: an agent of another A2A v1 server, as a peer of this app's agents.

A ``RemoteAgentSpec`` (an ``agents:`` entry with ``remote:``) deploys like any agent
(``agent-<name>``), so hand-offs and asks reach it by name, count as hops, and
carry the turn's deadline and trace. ``RemoteAgentService`` answers for it with the
official ``a2a-sdk`` client:

- its A2A context is derived from the conversation (each conversation, and each ask,
  is one context there), so the remote agent keeps its own history of it;
- the message id is derived from the turn, so a retry after a replica died joins the
  remote task instead of running it twice;
- the deadline left goes as the HTTP timeout and as ``timeout_s`` metadata, the trace
  as a ``traceparent`` header; the API key comes from the ``auth_env`` variable;
- the answer is stored here as its ``answer`` event (its tokens stream on), and a
  remote failure is stored as an error event whose code says which;
- a turn stopped here (interrupt, cancel, deadline) cancels the remote task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from a2a.client import A2ACardResolver, A2AClientError, ClientCallContext, ClientConfig
from a2a.client import create_client as create_a2a_client
from a2a.types import a2a_pb2 as pb
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import (
    AgentRunError,
    DeadlineExceededError,
    PeerUnavailableError,
    RemoteAgentError,
)
from agents.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    TurnUsage,
)
from agents.observability.tracing import carrier, end_span, start_span
from agents.pool.spec import Autoscaling, Resources
from agents.protocol import AskRequest, AskResult, TurnContext, TurnRequest
from agents.spec import AgentName
from agents.store.base import ConversationStore

__all__ = ["RemoteA2A", "RemoteAgentService", "RemoteAgentSpec"]

log = logging.getLogger("ray_agents.remote")
_Strict = ConfigDict(extra="forbid")
_CONTEXTS = uuid.UUID("5f0c3e52-6a0b-4c8e-9d3e-2b7f3f0e8a11")
_FINAL = {
    pb.TASK_STATE_COMPLETED,
    pb.TASK_STATE_FAILED,
    pb.TASK_STATE_CANCELED,
    pb.TASK_STATE_REJECTED,
    pb.TASK_STATE_INPUT_REQUIRED,
    pb.TASK_STATE_AUTH_REQUIRED,
}


class RemoteA2A(BaseModel):
    """Where a remote agent is, and how to call it."""

    model_config = _Strict

    url: str = Field(
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="The agent's base URL; its Agent Card is at `url` + `card_path`.",
    )
    card_path: str = Field(
        AGENT_CARD_WELL_KNOWN_PATH, pattern=r"^/", description="The card's path under `url`."
    )
    auth_env: str | None = Field(
        None,
        description=(
            "Environment variable (of the agent's replicas) holding the key sent as "
            "'Authorization: Bearer <key>'; none: no Authorization header."
        ),
    )
    timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Most seconds one call waits (the turn's deadline too)."
    )


class RemoteAgentSpec(BaseModel):
    """An agent served by another A2A v1 server: a peer that hand-offs and asks reach."""

    model_config = _Strict

    name: AgentName = Field(description="Its name here; the deployment is `agent-<name>`.")
    description: str = Field(
        "", description="What the agent is for; peers read it when choosing whom to call."
    )
    remote: RemoteA2A = Field(description="The A2A server that runs it.")
    scaling: Autoscaling = Field(
        default_factory=lambda: Autoscaling(target_ongoing_requests=64),
        description="Replicas of its (thin) deployment here.",
    )
    resources: Resources = Field(
        default_factory=dict, description="Custom Ray resources each replica requests."
    )

    @property
    def summary(self) -> str:
        """Its description, or a line saying what it is."""
        return self.description or f"A remote agent (A2A) at {self.remote.url}."


class _Reply:
    """What came back from the remote task, read off its stream."""

    def __init__(self) -> None:
        self.task_id = ""
        self.state: int = pb.TASK_STATE_UNSPECIFIED
        self.text = ""
        self.streamed = ""
        self.output: dict[str, Any] | None = None
        self.note = ""
        self.code = ""

    def read(self, item: pb.StreamResponse) -> str:
        """Take in one stream item; the new answer text it streams ('' if none)."""
        kind = item.WhichOneof("payload")
        if kind == "task":
            self.task_id = item.task.id
            self._status(item.task.status)
            code = item.task.metadata.fields.get("error_code")
            self.code = code.string_value if code is not None else self.code
            for artifact in item.task.artifacts:
                self._artifact(artifact, append=False)
            return ""
        if kind == "message":  # a direct reply, no task
            self.state = pb.TASK_STATE_COMPLETED
            self.text = _text(item.message.parts)
            return ""
        if kind == "status_update":
            self.task_id = self.task_id or item.status_update.task_id
            self._status(item.status_update.status)
            code = item.status_update.metadata.fields.get("error_code")
            self.code = code.string_value if code is not None else self.code
            return ""
        if kind == "artifact_update":
            update = item.artifact_update
            self.task_id = self.task_id or update.task_id
            if update.append or not update.last_chunk:
                new = _text(update.artifact.parts)
                self.streamed += new
                return new
            self._artifact(update.artifact, append=False)
        return ""

    def _status(self, status: pb.TaskStatus) -> None:
        self.state = status.state
        if status.HasField("message"):
            self.note = _text(status.message.parts)

    def _artifact(self, artifact: pb.Artifact, *, append: bool) -> None:
        self.text = self.text + _text(artifact.parts) if append else _text(artifact.parts)
        for part in artifact.parts:
            if part.WhichOneof("content") == "data" and part.data.HasField("struct_value"):
                self.output = MessageToDict(part.data.struct_value)

    @property
    def answer(self) -> str:
        return self.text or self.streamed or self.note


class RemoteAgentService:
    """Answers for a remote agent: the same ``run`` and ``ask`` as ``AgentService``."""

    def __init__(
        self,
        spec: RemoteAgentSpec,
        store: ConversationStore,
        *,
        http: httpx.AsyncClient | None = None,
        replica_id: str = "local",
        clock: Any = time.time,
    ) -> None:
        """``http``: the client to reach the remote server with (tests pass one)."""
        self.spec = spec
        self.name = spec.name
        self.replica_id = replica_id
        self._store = store
        key = os.environ.get(spec.remote.auth_env, "") if spec.remote.auth_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = http or httpx.AsyncClient(timeout=spec.remote.timeout_s)
        self._headers = headers
        self._client: Any = None
        self._clock = clock

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def run(self, request: TurnRequest) -> AsyncIterator[Event]:
        """Send the turn's message to the remote agent; its answer is this part's end."""
        ctx = request.context
        if request.retry:
            stored = await self._store.events(
                ctx.conversation_id, after_seq=request.after_seq, turn_id=ctx.turn_id
            )
            mine = [e for e in stored if e.agent == self.name and not isinstance(e, DoneEvent)]
            for event in mine:
                yield event
            if mine and isinstance(mine[-1], AnswerEvent | ErrorEvent):
                yield self._done("ok" if isinstance(mine[-1], AnswerEvent) else "error")
                return
        text, note = await self._message_of(ctx)

        async def record(event: Event) -> Event:
            event = event.model_copy(update={"agent": self.name, "turn_id": ctx.turn_id})
            [kept] = await self._store.append(ctx.conversation_id, [event], runner=ctx.runner)
            return kept

        message_id = f"{ctx.turn_id}:{self.name}:{ctx.hops}"
        reply = _Reply()
        try:
            async for piece in self._call(ctx, ctx.conversation_id, text, message_id, note, reply):
                if ctx.tokens:
                    yield TokenEvent(text=piece, agent=self.name, turn_id=ctx.turn_id)
        except AgentRunError as exc:
            yield await record(ErrorEvent(code=exc.code, message=str(exc)))
            yield self._done("error")
            return
        if reply.state != pb.TASK_STATE_COMPLETED:
            error = _failure(self.name, reply)
            yield await record(ErrorEvent(code=error.code, message=str(error)))
            yield self._done("error")
            return
        yield await record(AnswerEvent(text=reply.answer, output=reply.output))
        yield self._done("ok")

    async def ask(self, request: AskRequest) -> AskResult:
        """Ask the remote agent a question, in a context of its own."""
        ctx = request.context
        sub_id = f"{ctx.conversation_id}:ask:{request.call_id}"
        result = AskResult(conversation_id=sub_id)
        reply = _Reply()
        try:
            message_id = f"{ctx.turn_id}:{request.call_id}"
            async for _ in self._call(ctx, sub_id, request.question, message_id, "", reply):
                pass
        except AgentRunError as exc:
            result.error = ErrorEvent(code=exc.code, message=str(exc))
            return result
        if reply.state != pb.TASK_STATE_COMPLETED:
            error = _failure(self.name, reply)
            result.error = ErrorEvent(code=error.code, message=str(error))
            return result
        result.text, result.output = reply.answer, reply.output
        return result

    async def _message_of(self, ctx: TurnContext) -> tuple[str, str]:
        """The user's message of this turn, and what the agent that handed over said."""
        events = await self._store.events(ctx.conversation_id, turn_id=ctx.turn_id)
        user = next((e for e in events if isinstance(e, MessageEvent)), None)
        handoff = next((e for e in reversed(events) if isinstance(e, HandoffEvent)), None)
        if user is None:
            raise PeerUnavailableError(f"turn {ctx.turn_id!r} has no user message stored")
        return user.content, handoff.message if handoff is not None else ""

    async def _call(
        self,
        ctx: TurnContext,
        context_key: str,
        text: str,
        message_id: str,
        note: str,
        reply: _Reply,
    ) -> AsyncIterator[str]:
        """Stream one message to the remote agent, filling ``reply``; yields answer text."""
        left = self.spec.remote.timeout_s
        if ctx.deadline is not None:
            left = min(left, ctx.deadline - self._clock())
            if left <= 0:
                raise DeadlineExceededError(
                    f"remote agent {self.name!r}: the turn's deadline passed"
                )
        span = start_span(
            "agent.remote",
            parent=ctx.trace or None,
            attributes={
                "ray_agents.agent": self.name,
                "ray_agents.remote_url": self.spec.remote.url,
            },
        )
        metadata = {"timeout_s": round(left, 3), "caller_trace_id": ctx.trace_id}
        if note:
            metadata["handoff_message"] = note
        message = pb.Message(
            message_id=message_id,
            context_id=uuid.uuid5(
                _CONTEXTS, f"{self.name}\n{self.spec.remote.url}\n{context_key}"
            ).hex,
            role=pb.ROLE_USER,
            parts=[pb.Part(text=text, media_type="text/plain")],
        )
        request = pb.SendMessageRequest(message=message)
        request.metadata.update(metadata)
        call = ClientCallContext(
            timeout=left, service_parameters={**self._headers, **carrier(span)}
        )
        finished = False
        error: str | None = None
        try:
            client = await self._connect()
            async with asyncio.timeout(left):
                async for item in client.send_message(request, context=call):
                    new = reply.read(item)
                    if new:
                        yield new
                    if reply.state in _FINAL:
                        break
            finished = True
        except TimeoutError as exc:
            error = "deadline_exceeded"
            raise DeadlineExceededError(
                f"remote agent {self.name!r} did not answer in {left:.1f} s"
            ) from exc
        except (A2AClientError, A2AError, httpx.HTTPError) as exc:
            error = "agent_unavailable"
            raise PeerUnavailableError(
                f"remote agent {self.name!r} could not be reached: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            if not finished and reply.task_id and reply.state not in _FINAL:
                await asyncio.shield(self._cancel(reply.task_id))
            end_span(span, error)

    async def _connect(self) -> Any:
        if self._client is None:
            remote = self.spec.remote
            resolver = A2ACardResolver(self._http, remote.url, remote.card_path)
            card = await resolver.get_agent_card(http_kwargs={"headers": self._headers})
            config = ClientConfig(httpx_client=self._http, streaming=True)
            self._client = await create_a2a_client(card, config)
        return self._client

    async def _cancel(self, task_id: str) -> None:
        """Tell the remote server to stop a task this side gave up on (best effort)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._client.cancel_task(
                    pb.CancelTaskRequest(id=task_id),
                    context=ClientCallContext(service_parameters=self._headers),
                )
                log.info("cancelled remote task %s of %s", task_id, self.name)

    def _done(self, status: Any) -> DoneEvent:
        return DoneEvent(
            agent=self.name,
            status=status,
            usage=TurnUsage(),
            active_agent=self.name,
            replicas={self.name: self.replica_id},
        )


def _failure(agent: str, reply: _Reply) -> AgentRunError:
    """The error a remote task's end stands for: a ray-agents remote names its code,
    and one that ran out of the deadline this side gave it is a deadline here too."""
    state = pb.TaskState.Name(reply.state).removeprefix("TASK_STATE_").lower()  # type: ignore[arg-type]
    why = f": {reply.note}" if reply.note else ""
    message = f"remote agent {agent!r} ended its task {state}{why}"
    if reply.code == DeadlineExceededError.code:
        return DeadlineExceededError(message)
    return RemoteAgentError(message)


def _text(parts: Any) -> str:
    return "".join(p.text for p in parts if p.WhichOneof("content") == "text")
