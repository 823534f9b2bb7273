"""What an agent's part of a turn records: its span, log fields, metrics and log lines.

    agent.turn (agent, conversation id, turn id, hops)
      ├── generate (model, tokens in and out, cached tokens, time to first chunk)
      ├── tool.call (tool, status)          -> tool.execute in the tool executor
      ├── agent.ask (to_agent)              -> the peer's agent.turn
      └── agent.handoff (to_agent)          -> the peer's agent.turn

The turn's span is the child of ``TurnContext.trace`` (the caller's span, carried
across the DeploymentHandle), and is current only while the turn computes its next
event (``Scope.stream``), never across a ``yield``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry.trace import Span

from agents.events import AskEvent, DoneEvent, ErrorEvent, Event, HandoffEvent, TokenEvent
from agents.observability import metrics as m
from agents.observability.scope import Scope
from agents.observability.tracing import carrier, end_span, start_span
from agents.pool.types import FinishChunk, GenerateRequest
from agents.protocol import TurnContext

__all__ = ["GenerationTelemetry", "TurnTelemetry"]

log = logging.getLogger("ray_agents.turn")


class TurnTelemetry:
    """One agent's part of one turn."""

    def __init__(self, agent: str, ctx: TurnContext) -> None:
        self.agent = agent
        self.span = start_span(
            "agent.turn",
            parent=ctx.trace,
            attributes={
                "ray_agents.agent": agent,
                "ray_agents.conversation_id": ctx.conversation_id,
                "ray_agents.turn_id": ctx.turn_id,
                "ray_agents.hops": ctx.hops,
            },
        )
        self.scope = Scope(
            self.span, agent=agent, conversation_id=ctx.conversation_id, trace_id=ctx.trace_id
        )
        self.steps = 0
        self._started = time.monotonic()
        self._status = "cancelled"  # until an ending event says otherwise
        self._error: str | None = None
        with self.scope.active():
            log.info("agent turn started", extra={"turn_id": ctx.turn_id, "hops": ctx.hops})

    def seen(self, event: Event) -> None:
        """Note an event of this part of the turn (a peer's, after a hand-off, is skipped)."""
        if isinstance(event, TokenEvent) or event.agent != self.agent:
            return
        if isinstance(event, ErrorEvent):
            self._error = event.code
            m.AGENT_ERRORS.inc(agent=self.agent, error_type=event.code)
        elif isinstance(event, HandoffEvent):
            self._status = "handoff"
            m.AGENT_HANDOFFS.inc(agent=self.agent, to_agent=event.to_agent)
        elif isinstance(event, AskEvent):
            m.AGENT_ASKS.inc(agent=self.agent, to_agent=event.to_agent)
        elif isinstance(event, DoneEvent):
            self._status = event.status

    def raised(self, exc: Exception) -> None:
        """The part ended with an exception instead of its ``done`` event."""
        self._status = "error"
        self._error = getattr(exc, "code", type(exc).__name__)
        m.AGENT_ERRORS.inc(agent=self.agent, error_type=self._error)

    def generation(self, request: GenerateRequest) -> GenerationTelemetry:
        """A model step starts: its span, a child of the turn's."""
        self.steps += 1
        return GenerationTelemetry(request, self.span, self.agent)

    def end(self) -> None:
        """Record the part's metrics, write its last log line and end its span."""
        elapsed_ms = (time.monotonic() - self._started) * 1000
        m.AGENT_TURNS.inc(agent=self.agent, status=self._status)
        m.AGENT_TURN_LATENCY.observe(elapsed_ms, agent=self.agent)
        m.AGENT_TURN_STEPS.observe(self.steps, agent=self.agent)
        self.span.set_attribute("ray_agents.status", self._status)
        self.span.set_attribute("ray_agents.steps", self.steps)
        with self.scope.active():
            log.info(
                "agent turn ended",
                extra={"status": self._status, "steps": self.steps, "ms": round(elapsed_ms, 1)},
            )
        end_span(self.span, self._error if self._status == "error" else None)


class GenerationTelemetry:
    """One model step: the ``generate`` span; ``request`` carries it to the pool."""

    def __init__(self, request: GenerateRequest, turn: Span, agent: str) -> None:
        self.span = start_span(
            "generate",
            parent=carrier(turn),
            attributes={"gen_ai.request.model": request.model, "ray_agents.agent": agent},
        )
        self.request = request.model_copy(update={"trace": carrier(self.span)})
        self._started = time.monotonic()
        self._first: float | None = None

    def chunk(self) -> None:
        """A chunk arrived (the first one is the time to first token)."""
        if self._first is None:
            self._first = time.monotonic()
            self.span.add_event("first_chunk")

    def end(self, chunks: list[Any], error: str | None) -> None:
        """Add the step's usage to the span and end it."""
        if self._first is not None:
            ttft = (self._first - self._started) * 1000
            self.span.set_attribute("ray_agents.ttft_ms", round(ttft, 2))
        finish = chunks[-1] if chunks and isinstance(chunks[-1], FinishChunk) else None
        if finish is not None:
            usage = finish.usage
            self.span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "ray_agents.cached_tokens": usage.cached_tokens,
                    "gen_ai.response.finish_reasons": [finish.finish_reason],
                }
            )
        end_span(self.span, error)
