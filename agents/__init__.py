"""ray-agents: multi-agent LLM applications served as Ray Serve deployments.

The top-level package is light (no Ray, vLLM or torch): the SDK imports it on client
machines. Agent definitions, events and errors load eagerly; the runtime (turn loop,
builders, in-process doubles) loads on first use. Subpackages: ``agents.pool`` (the
generator pool, the data plane) and ``agents.store`` (durable conversation state).
"""

from __future__ import annotations

from agents._lazy import lazy_exports
from agents.errors import (
    AgentRunError,
    ConfigError,
    ConversationBusy,
    ConversationNotFound,
    DeadlineExceeded,
    EngineError,
    EngineLost,
    GenerationError,
    HandoffCycleError,
    HopLimitExceeded,
    IdempotencyConflict,
    InvalidActionError,
    InvalidRequestError,
    LeaseLost,
    MaxStepsExceeded,
    ModelSourceError,
    PeerLost,
    PeerUnavailable,
    PromptTooLongError,
    RayAgentsError,
    RunnerLost,
    StoreError,
    TurnLimitExceeded,
    UnknownAgentError,
    UnknownModelError,
    UnknownToolError,
    UserError,
)
from agents.events import (
    AnswerEvent,
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
from agents.protocol import SendRequest
from agents.spec import AgentLimits, AgentSpec, MemoryPolicy

__version__ = "0.1.0"

_LAZY = {
    "AgentLoop": "agents.turn",
    "AgentService": "agents.service",
    "Conversations": "agents.conversations",
    "LocalApp": "agents.testing",
    "ScriptedGenerator": "agents.testing",
    "build_agents_app": "agents.builder",
}

__all__ = [
    "AgentLimits",
    "AgentLoop",
    "AgentRunError",
    "AgentService",
    "AgentSpec",
    "AnswerEvent",
    "AskEvent",
    "ConfigError",
    "ConversationBusy",
    "ConversationNotFound",
    "Conversations",
    "DeadlineExceeded",
    "DoneEvent",
    "EngineError",
    "EngineLost",
    "ErrorEvent",
    "Event",
    "GenerationError",
    "HandoffCycleError",
    "HandoffEvent",
    "HopLimitExceeded",
    "IdempotencyConflict",
    "InvalidActionError",
    "InvalidRequestError",
    "LeaseLost",
    "LocalApp",
    "MaxStepsExceeded",
    "MemoryPolicy",
    "MessageEvent",
    "ModelSourceError",
    "PeerLost",
    "PeerUnavailable",
    "PromptTooLongError",
    "RayAgentsError",
    "RunnerLost",
    "ScriptedGenerator",
    "SendRequest",
    "StoreError",
    "TokenEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TurnLimitExceeded",
    "TurnUsage",
    "UnknownAgentError",
    "UnknownModelError",
    "UnknownToolError",
    "UserError",
    "__version__",
    "build_agents_app",
]


__getattr__ = lazy_exports(__name__, _LAZY)
