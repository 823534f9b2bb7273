"""The exceptions of the Python SDK, in one tree.

    APIError                          every error the SDK raises
    ├── APIConnectionError            the server could not be reached, or the connection broke
    │   └── APITimeoutError           no response (or no stream data) within the timeout
    ├── APIResponseValidationError    the server's reply is not what the API promises
    └── APIStatusError                the server answered with an error status
        ├── BadRequestError           400 invalid_request
        │   ├── PayloadTooLargeError  413 payload_too_large
        │   └── IdempotencyMismatchError  422 idempotency_mismatch: the key was used for
        │                                 another request (a new message needs a new key)
        ├── AuthenticationError       401 authentication_error
        ├── PermissionDeniedError     403 permission_denied: the key lacks the route's scope
        ├── NotFoundError             404 not_found
        ├── ConflictError             409
        │   ├── ConversationBusyError      conversation_busy: another turn is running
        │   ├── NoPendingApprovalError     no_pending_approval: nothing waits for that call
        │   └── ApprovalRequiredError      approval_required: decide the paused call first
        ├── RateLimitError            429 rate_limit_exceeded (``retry_after``)
        ├── InternalServerError       500 internal_error, and any other 5xx
        │   └── AgentError            502 agent_error: the agents failed a one-answer turn
        ├── ServiceUnavailableError   503 (``retry_after``)
        │   ├── OverloadedError       overloaded
        │   └── AgentUnavailableError agent_unavailable
        └── DeadlineExceededError     504 deadline_exceeded

A status error is chosen by the body's ``error.type`` first and by the HTTP status
second, so a reply without an API error body (a proxy's HTML page) still maps cleanly
(its ``type`` is ``"unknown"``). Transport failures are raised ``from`` the httpx error.

A turn that fails while it streams is not an exception: the stream yields its
``ErrorEvent`` and a ``DoneEvent`` with status ``"error"``.
"""

from __future__ import annotations

import email.utils
import json
import math
import time

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentError",
    "AgentUnavailableError",
    "ApprovalRequiredError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ConversationBusyError",
    "DeadlineExceededError",
    "InternalServerError",
    "NoPendingApprovalError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ServiceUnavailableError",
]


class APIError(Exception):
    """Base class of every error the SDK raises.

    ``status_code`` and ``request_id`` are ``None`` when no response came back;
    ``type`` is the API's error type (``"connection_error"``, ``"timeout"`` and
    ``"invalid_response"`` for failures on the client's side).
    """

    def __init__(
        self,
        message: str,
        *,
        type: str,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.status_code = status_code
        self.request_id = request_id


class APIConnectionError(APIError):
    """The request did not get a complete response: no connection, or it broke."""

    def __init__(self, message: str, *, type: str = "connection_error") -> None:
        super().__init__(message, type=type)


class APITimeoutError(APIConnectionError):
    """The server did not answer (or a stream stayed silent) within the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="timeout")


class APIResponseValidationError(APIError):
    """A successful reply whose body is not the documented shape."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, type="invalid_response", status_code=status_code)


class APIStatusError(APIError):
    """The server answered with a 4xx or 5xx status.

    ``code`` is the exact error (the README's error table; the ``type`` when the server
    sent none), ``retry_after`` the ``Retry-After`` header in seconds, when sent.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        type: str,
        status_code: int,
        request_id: str | None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, type=type, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after
        self.code = code or type

    def __str__(self) -> str:
        return f"{self.status_code} {self.type}: {self.message}"


class BadRequestError(APIStatusError):
    """The request is invalid (400): fix it before sending it again."""


class PayloadTooLargeError(BadRequestError):
    """The request body is over the server's limit (413)."""


class IdempotencyMismatchError(BadRequestError):
    """The idempotency key was used before for a different request (422): a retry must
    repeat its request exactly; a new message needs a new key."""


class AuthenticationError(APIStatusError):
    """The API key is missing or wrong (401)."""


class PermissionDeniedError(APIStatusError):
    """The key lacks the scope the route needs (403), e.g. ``approvals`` to decide on
    a paused tool call."""


class NotFoundError(APIStatusError):
    """No such agent or conversation (404)."""


class ConflictError(APIStatusError):
    """The request conflicts with the conversation's state (409)."""


class ConversationBusyError(ConflictError):
    """Another turn of the conversation is running."""


class NoPendingApprovalError(ConflictError):
    """No tool call of the conversation waits for that decision."""


class ApprovalRequiredError(ConflictError):
    """The conversation is paused on a tool call: approve or reject it first."""


class RateLimitError(APIStatusError):
    """Too many requests (429); wait ``retry_after`` seconds."""


class InternalServerError(APIStatusError):
    """The server failed (500, or a 5xx without a more specific class)."""


class AgentError(InternalServerError):
    """The agents failed a turn whose caller wanted one answer (502, chat completions)."""


class ServiceUnavailableError(APIStatusError):
    """The server cannot take the request now (503); wait ``retry_after`` seconds."""


class OverloadedError(ServiceUnavailableError):
    """The server sheds load: every replica is at its limit."""


class AgentUnavailableError(ServiceUnavailableError):
    """The agent's deployment cannot be reached."""


class DeadlineExceededError(APIStatusError):
    """The turn's deadline passed before it finished (504)."""


_BY_TYPE: dict[str, type[APIStatusError]] = {
    "invalid_request": BadRequestError,
    "payload_too_large": PayloadTooLargeError,
    "idempotency_mismatch": IdempotencyMismatchError,
    "authentication_error": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "not_found": NotFoundError,
    "conversation_busy": ConversationBusyError,
    "no_pending_approval": NoPendingApprovalError,
    "approval_required": ApprovalRequiredError,
    "rate_limit_exceeded": RateLimitError,
    "internal_error": InternalServerError,
    "agent_error": AgentError,
    "overloaded": OverloadedError,
    "agent_unavailable": AgentUnavailableError,
    "deadline_exceeded": DeadlineExceededError,
}
_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
    504: DeadlineExceededError,
}


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for an error response whose body has been read."""
    type_, message, request_id = "unknown", "", response.headers.get("x-request-id")
    code = None
    try:
        error = json.loads(response.content)["error"]
        type_, message = str(error["type"]), str(error["message"])
        request_id = error.get("request_id") or request_id
        code = str(error.get("code") or "") or None
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:500] or response.reason_phrase
    cls = _BY_TYPE.get(type_) or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(
        message,
        type=type_,
        status_code=response.status_code,
        request_id=request_id,
        retry_after=retry_after(response.headers.get("retry-after")),
        code=code,
    )


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def transport_error(exc: httpx.TransportError) -> APIConnectionError:
    """The SDK error for an httpx transport failure (raise it ``from exc``)."""
    detail = str(exc) or type(exc).__name__
    try:
        where = f"{exc.request.method} {exc.request.url}"
    except RuntimeError:  # raised outside a request
        where = "request"
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{where} timed out: {detail}")
    return APIConnectionError(f"{where} failed: {detail}")
