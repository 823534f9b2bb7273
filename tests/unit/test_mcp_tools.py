"""An MCP server (written with the `mcp` package) as a tool source, end to end."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.events import AnswerEvent, ToolResultEvent
from agents.spec import AgentSpec
from agents.testing import LocalApp, ScriptedGenerator, action
from tools.base import ToolCallRequest
from tools.executor import ToolRunner
from tools.mcp import MCPSource
from tools.registry import ToolRegistry
from tools.spec import MCPServerSpec, ToolSettings

SERVER = Path(__file__).parents[1] / "fixtures" / "mcp_weather.py"


@pytest.fixture
async def runner() -> AsyncIterator[ToolRunner]:
    spec = MCPServerSpec(
        name="wx", command=[sys.executable, str(SERVER)], settings=ToolSettings(timeout_s=10)
    )
    source = MCPSource(spec)
    await source.connect()
    registry = ToolRegistry()
    await source.register(registry)
    yield ToolRunner(registry, grants={"planner": ["wx.forecast", "wx.fail"]})
    await source.close()


async def test_the_servers_tools_join_the_registry(runner: ToolRunner) -> None:
    assert runner.registry.names == ["wx.fail", "wx.forecast"]
    [forecast] = await runner.definitions(["wx.forecast"])
    assert forecast.description == "The weather forecast for a city."
    assert forecast.parameters["required"] == ["city"]


async def test_calls_validate_and_report_errors(runner: ToolRunner) -> None:
    def call(name: str, **arguments: object) -> ToolCallRequest:
        return ToolCallRequest(call_id="c", name=name, arguments=arguments, agent="planner")

    ok = await runner.execute(call("wx.forecast", city="Oslo", days=2))
    assert ok.content == "Sunny in Oslo for 2 day(s)" and not ok.is_error
    bad = await runner.execute(call("wx.forecast", days="many"))
    assert bad.error_type == "invalid_arguments" and "'city' is a required property" in bad.content
    failed = await runner.execute(call("wx.fail", reason="nope"))
    assert failed.is_error and failed.error_type == "MCPToolError"


async def test_an_agent_calls_an_mcp_tool(runner: ToolRunner) -> None:
    gen = ScriptedGenerator(
        [
            {
                "match": "^Weather in Paris",
                "json_reply": action("tool", tool="wx.forecast", arguments={"city": "Paris"}),
            },
            {
                "match": r"\[wx.forecast result\] Sunny",
                "json_reply": action("answer", text="Sunny."),
            },
        ]
    )
    app = LocalApp(
        [AgentSpec(name="planner", model="m", tools=["wx.forecast"])], generator=gen, tools=runner
    )
    events = await app.send("Weather in Paris?")
    assert [e.content for e in events if isinstance(e, ToolResultEvent)] == [
        "Sunny in Paris for 1 day(s)"
    ]
    assert [e.text for e in events if isinstance(e, AnswerEvent)] == ["Sunny."]


async def test_a_streamable_http_server() -> None:
    import asyncio

    from tests.conftest import free_port

    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), "http", str(port), stderr=asyncio.subprocess.DEVNULL
    )
    spec = MCPServerSpec(name="web", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    source = MCPSource(spec)
    try:
        for _ in range(100):  # until the server listens
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await source.connect()
        registry = ToolRegistry()
        await source.register(registry)
        result = await ToolRunner(registry).execute(
            ToolCallRequest(call_id="c", name="web.forecast", arguments={"city": "Rome"})
        )
        assert result.content == "Sunny in Rome for 1 day(s)"
    finally:
        await source.close()
        server.kill()
        await server.wait()


async def test_a_dead_server_is_reconnected(runner: ToolRunner) -> None:
    import psutil

    [server] = [
        p for p in psutil.Process().children(recursive=True) if str(SERVER) in " ".join(p.cmdline())
    ]
    server.kill()
    server.wait()
    request = ToolCallRequest(
        call_id="c", name="wx.forecast", arguments={"city": "Oslo"}, agent="planner"
    )
    broken = await runner.execute(request)
    assert broken.error_type == "tool_crashed" and "reconnected" in broken.content
    again = await runner.execute(request)
    assert again.content == "Sunny in Oslo for 1 day(s)"


async def test_long_mcp_results_are_capped() -> None:
    spec = MCPServerSpec(
        name="wx",
        command=[sys.executable, str(SERVER)],
        max_result_bytes=1024,
        settings=ToolSettings(timeout_s=10, max_output_chars=100_000),
    )
    source = MCPSource(spec)
    await source.connect()
    try:
        registry = ToolRegistry()
        await source.register(registry)
        runner = ToolRunner(registry)
        city = "x" * 50_000
        result = await runner.execute(
            ToolCallRequest(call_id="c", name="wx.forecast", arguments={"city": city})
        )
        full = f"Sunny in {city} for 1 day(s)"
        assert result.content == full[:1024] + f"\n[... {len(full) - 1024} more bytes cut]"
    finally:
        await source.close()
