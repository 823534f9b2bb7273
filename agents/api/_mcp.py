"""MCP at ``/mcp`` (streamable HTTP): the app's agents as tools, with the ``mcp`` package.

One tool per agent, named as the agent. Its input is the message and, optionally,
the conversation to go on with; its output is the answer, with the conversation id
to continue in and the agent that answered (and the structured output of an agent
with an output schema). A turn that fails is a tool error the client reads.

The server is stateless (no MCP session lives in a replica), so any API replica
answers any call. Callers send the app's API keys (Bearer) before MCP sees the
request, and a conversation is their tenant's; a call takes the same places in the
limits as any turn. The session manager's task group is owned by a task of this
object, started with the first request and stopped by ``close``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from agents.api._auth import Caller
from agents.api._errors import ApiError, api_error, error_response
from agents.events import AnswerEvent, DoneEvent, ErrorEvent
from agents.protocol import SendRequest
from agents.spec import AgentSpec

if TYPE_CHECKING:
    from agents.api.app import _Api

__all__ = ["MCP_ROUTE", "AgentAnswer", "McpEndpoint"]

MCP_ROUTE = "/mcp"
_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("ray_agents_mcp_caller")


class AgentAnswer(BaseModel):
    """What an agent's tool returns."""

    answer: str = Field(description="The agent's answer.")
    conversation_id: str = Field(description="Pass it back to go on with the conversation.")
    agent: str = Field(description="The agent that answers the next message.")
    output: dict[str, Any] | None = Field(
        None, description="The structured answer, for agents with an output schema."
    )


class McpEndpoint:
    """The ASGI app at ``/mcp``: our auth, then MCP's streamable HTTP."""

    def __init__(
        self,
        api: _Api,
        agents: Sequence[AgentSpec],
        *,
        authenticate: Callable[[Request], Caller],
        local_only: bool,
    ) -> None:
        """``local_only``: the API takes requests without a key (open mode), so MCP's
        DNS-rebinding guard admits local hosts only."""
        self.api = api
        self.authenticate = authenticate
        self.server: MCPServer = MCPServer(
            name="ray-agents",
            instructions="Each tool is an agent: send it a message, get its answer.",
        )
        for spec in agents:
            self.server.add_tool(
                self._tool(spec.name),
                name=spec.name,
                description=spec.description or f"The {spec.name} agent.",
                structured_output=True,
            )
        security = TransportSecuritySettings(enable_dns_rebinding_protection=local_only)
        if local_only:
            security.allowed_hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
            security.allowed_origins = ["http://127.0.0.1:*", "http://localhost:*"]
        self.manager = StreamableHTTPSessionManager(
            self.server._lowlevel_server,  # the manager serves the low-level server
            stateless=True,
            security_settings=security,
            max_request_body_size=api.limits.max_body_bytes,
        )
        self._ready: asyncio.Event | None = None
        self._stop = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate, then hand the request to MCP with the caller in context."""
        request = Request(scope, receive)
        try:
            caller = self.authenticate(request)
        except ApiError as exc:
            await error_response(request, exc)(scope, receive, send)
            return
        await self._start()
        token = _CALLER.set(caller)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            _CALLER.reset(token)

    async def close(self) -> None:
        """Stop the session manager's task."""
        self._stop.set()
        if self._owner is not None:
            await self._owner

    async def _start(self) -> None:
        if self._ready is None:
            self._ready = asyncio.Event()
            self._owner = asyncio.get_running_loop().create_task(self._own(self._ready))
        await self._ready.wait()

    async def _own(self, ready: asyncio.Event) -> None:
        async with self.manager.run():
            ready.set()
            await self._stop.wait()

    def _tool(self, agent: str) -> Callable[..., Any]:
        api = self.api

        async def call_agent(message: str, conversation_id: str | None = None) -> AgentAnswer:
            caller = _CALLER.get()
            try:
                return await _run(api, caller, agent, message, conversation_id)
            except ToolError:
                raise
            except Exception as exc:
                error = api_error(exc)
                raise ToolError(f"{error.code}: {error.message}") from exc

        call_agent.__doc__ = f"Send a message to the {agent} agent and get its answer."
        return call_agent


async def _run(
    api: _Api, caller: Caller, agent: str, message: str, conversation_id: str | None
) -> AgentAnswer:
    """One turn: in the caller's conversation, or a new one that ``agent`` starts."""
    if len(message) > api.limits.max_message_chars:
        raise ToolError(
            f"message: {len(message)} characters; the limit is {api.limits.max_message_chars}"
        )
    if not message.strip():
        raise ToolError("message: empty")
    conversations = api.conversations
    if conversation_id:
        info = await api.owned(conversation_id, caller)
    else:
        info = await conversations.create(
            agent=agent, owner=caller.tenant, metadata={"source": "mcp"}
        )
    budgets = await api.check_budget(caller, info.conversation_id)
    send = SendRequest(
        message=message, conversation_id=info.conversation_id, tokens=False, budgets=budgets
    )
    events = await (await api.start(caller, conversations.send(send))).all()
    answer = next((e for e in reversed(events) if isinstance(e, AnswerEvent)), None)
    error = next((e for e in reversed(events) if isinstance(e, ErrorEvent)), None)
    done = events[-1] if isinstance(events[-1], DoneEvent) else None
    if done is None or done.status != "ok" or answer is None:
        status = done.status if done is not None else "error"
        if error is not None:
            raise ToolError(f"{error.code}: {error.message}")
        raise ToolError(f"the turn ended {status}")
    return AgentAnswer(
        answer=answer.text,
        conversation_id=info.conversation_id,
        agent=done.active_agent or agent,
        output=answer.output,
    )
