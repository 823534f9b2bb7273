"""What an eval run observed: one ``CaseResult`` per case run, one ``TurnRecord`` per
user turn. Plain pydantic values, so the JSON report is their dump."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from agents.events import TurnUsage

__all__ = ["CaseResult", "ToolCallRecord", "TurnRecord"]

_Strict = ConfigDict(extra="forbid")


class ToolCallRecord(BaseModel):
    """A tool call the turn made."""

    model_config = _Strict

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class TurnRecord(BaseModel):
    """One user turn as the API returned it, and the checks it failed."""

    model_config = _Strict

    input: str
    status: str = Field(
        description="ok, error, paused or interrupted; 'request_failed' when the API "
        "call itself failed (then `error_message` says how)."
    )
    error_code: str | None = None
    error_message: str | None = None
    answer: str | None = None
    output: dict[str, Any] | None = None
    route: list[str] = Field(default_factory=list, description="The agents that acted.")
    tools: list[ToolCallRecord] = Field(default_factory=list)
    approvals: int = Field(0, description="Tool calls approved to finish the turn.")
    latency_s: float = Field(0.0, description="From the send to the turn's end.")
    usage: TurnUsage = Field(default_factory=TurnUsage)
    failures: list[str] = Field(default_factory=list, description="Why the checks failed.")


class CaseResult(BaseModel):
    """One run of a case: its conversation and every turn of it."""

    model_config = _Strict

    id: str
    group: str
    run: int = Field(0, description="Which of `--repeat` runs (from 0).")
    conversation_id: str | None = None
    turns: list[TurnRecord] = Field(default_factory=list)
    failures: list[str] = Field(
        default_factory=list,
        description="Every turn's failures, as 'turn N: why' for cases of several turns.",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """Whether every check of every turn held."""
        return not self.failures

    @computed_field  # type: ignore[prop-decorator]
    @property
    def latency_s(self) -> float:
        """The case's turns, end to end."""
        return sum(t.latency_s for t in self.turns)
