"""MCP servers as tool sources: their tools join the registry as ``<prefix>.<tool>``.

Each server keeps one session open for the executor replica's lifetime, owned by a
task of its own (MCP's transports are anyio task groups, which must be entered and
left by the same task). Calls from any task go through that session, each with the
tool's timeout; an error result from the server is a tool error the agent reads. A
result's text is cut at the spec's ``max_result_bytes``, with a marker.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from typing import Any

from agents.errors import ConfigError
from tools._limits import CappedBytes
from tools.base import ToolDefinition
from tools.registry import Tool, ToolRegistry
from tools.spec import MCPServerSpec
from tools.workers import ToolCrashedError, ToolFailedError

__all__ = ["MCPSource"]


class MCPSource:
    """A connected MCP server."""

    def __init__(self, spec: MCPServerSpec) -> None:
        self.spec = spec
        self._session: Any = None
        self._ready: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self._reconnecting = asyncio.Lock()

    async def connect(self) -> None:
        """Start the session (in its own task) and wait until it is initialized."""
        self._stop = asyncio.Event()
        self._ready = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(), name=f"mcp-{self.spec.name}")
        try:
            async with asyncio.timeout(self.spec.connect_timeout_s):
                await asyncio.shield(self._ready)
        except TimeoutError as exc:
            await self.close()
            raise ConfigError(f"MCP server {self.spec.name!r} did not start in time") from exc

    async def register(self, registry: ToolRegistry) -> list[Tool]:
        """Add the server's tools to ``registry``, named ``<name>.<tool>``."""
        try:
            async with asyncio.timeout(self.spec.connect_timeout_s):
                listed = await self._session.list_tools()
        except TimeoutError as exc:
            raise ConfigError(f"MCP server {self.spec.name!r} did not list its tools") from exc
        tools = []
        for item in listed.tools:
            schema = dict(item.input_schema)
            schema.pop("title", None)
            definition = ToolDefinition(
                name=f"{self.spec.name}.{item.name}",
                description=item.description or "",
                parameters=schema,
                requires_approval=self.spec.settings.requires_approval,
            )
            tools.append(
                registry.add(
                    Tool(definition, self.spec.settings, None, run=self._caller(item.name))
                )
            )
        return tools

    async def _reconnect(self, broken: Any) -> None:
        async with self._reconnecting:
            if self._session is not broken:
                return  # another call reconnected already
            await self.close()
            await self.connect()

    async def close(self) -> None:
        """End the session and the server process."""
        self._stop.set()
        if self._owner is not None:
            if self._ready is not None and not self._ready.done():
                self._owner.cancel()  # still connecting: it would never see the stop
            await asyncio.gather(self._owner, return_exceptions=True)

    def _caller(self, tool: str) -> Any:
        async def call(arguments: dict[str, Any]) -> str:
            session = self._session
            try:
                result = await session.call_tool(tool, arguments)
            except Exception as exc:
                # The server went away. Reconnect for the next call; do not repeat this
                # one, which may have run before the connection broke.
                await self._reconnect(session)
                raise ToolCrashedError(
                    f"the MCP server {self.spec.name!r} connection broke ({type(exc).__name__}); "
                    "it is reconnected: call again if repeating the call is safe"
                ) from exc
            text = self._text(result.content)
            if result.is_error:
                raise ToolFailedError(text or "the MCP tool failed", error_type="MCPToolError")
            return text

        return call

    def _text(self, content: list[Any]) -> str:
        # The session has the message in memory already; this bounds what is joined
        # and passed on (an image's base64, a huge text) to max_result_bytes.
        text = CappedBytes(self.spec.max_result_bytes)
        for number, part in enumerate(content):
            if number:
                text.feed(b"\n")
            piece = str(getattr(part, "text", part))
            for start in range(0, len(piece), 2**16):  # counted without a whole copy
                text.feed(piece[start : start + 2**16].encode())
        return text.text()

    async def _own(self) -> None:
        from mcp.client.session import ClientSession

        assert self._ready is not None
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self._session = session
                self._ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:
            if not self._ready.done():
                error = ConfigError(f"MCP server {self.spec.name!r} failed to start: {exc}")
                self._ready.set_exception(error)
            raise

    def _transport(self) -> Any:
        if self.spec.transport == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client

            assert self.spec.command is not None  # checked by MCPServerSpec
            command, *args = self.spec.command
            if command == "python":
                command = sys.executable
            return stdio_client(
                StdioServerParameters(command=command, args=args, env=self.spec.env)
            )
        from mcp.client.streamable_http import streamable_http_client

        assert self.spec.url is not None
        return streamable_http_client(self.spec.url)
