"""What the HTTP API sends and receives: plain pydantic values, shared with the SDK.

This module imports pydantic and ``agents.events`` only, so the SDK (which has no
FastAPI, Ray or vLLM) uses the very types the server validates and emits.

Every error response has one shape, ``ErrorBody``::

    {"error": {"type": "not_found", "message": "...", "request_id": "..."}}

``ErrorType`` lists the ``type`` values and the status each comes with.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agents.events import ApprovalRequiredEvent, ErrorEvent, Event, TurnUsage

__all__ = [
    "ERROR_STATUS",
    "MAX_SEQ",
    "AgentInfo",
    "AgentList",
    "ApprovalDecision",
    "Conversation",
    "CreateConversation",
    "ErrorBody",
    "ErrorDetail",
    "ErrorType",
    "MessagesPage",
    "Multitask",
    "SendMessage",
    "TurnResult",
    "UsageReport",
    "UsageRow",
]

_In = ConfigDict(extra="forbid")
_Out = ConfigDict(extra="ignore")  # a newer server may add fields; old clients ignore them

MAX_SEQ = 2**63 - 1
"""The largest event seq (a 64-bit signed integer, as every store keeps it)."""

ErrorType = Literal[
    "invalid_request",
    "authentication_error",
    "not_found",
    "conversation_busy",
    "no_pending_approval",
    "approval_required",
    "idempotency_mismatch",
    "permission_denied",
    "payload_too_large",
    "rate_limit_exceeded",
    "overloaded",
    "agent_unavailable",
    "agent_error",
    "deadline_exceeded",
    "internal_error",
]

ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "authentication_error": 401,
    "not_found": 404,
    "conversation_busy": 409,
    "no_pending_approval": 409,
    "approval_required": 409,
    "idempotency_mismatch": 422,
    "permission_denied": 403,
    "payload_too_large": 413,
    "rate_limit_exceeded": 429,
    "overloaded": 503,
    "agent_unavailable": 503,
    "agent_error": 502,
    "deadline_exceeded": 504,
    "internal_error": 500,
}
"""The HTTP status of each error type. Request validation errors are 400
``invalid_request``; 422 is only ``idempotency_mismatch``, a well-formed request whose
idempotency key an earlier, different request used (as the IETF Idempotency-Key draft
says); ``agent_error`` is a turn that failed inside the agents
(the model kept giving invalid actions, ran out of steps, ...) where the caller wanted a
single answer (``/v1/chat/completions``)."""


class ErrorDetail(BaseModel):
    """What went wrong, and the request id to quote in a bug report."""

    model_config = _Out

    type: str = Field(description="One of ErrorType; clients switch on it.")
    code: str = Field(
        "",
        description=(
            "The exact error: an exception's code (the README's error table), or the type "
            "for the API's own errors. Empty from servers older than this field."
        ),
    )
    message: str = Field(description="What to fix (4xx) or what failed (5xx); no stack traces.")
    request_id: str = Field(description="Also in the X-Request-ID response header.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    model_config = _Out

    error: ErrorDetail


class AgentInfo(BaseModel):
    """An agent of the application."""

    model_config = _Out

    name: str
    description: str
    model: str = Field(description="The pool model the agent generates with.")
    tools: list[str] = Field(default_factory=list, description="Tools the agent may call.")
    handoffs: list[str] = Field(
        default_factory=list, description="Agents it may hand the conversation to."
    )
    asks: list[str] = Field(default_factory=list, description="Agents it may ask questions.")
    default: bool = Field(False, description="Whether new conversations start with it.")


class AgentList(BaseModel):
    """``GET /v1/agents``."""

    model_config = _Out

    object: Literal["list"] = "list"
    data: list[AgentInfo]


class CreateConversation(BaseModel):
    """``POST /v1/conversations``."""

    model_config = _In

    agent: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="The agent that answers first (default: the app's default agent).",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="Up to 16 keys of the caller's own labels, stored with the conversation.",
    )


class Conversation(BaseModel):
    """A conversation's header."""

    model_config = _Out

    id: str
    object: Literal["conversation"] = "conversation"
    agent: str = Field(description="The agent that answers the next message.")
    created_at: datetime
    updated_at: datetime
    last_seq: int = Field(description="Seq of the newest stored event; 0 when empty.")
    metadata: dict[str, str] = Field(default_factory=dict)


VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


Multitask = Literal["reject", "enqueue", "interrupt", "rollback"]
"""The double-texting policies: what a new message does to a turn that still runs."""


class SendMessage(BaseModel):
    """``POST /v1/conversations/{id}/messages``."""

    model_config = _In

    content: str = Field(min_length=1, description="The user's message.")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="A retried send with the same key is stored once and gets the same reply.",
    )
    stream: bool = Field(False, description="Reply with Server-Sent Events of the turn.")
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="The turn's deadline, in seconds from now."
    )
    variables: dict[VariableName, Annotated[str, Field(max_length=4000)]] = Field(
        default_factory=dict,
        max_length=32,
        description=(
            "Values for the placeholders the agent lets a caller set (its "
            "`caller_variables`); at most 32, each up to 4,000 characters."
        ),
    )
    background: bool = Field(
        False,
        description=(
            "Run the turn in the background: the reply is 202 with the turn's id at once; "
            "GET .../turns/{turn_id} gives its status and result, .../turns/{turn_id}/events "
            "its events."
        ),
    )
    multitask: Multitask | None = Field(
        None,
        description=(
            "When another turn of the conversation still runs: 'reject' (409), 'enqueue' "
            "(run after it), 'interrupt' (stop it, keep what it stored) or 'rollback' (stop "
            "it and drop it from the agents' history). Default: the app's `multitask`."
        ),
    )
    webhook: str | None = Field(
        None,
        max_length=2048,
        description=(
            "A URL that gets a POST when the turn ends (retried until it answers 2xx); it "
            "must match the app's `api.webhooks.allow`."
        ),
    )


class ApprovalDecision(BaseModel):
    """``POST /v1/conversations/{id}/approvals/{call_id}``."""

    model_config = _In

    approve: bool = Field(description="Run the paused tool call (true) or refuse it (false).")
    reason: str = Field("", max_length=2000, description="Why; a rejection tells the agent.")
    stream: bool = Field(False, description="Reply with Server-Sent Events of the resumed turn.")


class TurnResult(BaseModel):
    """The JSON reply to a message or an approval: the turn, once it ended (or, for a
    background run, the turn so far: ``status`` 'running')."""

    model_config = _Out

    conversation_id: str
    turn_id: str | None
    status: Literal["running", "ok", "error", "paused", "interrupted"]
    answer: str | None = Field(None, description="The final answer's text, if there is one.")
    output: dict[str, Any] | None = Field(
        None, description="The structured answer, for agents with an output schema."
    )
    agent: str | None = Field(None, description="The agent that answers the next message.")
    pending_approvals: list[ApprovalRequiredEvent] = Field(
        default_factory=list, description="Tool calls that wait for a decision (status paused)."
    )
    error: ErrorEvent | None = Field(None, description="Why the turn failed (status error).")
    usage: TurnUsage = Field(default_factory=TurnUsage)
    events: list[Event] = Field(
        default_factory=list, description="The turn's stored events, in order."
    )


class MessagesPage(BaseModel):
    """``GET /v1/conversations/{id}/messages``: stored events in ``seq`` order."""

    model_config = _Out

    object: Literal["list"] = "list"
    data: list[Event]
    has_more: bool
    next_after: int | None = Field(
        None, description="Pass as ``after`` to get the next page; null on the last page."
    )


class UsageRow(BaseModel):
    """Tokens of one UTC day, agent and model."""

    model_config = _Out

    day: str = Field(description="UTC date, YYYY-MM-DD.")
    agent: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = Field(description="Prompt tokens served from the prefix cache.")
    calls: int = Field(description="Generate calls.")


class UsageReport(BaseModel):
    """``GET /v1/usage``: the caller's tenant's tokens, from the store."""

    model_config = _Out

    object: Literal["usage"] = "usage"
    tenant: str
    start: date
    end: date
    data: list[UsageRow] = Field(description="One row per day, agent and model, in that order.")
    prompt_tokens: int = Field(description="The sum over ``data``.")
    completion_tokens: int = Field(description="The sum over ``data``.")
    calls: int = Field(description="The sum over ``data``.")
