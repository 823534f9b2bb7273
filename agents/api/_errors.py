"""Errors as the API sends them: one shape, one mapping from exceptions to statuses.

Every error response is ``ErrorBody`` (``{"error": {"type", "message", "request_id"}}``)
with the status ``ERROR_STATUS`` gives its type. ``api_error`` is the only place an
exception becomes an HTTP error; anything it does not know is a 500 whose message says
nothing about the cause (the log has it, under the request id).
"""

from __future__ import annotations

import logging
import math
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agents.api.types import ERROR_STATUS, ErrorBody, ErrorDetail, ErrorType
from agents.errors import (
    AgentRunError,
    ConversationBusy,
    ConversationNotFound,
    DeadlineExceeded,
    IdempotencyConflict,
    InvalidRequestError,
    NoPendingApproval,
    PeerUnavailable,
    RayAgentsError,
    StoreError,
    UnknownAgentError,
    UserError,
    remote_cause,
)

__all__ = ["ApiError", "api_error", "error_response", "install_error_handlers"]

log = logging.getLogger("ray_agents.api")

# Most specific first: the first class an exception is an instance of decides.
_BY_CLASS: tuple[tuple[type[BaseException], ErrorType, float | None], ...] = (
    (ConversationNotFound, "not_found", None),
    (UnknownAgentError, "not_found", None),
    (ConversationBusy, "conversation_busy", 1.0),
    (NoPendingApproval, "no_pending_approval", None),
    (IdempotencyConflict, "idempotency_mismatch", None),
    (DeadlineExceeded, "deadline_exceeded", None),
    (PeerUnavailable, "agent_unavailable", 1.0),
    (StoreError, "agent_unavailable", 1.0),
    (InvalidRequestError, "invalid_request", None),
    (UserError, "invalid_request", None),
    (AgentRunError, "agent_error", None),
)


class ApiError(Exception):
    """An error response: its type (which fixes the status) and a message for the caller."""

    def __init__(
        self,
        type_: ErrorType,
        message: str,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.retry_after_s = retry_after_s
        self.status = status or ERROR_STATUS[type_]


def api_error(exc: BaseException) -> ApiError:
    """The API error an exception from below the API stands for."""
    if isinstance(exc, ApiError):
        return exc
    cause = remote_cause(exc)
    for cls, type_, retry_after in _BY_CLASS:
        if isinstance(cause, cls):
            return ApiError(type_, str(cause), retry_after_s=retry_after)
    return ApiError("internal_error", "internal error; quote the request id when reporting it")


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """The JSON response for ``error``, with Retry-After when it has one."""
    request_id = getattr(request.state, "request_id", "")
    body = ErrorBody(
        error=ErrorDetail(type=error.type, message=error.message, request_id=request_id)
    )
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return JSONResponse(body.model_dump(), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through ``error_response``."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        error = api_error(exc)
        if error.type == "internal_error":
            request_id = getattr(request.state, "request_id", "")
            log.error("request %s failed", request_id, exc_info=exc)
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
