"""Built-in tools: sandboxed ``python``, allow-listed ``http_get``, ``calculator`` and
``current_time``."""

from __future__ import annotations

import ast
import operator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import ConfigError
from tools.base import ToolDefinition
from tools.registry import Runner, Tool
from tools.sandbox import Sandbox
from tools.spec import ToolSpec
from tools.workers import ToolFailed

__all__ = ["builtin_tool"]

_Strict = ConfigDict(extra="forbid")


class PythonArguments(BaseModel):
    """Arguments of ``python``."""

    model_config = _Strict

    code: str = Field(description="Python 3 source; print what you want to see.")


class HttpGetArguments(BaseModel):
    """Arguments of ``http_get``."""

    model_config = _Strict

    url: str = Field(description="An http(s) URL on an allowed host.")


class CalculatorArguments(BaseModel):
    """Arguments of ``calculator``."""

    model_config = _Strict

    expression: str = Field(description="Arithmetic: numbers, + - * / // % ** and brackets.")


class TimeArguments(BaseModel):
    """Arguments of ``current_time``."""

    model_config = _Strict

    timezone: str = Field("UTC", description="An IANA time zone, e.g. Europe/Paris.")


def builtin_tool(spec: ToolSpec, *, sandbox: Sandbox | None = None) -> Tool:
    """The built-in ``spec.builtin``, configured by ``spec.options``."""
    name = spec.name or spec.builtin or ""
    runner: Runner
    if spec.builtin == "python":
        box = sandbox or Sandbox()
        model: type[BaseModel] = PythonArguments
        about = "Run Python code in a sandbox (no network, no files outside its folder)."
        runner = _python(box)
    elif spec.builtin == "http_get":
        hosts = spec.options.get("allowed_hosts")
        if not hosts or not isinstance(hosts, list):
            raise ConfigError(f"tool {name!r}: http_get needs options.allowed_hosts (a list)")
        model, runner = HttpGetArguments, _http_get([str(h).lower() for h in hosts])
        about = f"Fetch a web page (GET) from one of: {', '.join(hosts)}."
    elif spec.builtin == "calculator":
        model, runner, about = CalculatorArguments, _calculator, "Evaluate arithmetic."
    else:
        model, runner, about = TimeArguments, _current_time, "The current date and time."
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    definition = ToolDefinition(
        name=name,
        description=spec.description or about,
        parameters=schema,
        requires_approval=spec.settings.requires_approval,
    )
    return Tool(definition, spec.settings, model, run=runner, sandboxed=spec.builtin == "python")


def _python(sandbox: Sandbox) -> Runner:
    async def run(arguments: dict[str, Any]) -> str:
        result = await sandbox.run_python(arguments["code"])
        if not result.ok:
            detail = result.stderr.strip()[-2000:]
            raise ToolFailed(
                f"the code {result.describe()}: {detail}",
                error_type="SandboxError",
                killed=result.killed,
            )
        return result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")

    return run


def _http_get(allowed: list[str]) -> Runner:
    async def run(arguments: dict[str, Any]) -> str:
        url = arguments["url"]
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https"):
            raise ToolFailed(f"only http(s) URLs are allowed, not {parts.scheme!r}", "Forbidden")
        if not any(host == h or host.endswith("." + h) for h in allowed):
            raise ToolFailed(f"host {host!r} is not on the allow-list", error_type="Forbidden")
        # No redirects: a redirect could leave the allow-list.
        async with httpx.AsyncClient(follow_redirects=False, timeout=10.0) as client:
            response = await client.get(url)
        return f"HTTP {response.status_code}\n{response.text}"

    return run


_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


async def _calculator(arguments: dict[str, Any]) -> str:
    try:
        tree = ast.parse(arguments["expression"], mode="eval")
        return str(_evaluate(tree.body))
    except (SyntaxError, ZeroDivisionError, OverflowError, ValueError) as exc:
        raise ToolFailed(f"cannot evaluate: {exc}", error_type=type(exc).__name__) from exc


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ValueError("exponent too large")
        return _OPERATORS[type(node.op)](left, right)  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    raise ValueError(f"unsupported expression element {type(node).__name__}")


async def _current_time(arguments: dict[str, Any]) -> str:
    try:
        zone = ZoneInfo(arguments["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolFailed(f"unknown time zone {arguments['timezone']!r}", "ValueError") from exc
    return datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")
