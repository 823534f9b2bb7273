"""The events of a conversation: what a turn yields and what the store keeps.

Every event is a plain pydantic value tagged by ``type``, so it crosses
DeploymentHandles and the network unchanged; the HTTP API streams exactly these.
Tokens are streamed but not stored; every other event is appended to the
conversation's log (and gets its ``seq``) before the caller sees it.

Events are strict (``extra="forbid"``) where they are built and stored; the SDK reads
them with ``extra="ignore"``, so a field a newer server adds does not break it.

    message      a user message entered the conversation
    token        a piece of the answer's visible text, as it is generated
    tool_call    the agent called a tool
    tool_result  the tool's result (or its error) came back
    handoff      the conversation's active agent changed
    ask          the agent asked a peer a question (the answer is a tool_result)
    answer       the agent's final answer of the turn
    approval_required  a tool call waits for a person; the turn pauses
    approval     a person approved or rejected that call; it opens the turn that resumes
    error        the turn failed; ``code`` says why
    done         the turn ended (always last), with token usage; a rolled-back turn's
                 done marks the whole turn as out of the agents' history
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "AnswerEvent",
    "ApprovalEvent",
    "ApprovalRequiredEvent",
    "AskEvent",
    "DoneEvent",
    "ErrorEvent",
    "Event",
    "HandoffEvent",
    "MessageEvent",
    "TokenEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TurnUsage",
    "event_adapter",
]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int | None = Field(None, description="Position in the conversation's log once stored.")
    turn_id: str | None = Field(None, description="The turn this event belongs to.")
    agent: str | None = Field(None, description="The agent that produced the event.")


class MessageEvent(_Base):
    """A user message, stored before the turn that answers it starts."""

    type: Literal["message"] = "message"
    role: Literal["user"] = "user"
    content: str


class TokenEvent(_Base):
    """A piece of the answer's text (never stored)."""

    type: Literal["token"] = "token"
    text: str


class ToolCallEvent(_Base):
    """The agent called a tool."""

    type: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultEvent(_Base):
    """A tool's result, or an error the agent reads and can act on."""

    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False


class HandoffEvent(_Base):
    """``agent`` handed the conversation to ``to_agent``, which continues the turn."""

    type: Literal["handoff"] = "handoff"
    to_agent: str
    message: str = Field("", description="What the agent told the peer it hands over to.")


class AskEvent(_Base):
    """``agent`` asked ``to_agent`` a question; the answer comes as a tool_result."""

    type: Literal["ask"] = "ask"
    call_id: str
    to_agent: str
    question: str


class AnswerEvent(_Base):
    """The final answer of the turn."""

    type: Literal["answer"] = "answer"
    text: str
    output: dict[str, Any] | None = Field(
        None, description="The structured answer, for agents with an output schema."
    )
    truncated: bool = Field(
        False, description="The model ran out of tokens mid-answer; the text is what it wrote."
    )


class ApprovalRequiredEvent(_Base):
    """A tool call that needs a person's approval; the turn pauses until it comes."""

    type: Literal["approval_required"] = "approval_required"
    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ApprovalEvent(_Base):
    """A person's decision on a pending call; the turn it opens runs (or refuses) it."""

    type: Literal["approval"] = "approval"
    call_id: str
    approved: bool
    reason: str = ""


class ErrorEvent(_Base):
    """The turn failed. ``code`` is stable (e.g. ``hop_limit``, ``deadline_exceeded``)."""

    type: Literal["error"] = "error"
    code: str
    message: str


class TurnUsage(BaseModel):
    """Tokens and steps a turn used, over every agent it passed through."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    steps: int = 0
    hops: int = 0


class DoneEvent(_Base):
    """The last event of every turn."""

    type: Literal["done"] = "done"
    status: Literal["ok", "error", "paused", "interrupted"] = Field(
        "ok",
        description=(
            "'paused': a tool call waits for approval; 'interrupted': a newer message "
            "stopped the turn (double-texting policy interrupt or rollback)."
        ),
    )
    rolled_back: bool = Field(
        False,
        description=(
            "The turn was rolled back: its events stay in the log, but leave the history "
            "the agents see, and the conversation's active agent is the one it began with."
        ),
    )
    usage: TurnUsage = Field(default_factory=TurnUsage)
    active_agent: str | None = Field(None, description="Who answers the next turn.")
    conversation_id: str | None = Field(None, description="The conversation the turn was in.")
    last_seq: int | None = Field(None, description="The conversation's last stored seq.")
    replicas: dict[str, str] = Field(
        default_factory=dict, description="The replica each agent of the turn ran on."
    )


Event = Annotated[
    MessageEvent
    | TokenEvent
    | ToolCallEvent
    | ToolResultEvent
    | HandoffEvent
    | AskEvent
    | AnswerEvent
    | ApprovalRequiredEvent
    | ApprovalEvent
    | ErrorEvent
    | DoneEvent,
    Field(discriminator="type"),
]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
