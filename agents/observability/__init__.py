"""Observability across hops: metrics, traces and structured logs of every deployment.

- ``metrics``: every ``ray_agents_*`` metric, recorded through Ray Serve's metrics API
  inside replicas (exported on Ray's Prometheus endpoint), dropped elsewhere.
- ``tracing``: OpenTelemetry spans (off by default; console or OTLP), with the trace
  context carried inside the values that cross DeploymentHandles.
- ``logging``: JSON lines carrying request id, conversation id, agent and trace id.
- ``status``: ``ray-agents status``, a live table of a running app.

``ObservabilitySpec`` configures all three; each deployment calls
``configure_from_env()`` when it starts. The spec loads eagerly (config files use it);
the rest loads on first use.
"""

from __future__ import annotations

from agents._lazy import lazy_exports
from agents.observability.spec import LogsSpec, MetricsSpec, ObservabilitySpec, TracingSpec

_LAZY = {
    "MemoryMetrics": "agents.observability.metrics",
    "Scope": "agents.observability.scope",
    "bind": "agents.observability.logging",
    "configure_from_env": "agents.observability._setup",
    "content": "agents.observability.logging",
    "run_status": "agents.observability.status",
    "setup": "agents.observability._setup",
    "use_metrics": "agents.observability.metrics",
    "use_provider": "agents.observability.tracing",
}

__all__ = [
    "LogsSpec",
    "MemoryMetrics",
    "MetricsSpec",
    "ObservabilitySpec",
    "Scope",
    "TracingSpec",
    "bind",
    "configure_from_env",
    "content",
    "run_status",
    "setup",
    "use_metrics",
    "use_provider",
]

__getattr__ = lazy_exports(__name__, _LAZY)
