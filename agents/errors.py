"""The exceptions of ray-agents, in one tree, each with its own ``code``.

    RayAgentsError             internal               every error this package raises
    ├── UserError              user_error             a mistake in how it is used
    │   ├── ConfigError        config_error           a bad config file (file, line, field)
    │   ├── ModelSourceError   model_source_error     a model source that cannot be prepared
    │   ├── IdempotencyMismatchError  idempotency_mismatch  a key reused for another request
    │   └── VariableNotAllowedError   variable_not_allowed  a variable the agent keeps
    ├── GenerationError        generation_failed      a generation request failed
    │   ├── InvalidRequestError  invalid_generation_request  the request itself is wrong
    │   │   ├── UnknownModelError   unknown_model     no model with that id in the pool
    │   │   └── PromptTooLongError  prompt_too_long   the prompt does not fit the context
    │   └── EngineError        engine_failed          the engine failed or is unavailable
    │       ├── EngineLostError  engine_lost          its replica died mid-request (retried)
    │       └── EngineUnavailableError  engine_unavailable  an external engine is unreachable
    ├── AgentRunError          agent_error            a turn could not finish
    │   ├── UnknownAgentError      unknown_agent      no agent with that name
    │   ├── UnknownToolError       unknown_tool       no tool with that name
    │   ├── ToolForbiddenError     tool_forbidden     the agent was not granted that tool
    │   ├── InvalidActionError     invalid_action     the model's output is not an action
    │   ├── MaxStepsExceededError  max_steps          the steps ran out without an answer
    │   ├── TurnLimitExceededError token_limit        the turn used its token budget
    │   ├── HopLimitExceededError  hop_limit          too many agent-to-agent hops
    │   ├── HandoffCycleError      handoff_cycle      agents handed the turn back and forth
    │   ├── DeadlineExceededError  deadline_exceeded  the caller's deadline passed
    │   ├── NoPendingApprovalError no_pending_approval  no tool call waits for that decision
    │   ├── RunnerLostError        runner_lost        the turn's runner died; turn closed
    │   ├── PeerUnavailableError   agent_unavailable  another agent could not be reached
    │   │   └── PeerLostError      agent_lost         its replica died mid-turn (resumed)
    │   ├── ToolsUnavailableError  tools_unavailable  the tool deployment could not be reached
    │   │   └── ToolsLostError     tools_lost         its replica died under a call (resumed)
    │   └── RemoteAgentError       remote_agent_error a remote (A2A) agent failed its task
    └── StoreError             store_error            the conversation store failed
        ├── ConversationNotFoundError  conversation_not_found
        ├── ConversationBusyError      conversation_busy  another turn is running
        └── LeaseLostError             lease_lost     a runner wrote after losing its turn

The tools' (``tools.workers``, ``tools.sandbox``): ``ToolFailedError`` tool_error,
``ToolCrashedError`` tool_crashed, ``ToolTimeoutError`` tool_timeout,
``SandboxUnavailableError`` sandbox_unavailable. Every code is unique, and the HTTP
API's one table (``agents.api._errors.ERROR_CODES``) gives each its status and whether
its message may reach a caller (the README lists them); names end in ``Error``.

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
    "BudgetExceededError",
    "ConfigError",
    "ConversationBusyError",
    "ConversationNotFoundError",
    "DeadlineExceededError",
    "EngineError",
    "EngineLostError",
    "EngineUnavailableError",
    "GenerationError",
    "HandoffCycleError",
    "HopLimitExceededError",
    "IdempotencyMismatchError",
    "InvalidActionError",
    "InvalidRequestError",
    "LeaseLostError",
    "MaxStepsExceededError",
    "ModelSourceError",
    "NoPendingApprovalError",
    "PeerLostError",
    "PeerUnavailableError",
    "PromptTooLongError",
    "RayAgentsError",
    "RemoteAgentError",
    "RunnerLostError",
    "StoreError",
    "ToolForbiddenError",
    "ToolsLostError",
    "ToolsUnavailableError",
    "TurnLimitExceededError",
    "UnknownAgentError",
    "UnknownModelError",
    "UnknownToolError",
    "UserError",
    "VariableNotAllowedError",
    "WebhookNotAllowedError",
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

    code = "user_error"


class ConfigError(UserError):
    """A config file failed to load or validate; the message names file, line, field."""

    code = "config_error"


class ModelSourceError(UserError):
    """A model source is unknown, missing, or its package is not installed."""

    code = "model_source_error"


class VariableNotAllowedError(UserError):
    """A message set a variable its agent does not let a caller set."""

    code = "variable_not_allowed"


class WebhookNotAllowedError(UserError):
    """A send named a webhook URL the app's ``api.webhooks.allow`` does not list."""

    code = "webhook_not_allowed"


class IdempotencyMismatchError(UserError):
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


class EngineLostError(EngineError):
    """The replica that ran the generation died; the step can run again elsewhere."""

    code = "engine_lost"
    retryable = True


class EngineUnavailableError(EngineError):
    """An external engine (an OpenAI-compatible server the pool reaches over HTTP) did
    not answer: refused, unreachable or overloaded after every try."""

    code = "engine_unavailable"


class AgentRunError(RayAgentsError):
    """A turn could not finish; it ends with an error event carrying ``code``."""

    code = "agent_error"


class BudgetExceededError(AgentRunError):
    """A token budget (the tenant's daily or monthly, or the conversation's) is spent:
    the turn stops before its next generate call; the API refuses new turns (429)."""

    code = "budget_exceeded"


class UnknownAgentError(AgentRunError):
    """No agent with that name is deployed, or it is not a peer of the caller."""

    code = "unknown_agent"


class UnknownToolError(AgentRunError):
    """No tool with that name is registered."""

    code = "unknown_tool"


class ToolForbiddenError(AgentRunError):
    """The calling agent's definition does not grant the tool it called."""

    code = "tool_forbidden"


class InvalidActionError(AgentRunError):
    """The model's output could not be read as an action (a bad or unknown action)."""

    code = "invalid_action"


class MaxStepsExceededError(AgentRunError):
    """The agent reached its max steps per turn without a final answer."""

    code = "max_steps"


class TurnLimitExceededError(AgentRunError):
    """The turn generated more tokens than the agent's per-turn limit allows."""

    code = "token_limit"


class HopLimitExceededError(AgentRunError):
    """More agent-to-agent hops (hand-offs and asks) in one turn than the limit."""

    code = "hop_limit"


class HandoffCycleError(AgentRunError):
    """The same hand-off (A->B) happened twice in one turn: agents ping-pong."""

    code = "handoff_cycle"


class DeadlineExceededError(AgentRunError):
    """The caller's deadline passed before the turn finished."""

    code = "deadline_exceeded"


class NoPendingApprovalError(AgentRunError):
    """A decision names a tool call that does not wait for approval."""

    code = "no_pending_approval"


class RunnerLostError(AgentRunError):
    """The replica running the turn stopped renewing its lease; the turn was closed."""

    code = "runner_lost"


class PeerUnavailableError(AgentRunError):
    """An agent's deployment could not be reached or died during the call."""

    code = "agent_unavailable"


class PeerLostError(PeerUnavailableError):
    """An agent's replica died during the turn; the turn goes on from the store."""

    code = "agent_lost"
    retryable = True


class ToolsUnavailableError(AgentRunError):
    """The tool deployment could not be reached for the agent's tool definitions."""

    code = "tools_unavailable"


class ToolsLostError(ToolsUnavailableError):
    """The tool deployment's replica died under the call (a node went, say): the turn
    goes on from the store, and the handle reaches a live replica."""

    code = "tools_lost"
    retryable = True


class RemoteAgentError(AgentRunError):
    """A remote agent (another A2A server's) ended its task failed, rejected, canceled
    or waiting for input it cannot get here."""

    code = "remote_agent_error"


class StoreError(RayAgentsError):
    """The conversation store failed or refused an operation."""

    code = "store_error"


class ConversationNotFoundError(StoreError):
    """No conversation with that id."""

    code = "conversation_not_found"


class ConversationBusyError(StoreError):
    """Another turn of this conversation is running; retry after it ends."""

    code = "conversation_busy"


def remote_cause(exc: BaseException) -> BaseException:
    """The exception a replica raised, unwrapped from Ray's wrapper (``RayTaskError``)."""
    cause: BaseException | None = getattr(exc, "cause", None)
    return cause or exc


class LeaseLostError(StoreError):
    """A runner wrote to a turn it no longer holds: the turn ended, or another runner
    took it over after this one stalled past its lease. The write is refused."""

    code = "lease_lost"


# The names from before every exception name ended in "Error", kept so that code
# written against them still imports (not exported; use the new names).
ConversationBusy = ConversationBusyError
ConversationNotFound = ConversationNotFoundError
DeadlineExceeded = DeadlineExceededError
EngineLost = EngineLostError
HopLimitExceeded = HopLimitExceededError
IdempotencyConflict = IdempotencyMismatchError
LeaseLost = LeaseLostError
MaxStepsExceeded = MaxStepsExceededError
NoPendingApproval = NoPendingApprovalError
PeerLost = PeerLostError
PeerUnavailable = PeerUnavailableError
RunnerLost = RunnerLostError
ToolForbidden = ToolForbiddenError
TurnLimitExceeded = TurnLimitExceededError
