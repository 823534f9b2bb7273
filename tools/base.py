"""The tool interface: a named call with JSON arguments in, a result or a readable error out."""

from __future__ import annotations

import abc
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ToolCallRequest", "ToolDefinition", "ToolExecutor", "ToolResult"]

_Strict = ConfigDict(extra="forbid", frozen=True)


class ToolDefinition(BaseModel):
    """What a model sees of a tool."""

    model_config = _Strict

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments object.",
    )
    requires_approval: bool = Field(False, description="A person approves each call first.")


class ToolCallRequest(BaseModel):
    """One call of a tool, with who made it (for limits, approvals and traces)."""

    model_config = _Strict

    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    conversation_id: str | None = None
    agent: str | None = None
    trace_id: str | None = None
    trace: dict[str, str] = Field(
        default_factory=dict,
        description="The caller's span as W3C trace context ('traceparent'); empty untraced.",
    )
    deadline: float | None = Field(None, description="Epoch seconds the caller waits until.")
    approved: bool = Field(
        False, description="A person approved this call (tools that require approval)."
    )


class ToolResult(BaseModel):
    """A tool's output. Failures are results too (``is_error``), so the agent can react."""

    model_config = _Strict

    call_id: str
    name: str
    content: str
    is_error: bool = False
    error_type: str | None = Field(
        None, description="For errors: what went wrong (e.g. 'timeout', 'invalid_arguments')."
    )


class ToolExecutor(abc.ABC):
    """Runs tool calls. Implementations never raise for a failing tool: they return an
    error result the agent reads."""

    @abc.abstractmethod
    async def definitions(self, names: list[str]) -> list[ToolDefinition]:
        """The definitions of ``names``; raises ``UnknownToolError`` naming a missing one."""

    @abc.abstractmethod
    async def execute(self, request: ToolCallRequest) -> ToolResult:
        """Run one call and return its result (or an error result)."""
