"""The executor: grants, validation, timeouts, retries, truncation, crashes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.tools import tool

from tools import testing
from tools.base import ToolCallRequest, ToolResult
from tools.executor import ToolRunner
from tools.registry import ToolRegistry
from tools.spec import ToolSettings, ToolSpec
from tools.workers import WorkerPool


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def settings(**fields: object) -> ToolSettings:
    return ToolSettings.model_validate(fields)


@pytest.fixture
async def runner() -> AsyncIterator[ToolRunner]:
    registry = ToolRegistry()
    registry.add_function(testing.add)
    registry.add_function(testing.shout, settings=settings(max_output_chars=100))
    registry.add_function(testing.explode)
    registry.add_function(testing.crash)
    registry.add_function(testing.sleep_for, settings=settings(timeout_s=0.5))
    registry.add_function(testing.fail_until, settings=settings(idempotent=True, retries=2))
    registry.add_function(testing.fail_until, name="fail_once_unsafe")
    registry.add_langchain(multiply)
    registry.add_spec(ToolSpec(builtin="calculator"))
    grants = {"a": registry.names, "b": ["add"]}
    runner = ToolRunner(registry, grants=grants, workers=WorkerPool(2), retry_wait_s=0.01)
    yield runner
    await runner.close()


async def call(runner: ToolRunner, name: str, agent: str = "a", **arguments: object) -> ToolResult:
    request = ToolCallRequest(call_id="c1", name=name, arguments=arguments, agent=agent)
    return await runner.execute(request)


async def test_a_call_runs_in_a_worker(runner: ToolRunner) -> None:
    result = await call(runner, "add", a=2, b=3)
    assert (result.content, result.is_error) == ("5", False)


async def test_schema_mismatch_is_an_error_the_agent_can_correct(runner: ToolRunner) -> None:
    result = await call(runner, "add", a="two", c=1)
    assert result.is_error and result.error_type == "invalid_arguments"
    text = result.content
    assert "a: Input should be a valid integer" in text and "b: Field required" in text
    assert "c: Extra inputs are not permitted" in text and '"required"' in text


async def test_timeout(runner: ToolRunner) -> None:
    result = await call(runner, "sleep_for", seconds=5)
    assert result.error_type == "tool_timeout" and "0.5 s" in result.content
    # The stuck worker was replaced: the next call runs.
    assert (await call(runner, "add", a=1, b=1)).content == "2"


async def test_idempotent_tool_is_retried(runner: ToolRunner, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    result = await call(runner, "fail_until", counter=str(counter), failures=2)
    assert result.content == "succeeded after 2 failures"
    assert counter.read_text() == "3"


async def test_non_idempotent_tool_is_not_retried(runner: ToolRunner, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    result = await call(runner, "fail_once_unsafe", counter=str(counter), failures=1)
    assert result.is_error and result.error_type == "RuntimeError"
    assert counter.read_text() == "1"


async def test_output_is_truncated_with_a_marker(runner: ToolRunner) -> None:
    result = await call(runner, "shout", text="ab", times=500)
    content = result.content
    assert (
        content.startswith("AB" * 50) and "[... output truncated: 900 more characters]" in content
    )


async def test_a_raising_tool_returns_its_error(runner: ToolRunner) -> None:
    result = await call(runner, "explode")
    assert result.error_type == "ValueError" and "the tool exploded" in result.content


@pytest.mark.parametrize(("how", "why"), [("segfault", "SIGSEGV"), ("exit", "exit code 3")])
async def test_a_crashing_tool_leaves_the_executor_alive(
    runner: ToolRunner, how: str, why: str
) -> None:
    result = await call(runner, "crash", how=how)
    assert result.error_type == "tool_crashed" and why in result.content
    assert (await call(runner, "add", a=2, b=2)).content == "4"


async def test_an_agent_cannot_call_a_tool_it_was_not_granted(runner: ToolRunner) -> None:
    result = await call(runner, "explode", agent="b")
    assert result.error_type == "tool_forbidden" and "'b'" in result.content
    anonymous = await call(runner, "add", agent="")
    assert anonymous.error_type == "tool_forbidden"


async def test_langchain_tools_and_builtins(runner: ToolRunner) -> None:
    assert (await call(runner, "multiply", a=6, b=7)).content == "42"
    assert (await call(runner, "calculator", expression="(2 + 3) * 4 ** 2")).content == "80"
    bad = await call(runner, "calculator", expression="__import__('os')")
    assert bad.is_error
    definition = (await runner.definitions(["multiply"]))[0]
    assert definition.description == "Multiply two integers."
    assert definition.parameters["required"] == ["a", "b"]


async def test_unknown_tool(runner: ToolRunner) -> None:
    result = await call(runner, "nope")
    assert result.error_type == "unknown_tool" and "registered:" in result.content
