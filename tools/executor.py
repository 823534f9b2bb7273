"""``ToolRunner``: runs tool calls with grants, validation, limits and retries.

Every failure is a result, not an exception: the agent reads ``error_type`` and the
message and can correct its call. The checks, in order: the tool exists; the calling
agent was granted it (the executor checks this itself, not just the prompt); the
arguments fit the schema. Then the call runs under the tool's concurrency limit and
timeout (never past the caller's deadline), isolated tools in worker processes;
idempotent tools are retried with exponential backoff; long output is cut with a
visible marker.

Each call is traced (``tool.execute``, a child of the caller's ``tool.call`` span),
measured (calls, latency, timeouts, errors, killed processes) and logged once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from agents.errors import RayAgentsError, ToolForbiddenError
from agents.observability import metrics as m
from agents.observability.logging import content
from agents.observability.scope import Scope
from agents.observability.tracing import end_span, start_span
from tools.base import ToolCallRequest, ToolDefinition, ToolExecutor, ToolResult
from tools.registry import Tool, ToolRegistry
from tools.workers import ToolCrashedError, ToolFailedError, ToolTimeoutError, WorkerPool

__all__ = ["ToolRunner"]

_RETRYABLE = (ToolFailedError, ToolCrashedError, ToolTimeoutError)
log = logging.getLogger("ray_agents.tools")


class ToolRunner(ToolExecutor):
    """Executes calls against a registry.

    ``grants`` maps an agent name to the tools it may call; None trusts every caller
    (in-process use). Calls without an agent are refused when grants are set.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        grants: Mapping[str, Iterable[str]] | None = None,
        workers: WorkerPool | None = None,
        retry_wait_s: float = 0.2,
    ) -> None:
        self.registry = registry
        self._grants = None if grants is None else {a: set(t) for a, t in grants.items()}
        self._workers = workers or WorkerPool()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._retry_wait_s = retry_wait_s

    async def definitions(self, names: list[str]) -> list[ToolDefinition]:
        """The definitions of ``names``."""
        return self.registry.definitions(names)

    async def execute(self, request: ToolCallRequest) -> ToolResult:
        """Run one call; every failure comes back as an error result."""
        # Names the model made up are not a metric's tag each.
        tool = request.name if request.name in self.registry.names else "unknown"
        span = start_span(
            "tool.execute",
            parent=request.trace,
            attributes={"ray_agents.tool": tool, "ray_agents.call_id": request.call_id},
        )
        scope = Scope(
            span,
            conversation_id=request.conversation_id,
            agent=request.agent,
            trace_id=request.trace_id,
        )
        started = time.monotonic()
        with scope.active():
            try:
                result = await self._execute(request)
            except Exception as exc:  # a defect below must still reach the agent as a result
                result = _error(request, "internal", f"{type(exc).__name__}: {exc}")
            _observe(tool, request, result, (time.monotonic() - started) * 1000)
        end_span(span, result.error_type)
        return result

    async def _execute(self, request: ToolCallRequest) -> ToolResult:
        try:
            tool = self.registry.get(request.name)
            self._check_grant(request)
            if tool.settings.requires_approval and not request.approved:
                return _error(request, "approval_required", "a person must approve this call")
            arguments = tool.validate(request.arguments)
        except (ValidationError, jsonschema.ValidationError) as exc:
            schema = json.dumps(self.registry.get(request.name).definition.parameters)
            return _error(request, "invalid_arguments", f"{_problems(exc)}. Schema: {schema}")
        except RayAgentsError as exc:
            return _error(request, exc.code, exc.message)
        limit = self._limits.setdefault(tool.name, asyncio.Semaphore(tool.settings.max_concurrency))
        async with limit:
            try:
                value = await self._run_with_retries(tool, arguments, request.deadline)
            except ToolFailedError as exc:
                return _error(request, exc.error_type, exc.message)
            except RayAgentsError as exc:  # timeouts, crashes, an unavailable sandbox
                return _error(request, exc.code, exc.message)
        return ToolResult(
            call_id=request.call_id,
            name=request.name,
            content=_cap(_text(value), tool.settings.max_output_chars),
        )

    async def close(self) -> None:
        """Stop the worker processes."""
        await self._workers.close()

    def _check_grant(self, request: ToolCallRequest) -> None:
        if self._grants is None:
            return
        granted = self._grants.get(request.agent or "", set())
        if request.name not in granted:
            raise ToolForbiddenError(
                f"agent {request.agent!r} is not granted tool {request.name!r}"
            )

    async def _run_with_retries(
        self, tool: Tool, arguments: dict[str, Any], deadline: float | None
    ) -> Any:
        attempts = tool.settings.retries + 1 if tool.settings.idempotent else 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self._retry_wait_s, max=5 * self._retry_wait_s),
            retry=retry_if_exception_type(_RETRYABLE),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._run_once(tool, arguments, deadline)
        raise AssertionError("unreachable: tenacity reraises the last failure")

    async def _run_once(self, tool: Tool, arguments: dict[str, Any], deadline: float | None) -> Any:
        timeout = tool.settings.timeout_s
        if deadline is not None:
            timeout = min(timeout, deadline - time.time())
            if timeout <= 0:
                raise ToolTimeoutError("the caller's deadline passed before the tool could run")
        if tool.run is not None:
            try:
                async with asyncio.timeout(timeout):
                    return await tool.run(arguments)
            except TimeoutError as exc:
                if tool.sandboxed:  # cancelled, the sandbox killed its processes
                    m.TOOL_SANDBOX_KILLS.inc(tool=tool.name)
                raise ToolTimeoutError(f"the tool ran past its {timeout:g} s timeout") from exc
            except ToolFailedError as exc:
                if exc.killed:
                    m.TOOL_SANDBOX_KILLS.inc(tool=tool.name)
                raise
            except (ToolCrashedError, ToolTimeoutError, RayAgentsError):
                raise
            except Exception as exc:  # the tool's own failure: the agent's to read
                raise ToolFailedError(f"{type(exc).__name__}: {exc}", type(exc).__name__) from exc
        assert tool.function is not None  # a Tool has a runner or a function
        try:
            return await self._workers.call(tool.function, arguments, timeout_s=timeout)
        except (ToolTimeoutError, ToolCrashedError):  # the worker was killed, or died
            m.TOOL_SANDBOX_KILLS.inc(tool=tool.name)
            raise


def _observe(tool: str, request: ToolCallRequest, result: ToolResult, elapsed_ms: float) -> None:
    status = "error" if result.is_error else "ok"
    m.TOOL_CALLS.inc(tool=tool, status=status)
    m.TOOL_LATENCY.observe(elapsed_ms, tool=tool)
    if result.error_type is not None:
        m.TOOL_ERRORS.inc(tool=tool, error_type=result.error_type)
        if result.error_type == ToolTimeoutError.code:
            m.TOOL_TIMEOUTS.inc(tool=tool)
    said = content(arguments=request.arguments, result=result.content)
    log.info(
        "tool call",
        extra={
            "tool": request.name,
            "call_id": request.call_id,
            "status": status,
            "error_type": result.error_type,
            "ms": round(elapsed_ms, 1),
            **said,
        },
    )


def _error(request: ToolCallRequest, kind: str, message: str) -> ToolResult:
    return ToolResult(
        call_id=request.call_id,
        name=request.name,
        content=f"{kind}: {message}",
        is_error=True,
        error_type=kind,
    )


def _problems(exc: ValidationError | jsonschema.ValidationError) -> str:
    if isinstance(exc, jsonschema.ValidationError):
        where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
        return f"invalid arguments: {where}: {exc.message}"
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... output truncated: {len(text) - limit} more characters]"
