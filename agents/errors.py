"""The exceptions of ray-agents, in one tree.

    RayAgentsError                 every error this package raises
    ├── UserError                  a developer mistake: fix the code or the config
    │   ├── ConfigError            a bad config file (names file, line and field)
    │   ├── ModelSourceError       a model source that cannot be resolved or prepared
    │   └── IdempotencyConflict    an idempotency key reused for another message (HTTP 422)
    ├── GenerationError            a generation request failed at run time
    │   ├── InvalidRequestError    the request itself is wrong (HTTP 400)
    │   │   ├── UnknownModelError  no model with that id in the pool (HTTP 404)
    │   │   └── PromptTooLongError the prompt does not fit max_model_len (HTTP 400)
    │   └── EngineError            the engine failed or is unavailable (HTTP 503)
    │       └── EngineLost         the engine's replica died mid-request (retried)
    ├── AgentRunError              a turn could not finish; ``code`` names why
    │   ├── UnknownAgentError      no agent with that name (HTTP 404)
    │   ├── UnknownToolError       no tool with that name in the registry
    │   ├── ToolForbidden          the agent was not granted that tool
    │   ├── InvalidActionError     the model's output is not a valid action
    │   ├── MaxStepsExceeded       the agent used its steps without answering
    │   ├── TurnLimitExceeded      the turn used its token budget
    │   ├── HopLimitExceeded       too many agent-to-agent hops in one turn
    │   ├── HandoffCycleError      agents handed the turn back and forth (A->B->A->B)
    │   ├── DeadlineExceeded       the caller's deadline passed (HTTP 504)
    │   ├── NoPendingApproval      no tool call waits for that decision (HTTP 409)
    │   ├── RunnerLost             the turn's runner died; the turn was closed
    │   └── PeerUnavailable        another agent could not be reached (HTTP 503)
    │       └── PeerLost           the agent's replica died mid-turn (the turn is resumed)
    └── StoreError                 the conversation store failed
        ├── ConversationNotFound   no conversation with that id (HTTP 404)
        ├── ConversationBusy       another turn of the conversation is running (HTTP 409)
        └── LeaseLost              a turn's runner writes after another took the turn over

Errors cross DeploymentHandles, so every class pickles with its message alone.
Lower-layer errors (vLLM, Ray) are translated at the pool's boundary and raised
``from`` the original. ``retryable`` marks the failures a turn recovers from by itself
(a replica died; the store holds everything needed to go on): the turn runner resumes
from the stored log instead of failing the turn.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentRunError",
    "ConfigError",
    "ConversationBusy",
    "ConversationNotFound",
    "DeadlineExceeded",
    "EngineError",
    "EngineLost",
    "GenerationError",
    "HandoffCycleError",
    "HopLimitExceeded",
    "IdempotencyConflict",
    "InvalidActionError",
    "InvalidRequestError",
    "LeaseLost",
    "MaxStepsExceeded",
    "ModelSourceError",
    "NoPendingApproval",
    "PeerLost",
    "PeerUnavailable",
    "PromptTooLongError",
    "RayAgentsError",
    "RunnerLost",
    "StoreError",
    "ToolForbidden",
    "TurnLimitExceeded",
    "UnknownAgentError",
    "UnknownModelError",
    "UnknownToolError",
    "UserError",
    "remote_cause",
]


class RayAgentsError(Exception):
    """Base class of every error raised by ray-agents.

    ``code`` is a stable, machine-readable name for the error (used in error events
    and HTTP error bodies).
    """

    code = "internal"
    retryable = False
    """Whether the failure is transient: the work may be resumed from the store."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return (type(self), (self.message,))


class UserError(RayAgentsError):
    """A mistake in how ray-agents is used or configured."""


class ConfigError(UserError):
    """A config file failed to load or validate; the message names file, line, field."""


class ModelSourceError(UserError):
    """A model source is unknown, missing, or its package is not installed."""


class IdempotencyConflict(UserError):
    """A send reused an idempotency key with a different request (message, agent or
    variables): a retry must repeat its request exactly, so this is refused, never
    replayed as the old turn."""

    code = "idempotency_mismatch"


class GenerationError(RayAgentsError):
    """A generation request failed."""

    code = "generation_failed"


class InvalidRequestError(GenerationError):
    """The generation request is invalid (bad parameters or schema)."""

    code = "invalid_generation_request"


class UnknownModelError(InvalidRequestError):
    """The request names a model id that the pool does not serve."""

    code = "unknown_model"


class PromptTooLongError(InvalidRequestError):
    """The prompt plus max_tokens does not fit the model's context length."""

    code = "prompt_too_long"


class EngineError(GenerationError):
    """The engine failed while generating, or no healthy engine is available."""

    code = "engine_failed"


class EngineLost(EngineError):
    """The replica that ran the generation died; the step can run again elsewhere."""

    code = "engine_lost"
    retryable = True


class AgentRunError(RayAgentsError):
    """A turn could not finish; it ends with an error event carrying ``code``."""

    code = "agent_error"


class UnknownAgentError(AgentRunError):
    """No agent with that name is deployed, or it is not a peer of the caller."""

    code = "unknown_agent"


class UnknownToolError(AgentRunError):
    """No tool with that name is registered."""

    code = "unknown_tool"


class ToolForbidden(AgentRunError):
    """The calling agent's definition does not grant the tool it called."""

    code = "tool_forbidden"


class InvalidActionError(AgentRunError):
    """The model's output could not be read as an action (a bad or unknown action)."""

    code = "invalid_action"


class MaxStepsExceeded(AgentRunError):
    """The agent reached its max steps per turn without a final answer."""

    code = "max_steps"


class TurnLimitExceeded(AgentRunError):
    """The turn generated more tokens than the agent's per-turn limit allows."""

    code = "token_limit"


class HopLimitExceeded(AgentRunError):
    """More agent-to-agent hops (hand-offs and asks) in one turn than the limit."""

    code = "hop_limit"


class HandoffCycleError(AgentRunError):
    """The same hand-off (A->B) happened twice in one turn: agents ping-pong."""

    code = "handoff_cycle"


class DeadlineExceeded(AgentRunError):
    """The caller's deadline passed before the turn finished."""

    code = "deadline_exceeded"


class NoPendingApproval(AgentRunError):
    """A decision names a tool call that does not wait for approval."""

    code = "no_pending_approval"


class RunnerLost(AgentRunError):
    """The replica running the turn stopped renewing its lease; the turn was closed."""

    code = "runner_lost"


class PeerUnavailable(AgentRunError):
    """An agent's deployment could not be reached or died during the call."""

    code = "agent_unavailable"


class PeerLost(PeerUnavailable):
    """An agent's replica died during the turn; the turn goes on from the store."""

    code = "agent_lost"
    retryable = True


class StoreError(RayAgentsError):
    """The conversation store failed or refused an operation."""

    code = "store_error"


class ConversationNotFound(StoreError):
    """No conversation with that id."""

    code = "conversation_not_found"


class ConversationBusy(StoreError):
    """Another turn of this conversation is running; retry after it ends."""

    code = "conversation_busy"


def remote_cause(exc: BaseException) -> BaseException:
    """The exception a replica raised, unwrapped from Ray's wrapper (``RayTaskError``)."""
    cause: BaseException | None = getattr(exc, "cause", None)
    return cause or exc


class LeaseLost(StoreError):
    """A runner wrote to a turn it no longer holds: the turn ended, or another runner
    took it over after this one stalled past its lease. The write is refused."""

    code = "lease_lost"
