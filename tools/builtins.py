"""Built-in tools: sandboxed ``python``, allow-listed ``http_get``, ``calculator`` and
``current_time``."""

from __future__ import annotations

import ast
import cmath
import math
import operator
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import ConfigError
from tools._limits import CappedBytes
from tools.base import ToolDefinition
from tools.registry import Runner, Tool
from tools.sandbox import Sandbox
from tools.spec import HttpGetOptions, ToolSpec
from tools.workers import ToolFailedError

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

    expression: str = Field(
        max_length=1000,
        pattern=r"^[0-9eE+\-*/%^()., ]+$",
        description=(
            "Arithmetic: numbers, + - * / // ** or ^ (power), brackets; 15% is 0.15, "
            "a % b the remainder (3000 digits at most)."
        ),
    )


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
        options = _http_get_options(name, spec.options)
        model, runner = HttpGetArguments, _http_get(options)
        about = f"Fetch a web page (GET) from one of: {', '.join(options.allowed_hosts)}."
    elif spec.builtin == "calculator":
        model, runner = CalculatorArguments, _calculator
        about = "Evaluate an arithmetic expression exactly, e.g. (12 + 3) * 4 ^ 2 or 15% * 80."
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
            raise ToolFailedError(
                f"the code {result.describe()}: {detail}",
                error_type="SandboxError",
                killed=result.killed,
            )
        return result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")

    return run


def _http_get_options(name: str, options: dict[str, Any]) -> HttpGetOptions:
    try:
        return HttpGetOptions.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(
            f"tool {name!r}: http_get needs options.allowed_hosts (a list) and may set "
            f"max_bytes ({problems})"
        ) from exc


def _http_get(options: HttpGetOptions) -> Runner:
    allowed = [host.lower() for host in options.allowed_hosts]

    async def run(arguments: dict[str, Any]) -> str:
        url = arguments["url"]
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https"):
            raise ToolFailedError(
                f"only http(s) URLs are allowed, not {parts.scheme!r}", "Forbidden"
            )
        if not any(host == h or host.endswith("." + h) for h in allowed):
            raise ToolFailedError(f"host {host!r} is not on the allow-list", error_type="Forbidden")
        # No redirects: a redirect could leave the allow-list. The body is read as it
        # streams in and reading stops at max_bytes, so a huge or endless body costs
        # no more than that. It is asked for uncompressed and never decompressed (a
        # small gzip "bomb" could expand a thousandfold within one network chunk).
        body = CappedBytes(options.max_bytes)
        async with (
            httpx.AsyncClient(follow_redirects=False, timeout=10.0) as client,
            client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response,
        ):
            encoding = response.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                raise ToolFailedError(
                    f"the server sent a {encoding!r}-compressed body although an uncompressed "
                    "one was asked for; it is not read",
                    error_type="UnsupportedEncoding",
                )
            async for chunk in response.aiter_raw():
                body.feed(chunk)
                if body.cut:
                    break
            text = body.text(response.encoding or "utf-8", unread=True)
        return f"HTTP {response.status_code}\n{text}"

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
# No intermediate integer may pass _MAX_DIGITS digits, checked before a power or
# product is computed, and no float may overflow. With the expression's length bounded
# too, an evaluation is at most a few hundred small big-int operations (milliseconds),
# which is what keeps the executor's event loop free. A thread would not: one huge
# big-int operation holds the GIL and cannot be interrupted.
_MAX_DIGITS = 3000
_MAX_BITS = math.ceil(_MAX_DIGITS * math.log2(10))

_Number = int | float | complex


# "1,234" is a thousand-separated number; "15%" not followed by a number is 0.15.
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*%(?!\s*[\d.(])")


def _python_syntax(expression: str) -> str:
    """A calculator expression as Python: thousands separators dropped, ``^`` a power,
    a percentage (``15%``, no number after it) divided by 100; ``a % b`` stays the
    remainder."""
    expression = _THOUSANDS.sub("", expression)
    expression = _PERCENT.sub(r"(\1/100)", expression)
    return expression.replace("^", "**")


def _show_number(value: int | float | complex) -> str:
    """A result as a person writes it: 25 for 25.0, 0.3 for 0.30000000000000004."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    return str(value)


async def _calculator(arguments: dict[str, Any]) -> str:
    try:
        tree = ast.parse(_python_syntax(arguments["expression"]), mode="eval")
        return _show_number(_evaluate(tree.body))
    except RecursionError as exc:
        why = "cannot evaluate: the expression is nested too deeply"
        raise ToolFailedError(why, error_type="ValueError") from exc
    except (SyntaxError, ZeroDivisionError, OverflowError, ValueError) as exc:
        raise ToolFailedError(f"cannot evaluate: {exc}", error_type=type(exc).__name__) from exc


def _evaluate(node: ast.AST) -> _Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return _bounded(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        bits = _estimated_bits(node.op, left, right)
        if bits > _MAX_BITS:
            raise OverflowError(_too_large(bits))
        return _bounded(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _bounded(_OPERATORS[type(node.op)](_evaluate(node.operand)))
    raise ValueError(f"unsupported expression element {type(node).__name__}")


def _estimated_bits(op: ast.operator, left: _Number, right: _Number) -> float:
    """About how many bits an integer power or product will have (0 for the others,
    whose integer results are no larger than their operands, plus one bit)."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return 0  # floats overflow quickly (OverflowError or inf, checked after)
    if isinstance(op, ast.Mult):
        return left.bit_length() + right.bit_length() - 1
    if isinstance(op, ast.Pow) and right > 0 and abs(left) > 1:
        if right.bit_length() > 64:  # no float holds the estimate; far too large anyway
            return math.inf
        return right * math.log2(abs(left))
    return 0


def _bounded(value: _Number) -> _Number:
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise OverflowError(_too_large(value.bit_length()))
    if isinstance(value, float | complex) and not cmath.isfinite(value):
        raise OverflowError("the result is too large for a floating-point number")
    return value


def _too_large(bits: float) -> str:
    size = f"about {math.ceil(bits * math.log10(2))}" if math.isfinite(bits) else "far more"
    return f"numbers may have {_MAX_DIGITS} digits at most, and a result would have {size}"


async def _current_time(arguments: dict[str, Any]) -> str:
    try:
        zone = ZoneInfo(arguments["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolFailedError(f"unknown time zone {arguments['timezone']!r}", "ValueError") from exc
    return datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")
