"""ray-agents: multi-agent LLM applications served as Ray Serve deployments.

The top-level package is light (no Ray, vLLM or torch): the SDK imports it on client
machines. Events and errors load eagerly; agent definitions (and the YAML loader
behind them), the runtime (turn loop, builders, in-process doubles) load on first use,
so ``agents.client`` imports nothing of the server. Subpackages: ``agents.pool`` (the
generator pool, the data plane) and ``agents.store`` (durable conversation state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports
from agents.errors import (
    AgentRunError,
    ConfigError,
    ConversationBusyError,
    ConversationNotFoundError,
    DeadlineExceededError,
    EngineError,
    EngineLostError,
    GenerationError,
    HandoffCycleError,
    HopLimitExceededError,
    IdempotencyMismatchError,
    InvalidActionError,
    InvalidRequestError,
    LeaseLostError,
    MaxStepsExceededError,
    ModelSourceError,
    PeerLostError,
    PeerUnavailableError,
    PromptTooLongError,
    RayAgentsError,
    RemoteAgentError,
    RunnerLostError,
    StoreError,
    ToolsLostError,
    ToolsUnavailableError,
    TurnLimitExceededError,
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

if TYPE_CHECKING:  # what type checkers see of the lazy names (py.typed)
    from agents.builder import build_agents_app
    from agents.conversations import Conversations
    from agents.protocol import SendRequest
    from agents.remote import RemoteAgentSpec
    from agents.service import AgentService
    from agents.spec import AgentLimits, AgentSpec, MemoryPolicy
    from agents.testing import LocalApp, ScriptedGenerator
    from agents.turn import AgentLoop

__version__ = "0.1.0"

_LAZY = {
    "AgentLimits": "agents.spec",
    "AgentSpec": "agents.spec",
    "MemoryPolicy": "agents.spec",
    "SendRequest": "agents.protocol",
    "RemoteAgentSpec": "agents.remote",
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
    "ConversationBusyError",
    "ConversationNotFoundError",
    "Conversations",
    "DeadlineExceededError",
    "DoneEvent",
    "EngineError",
    "EngineLostError",
    "ErrorEvent",
    "Event",
    "GenerationError",
    "HandoffCycleError",
    "HandoffEvent",
    "HopLimitExceededError",
    "IdempotencyMismatchError",
    "InvalidActionError",
    "InvalidRequestError",
    "LeaseLostError",
    "LocalApp",
    "MaxStepsExceededError",
    "MemoryPolicy",
    "MessageEvent",
    "ModelSourceError",
    "PeerLostError",
    "PeerUnavailableError",
    "PromptTooLongError",
    "RayAgentsError",
    "RemoteAgentError",
    "RemoteAgentSpec",
    "RunnerLostError",
    "ScriptedGenerator",
    "SendRequest",
    "StoreError",
    "TokenEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "ToolsLostError",
    "ToolsUnavailableError",
    "TurnLimitExceededError",
    "TurnUsage",
    "UnknownAgentError",
    "UnknownModelError",
    "UnknownToolError",
    "UserError",
    "__version__",
    "build_agents_app",
]


__getattr__ = lazy_exports(__name__, _LAZY)
