"""Configure a process's logs, spans and metrics once, from a spec or the environment."""

from __future__ import annotations

from agents.observability.logging import configure_logging
from agents.observability.metrics import NoMetrics, RayMetrics, install_metrics
from agents.observability.spec import ObservabilitySpec
from agents.observability.tracing import configure_tracing

__all__ = ["configure_from_env", "setup"]

_done: ObservabilitySpec | None = None


def setup(spec: ObservabilitySpec) -> None:
    """Set this process's log handler, tracer and metrics backend from ``spec``.

    Metrics go to Ray only inside a Serve replica; elsewhere they are dropped.
    Calling it again with the same spec changes nothing.
    """
    global _done
    if spec == _done:
        return
    replica = _replica()
    static = {
        "deployment": replica.get("ray_agents.deployment", ""),
        "replica": replica.get("service.instance.id", ""),
    }
    configure_logging(spec.logs, static=static if replica else None)
    configure_tracing(spec.tracing, attributes=replica)
    install_metrics(RayMetrics() if spec.metrics.enabled and replica else NoMetrics())
    _done = spec


def configure_from_env() -> ObservabilitySpec:
    """``setup`` with the spec of ``$RAY_AGENTS_OBSERVABILITY`` (the defaults if unset).

    Every deployment calls this first thing in its constructor.
    """
    spec = ObservabilitySpec.from_env()
    setup(spec)
    return spec


def _replica() -> dict[str, str]:
    """This Serve replica's names as resource attributes; empty outside a replica."""
    try:
        from ray import serve
        from ray.serve.exceptions import RayServeException

        context = serve.get_replica_context()
    except (ImportError, RayServeException):
        return {}
    return {
        "service.instance.id": context.replica_id.unique_id,
        "ray_agents.deployment": context.deployment,
        "ray_agents.application": context.app_name,
    }
