"""What one ``generate`` call records in the pool replica: a span, metrics, a log line.

``pool.generate`` is the child of the agent's ``generate`` span (carried in
``GenerateRequest.trace``). Metrics, by model: requests, time to first chunk (tagged
with whether a prefill replica computed the prompt), tokens in, out and from the
prefix cache, and, disaggregated, the KV transfer time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agents.observability import metrics as m
from agents.observability.scope import Scope
from agents.observability.tracing import end_span, start_span
from agents.pool.types import Chunk, FinishChunk, GenerateRequest

__all__ = ["GenerateTelemetry"]

log = logging.getLogger("ray_agents.pool")


class GenerateTelemetry:
    """One request's span and figures, recorded once when it ends."""

    def __init__(self, request: GenerateRequest, replica: str) -> None:
        self.model = request.model
        self.span = start_span(
            "pool.generate",
            parent=request.trace,
            attributes={
                "gen_ai.request.model": request.model,
                "ray_agents.replica": replica,
                "ray_agents.request_id": request.request_id,
            },
        )
        self.scope = Scope(self.span, conversation_id=request.session_id)
        self.error: str | None = "cancelled"  # until the finish chunk arrives
        self._started = time.monotonic()
        self._first: float | None = None
        self._finish: FinishChunk | None = None

    def batch(self, batch: list[Chunk]) -> None:
        """Note a batch of chunks on its way out."""
        if self._first is None:
            self._first = time.monotonic()
        if isinstance(batch[-1], FinishChunk):
            self._finish = batch[-1]
            self.error = None

    def end(self) -> None:
        """Record the request's metrics, write its log line and end its span."""
        status = "ok" if self.error is None else "error"
        m.MODEL_REQUESTS.inc(model=self.model, status=status)
        finish = self._finish
        route = finish.route if finish is not None else None
        figures: dict[str, Any] = {"status": status}
        if self._first is not None:
            ttft = (self._first - self._started) * 1000
            remote = "true" if route is not None and route.disaggregated else "false"
            m.MODEL_TTFT.observe(ttft, model=self.model, disaggregated=remote)
            figures["ttft_ms"] = round(ttft, 2)
        if finish is not None:
            usage = finish.usage
            m.MODEL_PROMPT_TOKENS.inc(usage.prompt_tokens, model=self.model)
            m.MODEL_COMPLETION_TOKENS.inc(usage.completion_tokens, model=self.model)
            m.MODEL_CACHED_TOKENS.inc(usage.cached_tokens, model=self.model)
            figures |= {
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
            }
        if route is not None:
            figures["disaggregated"] = route.disaggregated
            if route.kv_transfer_ms is not None:
                m.MODEL_KV_TRANSFER.observe(route.kv_transfer_ms, model=self.model)
                figures["kv_transfer_ms"] = round(route.kv_transfer_ms, 2)
        self.span.set_attributes(
            {_ATTRIBUTES.get(k, f"ray_agents.{k}"): v for k, v in figures.items()}
        )
        with self.scope.active():
            log.info("generate", extra={"model": self.model, **figures})
        end_span(self.span, self.error)


_ATTRIBUTES = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
}
