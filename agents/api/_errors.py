"""Errors as the API sends them: one shape, one table from error codes to statuses.

Every error response is ``ErrorBody`` (``{"error": {"type", "code", "message",
"request_id"}}``) with the status ``ERROR_STATUS`` gives its type. ``type`` is the
category a client switches on; ``code`` the exact error: an exception's own ``code``
(unique per class, ``agents.errors``), or the type itself for the API's own errors
(validation, keys, limits). ``ERROR_CODES`` is the one table: every exception code, its
type (hence status), and whether its message may reach the caller. Messages of
failures below the API (the store, the engines, unreachable agents, config files) can
name files, hosts or deployments: the caller gets a fixed sentence instead and the log
has the cause, under the request id. ``api_error`` is the only place an exception
becomes an HTTP error; anything not in the table is a 500 that says nothing of it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agents.api.types import ERROR_STATUS, ErrorBody, ErrorDetail, ErrorType
from agents.errors import RayAgentsError, remote_cause

__all__ = [
    "ERROR_CODES",
    "ApiError",
    "ErrorCode",
    "api_error",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger("ray_agents.api")

_INTERNAL = "internal error; quote the request id when reporting it"
_UNAVAILABLE = "the agents are unavailable right now; retry, or quote the request id"
_STORE = "the conversation store is unavailable right now; retry, or quote the request id"
_MODEL = "the model pool failed; retry, or quote the request id"


@dataclass(frozen=True)
class ErrorCode:
    """How the API answers an exception with this code."""

    type: ErrorType
    """The category, which fixes the HTTP status (``ERROR_STATUS``)."""
    public: str | None = None
    """None: the exception's message goes to the caller (it says what to fix). Else the
    sentence sent instead (the message may name files, hosts or deployments)."""
    retry_after_s: float | None = None

    @property
    def status(self) -> int:
        """The HTTP status."""
        return ERROR_STATUS[self.type]


ERROR_CODES: dict[str, ErrorCode] = {
    # agents.errors, by class
    "internal": ErrorCode("internal_error", _INTERNAL),
    "user_error": ErrorCode("invalid_request"),
    "config_error": ErrorCode("internal_error", _INTERNAL),
    "model_source_error": ErrorCode("internal_error", _INTERNAL),
    "idempotency_mismatch": ErrorCode("idempotency_mismatch"),
    "variable_not_allowed": ErrorCode("invalid_request"),
    "webhook_not_allowed": ErrorCode("invalid_request"),
    "generation_failed": ErrorCode("agent_unavailable", _MODEL, 1.0),
    "invalid_generation_request": ErrorCode("invalid_request"),
    "unknown_model": ErrorCode("not_found"),
    "prompt_too_long": ErrorCode("invalid_request"),
    "engine_failed": ErrorCode("agent_unavailable", _MODEL, 1.0),
    "engine_lost": ErrorCode("agent_unavailable", _MODEL, 1.0),
    "engine_unavailable": ErrorCode("agent_unavailable", _MODEL, 5.0),
    "agent_error": ErrorCode("agent_error"),
    "budget_exceeded": ErrorCode("rate_limit_exceeded"),
    "unknown_agent": ErrorCode("not_found"),
    "unknown_tool": ErrorCode("agent_error"),
    "tool_forbidden": ErrorCode("agent_error"),
    "invalid_action": ErrorCode("agent_error"),
    "max_steps": ErrorCode("agent_error"),
    "token_limit": ErrorCode("agent_error"),
    "hop_limit": ErrorCode("agent_error"),
    "handoff_cycle": ErrorCode("agent_error"),
    "deadline_exceeded": ErrorCode("deadline_exceeded"),
    "no_pending_approval": ErrorCode("no_pending_approval"),
    "runner_lost": ErrorCode("agent_unavailable", _UNAVAILABLE, 1.0),
    "agent_unavailable": ErrorCode("agent_unavailable", _UNAVAILABLE, 1.0),
    "agent_lost": ErrorCode("agent_unavailable", _UNAVAILABLE, 1.0),
    "tools_unavailable": ErrorCode("agent_unavailable", _UNAVAILABLE, 1.0),
    "tools_lost": ErrorCode("agent_unavailable", _UNAVAILABLE, 1.0),
    "remote_agent_error": ErrorCode("agent_error"),
    "store_error": ErrorCode("agent_unavailable", _STORE, 1.0),
    "conversation_not_found": ErrorCode("not_found"),
    "conversation_busy": ErrorCode("conversation_busy", None, 1.0),
    "lease_lost": ErrorCode("agent_unavailable", _UNAVAILABLE, 1.0),
    # tools.workers and tools.sandbox: a tool's failure is a result the agent reads;
    # one that reaches the API anyway is the app's fault, and may name files.
    "tool_error": ErrorCode("internal_error", _INTERNAL),
    "tool_crashed": ErrorCode("internal_error", _INTERNAL),
    "tool_timeout": ErrorCode("internal_error", _INTERNAL),
    "sandbox_unavailable": ErrorCode("internal_error", _INTERNAL),
}


class ApiError(Exception):
    """An error response: its type (which fixes the status), its code (the type unless
    an exception's code is more exact) and a message for the caller. ``hidden``: the
    caller got a fixed sentence; the log should have the cause."""

    def __init__(
        self,
        type_: ErrorType,
        message: str,
        *,
        code: str | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
        hidden: bool = False,
    ) -> None:
        super().__init__(message)
        self.type = type_
        self.code = code or type_
        self.message = message
        self.retry_after_s = retry_after_s
        self.status = status or ERROR_STATUS[type_]
        self.hidden = hidden


def api_error(exc: BaseException) -> ApiError:
    """The API error an exception from below the API stands for (``ERROR_CODES``)."""
    if isinstance(exc, ApiError):
        return exc
    cause = remote_cause(exc)
    entry = ERROR_CODES.get(cause.code) if isinstance(cause, RayAgentsError) else None
    if entry is None:
        return ApiError("internal_error", _INTERNAL, hidden=True)
    assert isinstance(cause, RayAgentsError)
    return ApiError(
        entry.type,
        entry.public or str(cause),
        code=cause.code,
        retry_after_s=entry.retry_after_s,
        hidden=entry.public is not None,
    )


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """The JSON response for ``error``, with Retry-After when it has one."""
    request_id = getattr(request.state, "request_id", "")
    body = ErrorBody(
        error=ErrorDetail(
            type=error.type, code=error.code, message=error.message, request_id=request_id
        )
    )
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return JSONResponse(body.model_dump(), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through ``error_response``."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = api_error(exc)
        if error.hidden:  # the caller got a fixed sentence: the log keeps the cause
            request_id = getattr(request.state, "request_id", "")
            level = logging.ERROR if error.type == "internal_error" else logging.WARNING
            log.log(level, "request %s failed (%s)", request_id, error.code, exc_info=exc)
        return error_response(request, error)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        message = _describe(cast(RequestValidationError, exc))
        return error_response(request, ApiError("invalid_request", message))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        exc = cast(HTTPException, exc)
        type_: ErrorType = "not_found" if exc.status_code == 404 else "invalid_request"
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error_response(request, ApiError(type_, message, status=exc.status_code))

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RayAgentsError, on_api_error)
    # Anything else reaches Starlette's outermost handler, which sends this 500 and
    # then re-raises, so the server's log has the traceback.
    app.add_exception_handler(Exception, on_api_error)


def _describe(exc: RequestValidationError) -> str:
    """``body.content: Field required; query.limit: ...``: what to fix, field by field."""
    parts = []
    for err in exc.errors()[:10]:
        field = ".".join(str(p) for p in err.get("loc", ())) or "request"
        parts.append(f"{field}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
