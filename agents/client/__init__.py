"""The Python SDK of a ray-agents application's HTTP API.

    from agents.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as client:
        conv = client.conversations.create(agent="triage")
        for event in conv.stream("Where is my order?"):
            ...
        result = conv.send("Thanks!")          # TurnResult: .status, .answer, .events
        for call in result.pending_approvals:
            conv.approve(call.call_id)         # or reject(); stream_approve() streams

``AsyncClient`` mirrors ``Client`` with ``await`` and ``async for``. Events are the
``agents.events`` types the server emits; the wire types come from ``agents.api.types``.
Errors form one tree under ``APIError`` (see ``agents.client._exceptions``).

This package needs only the base install (httpx, pydantic, tenacity, PyYAML): it
imports neither Ray, vLLM, torch, FastAPI nor LangChain.
"""

from __future__ import annotations

from agents.api.types import (
    AgentInfo,
    Conversation,
    MessagesPage,
    TurnResult,
    UsageReport,
    UsageRow,
)
from agents.client._async import (
    AsyncBackgroundTurn,
    AsyncClient,
    AsyncConversationHandle,
    AsyncEventStream,
)
from agents.client._exceptions import (
    AgentError,
    AgentUnavailableError,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ApprovalRequiredError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConversationBusyError,
    DeadlineExceededError,
    IdempotencyMismatchError,
    InternalServerError,
    NoPendingApprovalError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from agents.client._sync import (
    BackgroundTurn,
    Client,
    ConversationHandle,
    EventStream,
)
from agents.events import (
    AnswerEvent,
    ApprovalEvent,
    ApprovalRequiredEvent,
    AskEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    TurnUsage,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentError",
    "AgentInfo",
    "AgentUnavailableError",
    "AnswerEvent",
    "ApprovalEvent",
    "ApprovalRequiredError",
    "ApprovalRequiredEvent",
    "AskEvent",
    "AsyncBackgroundTurn",
    "AsyncClient",
    "AsyncConversationHandle",
    "AsyncEventStream",
    "AuthenticationError",
    "BackgroundTurn",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Conversation",
    "ConversationBusyError",
    "ConversationHandle",
    "DeadlineExceededError",
    "DoneEvent",
    "ErrorEvent",
    "Event",
    "EventStream",
    "HandoffEvent",
    "IdempotencyMismatchError",
    "InternalServerError",
    "MessageEvent",
    "MessagesPage",
    "NoPendingApprovalError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "TokenEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TurnResult",
    "TurnUsage",
    "UsageReport",
    "UsageRow",
]
