"""OpenTelemetry spans: the process's tracer, and trace context in plain dicts.

A turn crosses processes (the API, agents, the pool, the tool executor), each a
separate Serve deployment exporting its own spans. The caller's span context
travels inside the request value as a W3C carrier (``{"traceparent": ...}``, the
``trace`` field of ``TurnContext``, ``GenerateRequest`` and ``ToolCallRequest``);
the callee starts its span as a child of it, so one trace covers the whole turn.

The spans of one turn (deployment in brackets):

    api.request [agents-api]                      route, status; the client's
      └── conversation.turn [agents-api]          traceparent header is its parent
            └── agent.turn [agent-triage]         agent, conversation id, status
                  ├── generate                    model, tokens, time to first chunk
                  │     └── pool.generate [pool-<model>]   replica, disaggregated,
                  │                                        KV transfer time
                  ├── tool.call                   tool, status
                  │     └── tool.execute [tools]
                  ├── agent.ask                   -> agent.turn [agent-<peer>]
                  └── agent.handoff               -> agent.turn [agent-<peer>] ...

Tracing is off until ``configure_tracing`` picks an exporter: the tracer is then
OpenTelemetry's no-op one, and carriers stay empty. The process's tracer provider
is this module's own (not OpenTelemetry's global one), so tests can swap it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents.observability.spec import TracingSpec

__all__ = [
    "carrier",
    "configure_tracing",
    "trace_id_of",
    "end_span",
    "install_provider",
    "start_span",
    "tracer",
    "use_provider",
]

_PROPAGATOR = TraceContextTextMapPropagator()
_NAME = "ray_agents"
_provider: TracerProvider | None = None
_tracer: Tracer = trace.NoOpTracer()


def configure_tracing(spec: TracingSpec, attributes: Mapping[str, str] | None = None) -> None:
    """Set the process's tracer from ``spec``; ``attributes`` join the resource."""
    if spec.exporter == "none":
        install_provider(None)
        return
    processor: SpanProcessor
    if spec.exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=spec.endpoint))
    resource = Resource.create({"service.name": spec.service_name, **(attributes or {})})
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(spec.sample_ratio)), resource=resource
    )
    provider.add_span_processor(processor)
    install_provider(provider)


def install_provider(provider: TracerProvider | None) -> TracerProvider | None:
    """Make ``provider`` the process's (None: tracing off); returns the one replaced.

    The replaced provider is not shut down: its owner decides (tests reuse theirs).
    """
    global _provider, _tracer
    previous, _provider = _provider, provider
    _tracer = provider.get_tracer(_NAME) if provider is not None else trace.NoOpTracer()
    return previous


@contextmanager
def use_provider(provider: TracerProvider) -> Iterator[TracerProvider]:
    """Record spans with ``provider`` for the block (tests: an in-memory exporter)."""
    previous = install_provider(provider)
    try:
        yield provider
    finally:
        provider.force_flush()
        install_provider(previous)


def tracer() -> Tracer:
    """The process's tracer (a no-op one while tracing is off)."""
    return _tracer


def start_span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    """A started span, child of ``parent`` (a carrier) when it holds a context, else of
    the current span. It is not made current: end it with ``end_span``."""
    context = _PROPAGATOR.extract(parent) if parent else None
    return _tracer.start_span(name, context=context, attributes=attributes)


def end_span(span: Span, error: str | None = None) -> None:
    """End ``span``; ``error`` (a code) marks it failed."""
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def carrier(span: Span | None = None) -> dict[str, str]:
    """The W3C trace context of ``span`` (default: the current one), as a dict."""
    out: dict[str, str] = {}
    context: Context | None = trace.set_span_in_context(span) if span is not None else None
    _PROPAGATOR.inject(out, context=context)
    return out


def trace_id_of(span: Span | None = None) -> str | None:
    """``span``'s (default: the current span's) trace id, 32 hex digits; None untraced."""
    context = (span or trace.get_current_span()).get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None
