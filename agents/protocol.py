"""The values agents send each other through DeploymentHandles.

Every agent-to-agent message carries a ``TurnContext``: the conversation and turn it
belongs to, a trace id (and the caller's span, when traced), how many hops the turn
has taken (and which), and the caller's deadline, so every hop enforces the same
limits.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.api.types import Multitask
from agents.events import ApprovalEvent, ErrorEvent, TurnUsage

__all__ = [
    "Budget",
    "Multitask",
    "TokenBudgets",
    "AskRequest",
    "AskResult",
    "DecisionRequest",
    "SendRequest",
    "TurnContext",
    "TurnRequest",
]

_Strict = ConfigDict(extra="forbid")
DEFAULT_MAX_HOPS = 8


class TokenBudgets(BaseModel):
    """Token budgets (prompt + completion tokens, as the pool counts them); None: no
    limit. Checked before every generate call of a turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_tokens: int | None = Field(None, ge=1, description="Per tenant, per UTC day.")
    monthly_tokens: int | None = Field(None, ge=1, description="Per tenant, per UTC month.")
    conversation_tokens: int | None = Field(
        None, ge=1, description="Per conversation, over its whole life (its asks included)."
    )

    def overridden(self, by: TokenBudgets | None) -> TokenBudgets:
        """These budgets with ``by``'s set fields instead (an API key's own)."""
        if by is None:
            return self
        return self.model_copy(update=by.model_dump(exclude_none=True))

    @property
    def limited(self) -> bool:
        """Whether any budget is set."""
        limits = (self.daily_tokens, self.monthly_tokens, self.conversation_tokens)
        return any(v is not None for v in limits)


class Budget(TokenBudgets):
    """A turn's budgets, with whose tokens they count: its tenant's and its
    conversation's (an ask's sub-conversation counts for the conversation that asked)."""

    tenant: str = Field("", description="The conversation's owner; '' when it has none.")
    conversation_id: str


class TurnContext(BaseModel):
    """What travels with a turn from agent to agent."""

    model_config = _Strict

    conversation_id: str
    turn_id: str
    trace_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    deadline: float | None = Field(None, description="Epoch seconds; every hop stops by then.")
    hops: int = Field(0, ge=0, description="Hand-offs and asks taken so far in this turn.")
    max_hops: int = Field(DEFAULT_MAX_HOPS, ge=0, description="Most hops one turn may take.")
    path: list[str] = Field(
        default_factory=list, description="The hops taken, as 'from->to' edges, in order."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Values for the agents' instruction placeholders."
    )
    trace: dict[str, str] = Field(
        default_factory=dict,
        description="The caller's span as W3C trace context ('traceparent'); empty untraced.",
    )
    tokens: bool = Field(
        True,
        description=(
            "Stream the answers' tokens (token events) as they are generated; False when "
            "the caller reads only the turn's result."
        ),
    )
    runner: str | None = Field(
        None,
        description=(
            "The attempt that holds the turn's lease; every write of the turn is fenced "
            "with it, so a stalled attempt that lost the turn cannot write into it."
        ),
    )
    budget: Budget | None = Field(
        None, description="Whose tokens the turn spends, and the budgets that stop it."
    )

    def hop(self, edge: str) -> TurnContext:
        """The context one hop further along ``edge`` ('a->b')."""
        return self.model_copy(update={"hops": self.hops + 1, "path": [*self.path, edge]})


class TurnRequest(BaseModel):
    """Run (or continue, after a hand-off) a turn on an agent."""

    model_config = _Strict

    context: TurnContext
    after_seq: int = Field(
        description="Everything up to this seq is stored; the agent's history must reach it."
    )
    history: list[dict[str, Any]] | None = Field(
        None,
        description=(
            "The history so far as langchain message dicts, when the caller has it: "
            "saves the agent a store read."
        ),
    )
    resume: ApprovalEvent | None = Field(
        None, description="A decision on the call the turn paused for: run or refuse it first."
    )
    retry: bool = Field(
        False, description="An earlier attempt's replica died: go on from what it stored."
    )


class AskRequest(BaseModel):
    """Ask an agent a question in a sub-conversation of ``context.conversation_id``."""

    model_config = _Strict

    context: TurnContext
    call_id: str = Field(description="The asker's call id; also the sub-conversation's key.")
    asker: str
    question: str


class AskResult(BaseModel):
    """The asked agent's final answer (or the error that ended its turn)."""

    model_config = _Strict

    conversation_id: str = Field(description="The sub-conversation that holds the exchange.")
    text: str = ""
    output: dict[str, Any] | None = None
    error: ErrorEvent | None = None
    usage: TurnUsage = Field(default_factory=TurnUsage)


class DecisionRequest(BaseModel):
    """A person's decision on a tool call that waits for approval."""

    model_config = _Strict

    conversation_id: str
    call_id: str
    approved: bool
    reason: str = Field("", max_length=2000, description="Why; a rejection tells the agent.")
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="The resumed turn's deadline, in seconds from now."
    )
    budgets: TokenBudgets | None = Field(
        None, description="The resumed turn's token budgets (the caller's key's); None: the app's."
    )
    tokens: bool = Field(
        True,
        description=(
            "Stream the answer's tokens as they are generated (token events); False when "
            "the caller reads only the result, which saves a message per token per hop."
        ),
    )


class SendRequest(BaseModel):
    """A user message into a conversation: what the API and SDK send."""

    model_config = _Strict

    message: str = Field(min_length=1, description="The user's message.")
    conversation_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="An existing conversation, or a new id; a fresh one when left out.",
    )
    agent: str | None = Field(
        None, description="The agent that starts a new conversation (default: the app's)."
    )
    idempotency_key: str | None = Field(
        None,
        max_length=256,
        description="A retried send with the same key is stored once and gets the same result.",
    )
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="The turn's deadline, in seconds from now."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Values for instruction placeholders this turn."
    )
    tokens: bool = Field(
        True,
        description=(
            "Stream the answer's tokens as they are generated (token events); False when "
            "the caller reads only the result, which saves a message per token per hop."
        ),
    )
    after_seq: int = Field(
        0,
        ge=0,
        description=(
            "A reconnecting caller's last stored event (SSE Last-Event-ID): a retried "
            "send streams its turn's events after this one only."
        ),
    )
    multitask: Multitask | None = Field(
        None,
        description=(
            "What happens when another turn of the conversation still runs: 'reject' "
            "(ConversationBusyError), 'enqueue' (run after it, in order), 'interrupt' "
            "(stop it, keep what it stored, then run), 'rollback' (stop it and take its "
            "events out of the agents' history). None: the app's default."
        ),
    )
    webhook: str | None = Field(
        None,
        max_length=2048,
        description="A URL told (POST) when the turn ends; the API checks it is allowed.",
    )
    budgets: TokenBudgets | None = Field(
        None, description="The turn's token budgets (the caller's key's); None: the app's."
    )
