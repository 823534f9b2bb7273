"""MCP server at /mcp: an `mcp` client session over streamable HTTP against the API app
(served by uvicorn in the test's loop), as an IDE or desktop assistant would call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from agents.api.app import create_app
from agents.events import MessageEvent
from agents.testing import LocalApp, ScriptedGenerator
from tests.fixtures import api_app
from tests.fixtures.api_app import headers
from tests.fixtures.local_server import serving


@pytest.fixture
async def served() -> AsyncIterator[tuple[LocalApp, str]]:
    specs = [s.model_copy(update={"tools": []}) for s in api_app.agent_specs()]
    local = LocalApp(specs, generator=ScriptedGenerator(api_app.SCRIPT))
    app = create_app(local.conversations, specs, api_app.api_spec())
    async with serving(app) as url:
        yield local, url
    await app.state.api.close()


@asynccontextmanager
async def session(url: str, tenant: str = "acme") -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=headers(tenant), timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, *_),
        ClientSession(read, write) as opened,
    ):
        await opened.initialize()
        yield opened


async def test_the_agents_are_tools_and_a_call_runs_a_turn(
    served: tuple[LocalApp, str],
) -> None:
    local, url = served
    async with session(url) as mcp:
        listed = await mcp.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert sorted(tools) == ["billing", "tech", "triage"]
        assert tools["triage"].description == "routes requests"
        schema = tools["triage"].input_schema
        assert schema["required"] == ["message"] and "conversation_id" in schema["properties"]
        assert tools["triage"].output_schema is not None
        result = await mcp.call_tool("triage", {"message": "I want a refund"})
        assert not result.is_error, result
        out: dict[str, Any] = result.structured_content or {}
        assert out["answer"] == "Billing here: refund issued." and out["agent"] == "billing"
        # The conversation goes on: its id back in, the agent that has it answers.
        again = await mcp.call_tool(
            "triage", {"message": "one more refund", "conversation_id": out["conversation_id"]}
        )
        assert not again.is_error and (again.structured_content or {})["agent"] == "billing"
    stored = await local.store.events(out["conversation_id"])
    messages = [e.content for e in stored if isinstance(e, MessageEvent)]
    assert messages == ["I want a refund", "one more refund"]


async def test_failures_are_tool_errors_and_tenants_stay_apart(
    served: tuple[LocalApp, str],
) -> None:
    _, url = served
    async with session(url) as mcp:
        failed = await mcp.call_tool("triage", {"message": "fail now"})
        assert failed.is_error and "engine_failed" in failed.content[0].text  # type: ignore[union-attr]
        ok = await mcp.call_tool("triage", {"message": "hello"})
        conversation = (ok.structured_content or {})["conversation_id"]
    async with session(url, tenant="globex") as other:
        refused = await other.call_tool(
            "triage", {"message": "let me in", "conversation_id": conversation}
        )
        assert refused.is_error and "no conversation" in refused.content[0].text  # type: ignore[union-attr]
    async with httpx.AsyncClient() as http:  # no key: 401 before MCP sees the request
        response = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
