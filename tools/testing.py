"""``FunctionTools``: Python callables as tools, run in-process (no sandbox)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

from agents.errors import UnknownToolError
from tools.base import ToolCallRequest, ToolDefinition, ToolExecutor, ToolResult

__all__ = ["FunctionTools"]


class FunctionTools(ToolExecutor):
    """Tools from plain functions: ``FunctionTools({"add": (add, schema)})``.

    For tests and local experiments: the functions run in the caller's process, with
    the caller's rights. Served tools run in the tool-execution deployment.
    """

    def __init__(
        self, functions: dict[str, tuple[Callable[..., Any], dict[str, Any]]] | None = None
    ) -> None:
        self._functions = dict(functions or {})

    def add(self, name: str, fn: Callable[..., Any], parameters: dict[str, Any]) -> None:
        """Register ``fn`` under ``name`` with its arguments' JSON schema."""
        self._functions[name] = (fn, parameters)

    async def definitions(self, names: list[str]) -> list[ToolDefinition]:
        """Definitions of the named functions, described by their docstrings."""
        missing = [n for n in names if n not in self._functions]
        if missing:
            raise UnknownToolError(f"unknown tool(s): {', '.join(missing)}")
        return [
            ToolDefinition(
                name=n,
                description=inspect.getdoc(self._functions[n][0]) or "",
                parameters=self._functions[n][1],
            )
            for n in names
        ]

    async def execute(self, request: ToolCallRequest) -> ToolResult:
        """Call the function; its exception becomes an error result."""
        entry = self._functions.get(request.name)
        if entry is None:
            return _result(request, f"unknown tool {request.name!r}", error=True)
        fn = entry[0]
        try:
            value = fn(**request.arguments)
            if inspect.isawaitable(value):
                value = await value
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any tool failure is the agent's to read
            return _result(request, f"{type(exc).__name__}: {exc}", error=True)
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return _result(request, text)


def _result(request: ToolCallRequest, content: str, *, error: bool = False) -> ToolResult:
    return ToolResult(call_id=request.call_id, name=request.name, content=content, is_error=error)


# Misbehaving tools for tests of the executor (importable, so worker processes can
# load them by reference).


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def fail_until(counter: str, failures: int) -> str:
    """Fail ``failures`` times (counted in the file ``counter``), then succeed."""
    from pathlib import Path

    path = Path(counter)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < failures:
        raise RuntimeError(f"failure {seen + 1} of {failures}")
    return f"succeeded after {seen} failures"


def sleep_for(seconds: float) -> str:
    """Sleep, then answer."""
    import time

    time.sleep(seconds)
    return "awake"


def shout(text: str, times: int = 1) -> str:
    """Repeat ``text`` upper-cased."""
    return text.upper() * times


def explode() -> str:
    """Raise."""
    raise ValueError("the tool exploded")


def crash(how: str) -> str:
    """End the process the tool runs in: 'segfault' or 'exit'."""
    import ctypes
    import os

    if how == "segfault":
        ctypes.string_at(0)
    os._exit(3)
