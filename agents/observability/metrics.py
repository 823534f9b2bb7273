"""Every metric of ray-agents, defined once, and where recordings go.

Metrics are recorded through the process's ``Metrics`` backend, chosen at start-up
(``agents.observability.setup``): ``RayMetrics`` inside a Serve replica (Ray Serve's
metrics API; Ray exports them on its Prometheus endpoint with a ``ray_`` prefix, so
``agents_agent_turns`` is scraped as ``ray_agents_agent_turns_total``, with the
``deployment``, ``replica`` and ``application`` tags Serve adds), ``NoMetrics``
elsewhere (a no-op), ``MemoryMetrics`` in tests. Call sites record once per turn,
step, call or request, never per token.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ALL",
    "MemoryMetrics",
    "Metric",
    "Metrics",
    "NoMetrics",
    "RayMetrics",
    "current_metrics",
    "install_metrics",
    "use_metrics",
]

Kind = Literal["counter", "gauge", "histogram"]
# Milliseconds: a tool call or a model's first token (1 ms) up to a long turn (5 min).
LATENCY_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)
STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
log = logging.getLogger("ray_agents.metrics")


@dataclass(frozen=True)
class Metric:
    """One metric: its name (before Ray's ``ray_`` prefix), kind, help and tag keys."""

    name: str
    kind: Kind
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    def inc(self, value: float = 1.0, **tags: str) -> None:
        """Add ``value`` to a counter."""
        current_metrics().record(self, value, tags)

    def observe(self, value: float, **tags: str) -> None:
        """Add one observation to a histogram."""
        current_metrics().record(self, value, tags)

    def set(self, value: float, **tags: str) -> None:
        """Set a gauge."""
        current_metrics().record(self, value, tags)


def _counter(name: str, description: str, *tags: str) -> Metric:
    return Metric(name, "counter", description, tags)


def _histogram(name: str, description: str, boundaries: tuple[float, ...], *tags: str) -> Metric:
    return Metric(name, "histogram", description, tags, boundaries)


# -- agents ------------------------------------------------------------------------
AGENT_TURNS = _counter(
    "agents_agent_turns",
    "Agents' parts of turns, by how they ended (ok, error, paused, handoff, cancelled).",
    "agent",
    "status",
)
AGENT_TURN_LATENCY = _histogram(
    "agents_agent_turn_latency_ms",
    "Milliseconds of an agent's part of a turn (a hand-off's includes the peer's part).",
    LATENCY_MS,
    "agent",
)
AGENT_TURN_STEPS = _histogram(
    "agents_agent_turn_steps", "Model steps an agent took in its part of a turn.", STEPS, "agent"
)
AGENT_HANDOFFS = _counter(
    "agents_agent_handoffs", "Hand-offs from an agent to a peer.", "agent", "to_agent"
)
AGENT_ASKS = _counter("agents_agent_asks", "Questions an agent asked a peer.", "agent", "to_agent")
AGENT_ERRORS = _counter(
    "agents_agent_errors", "Turns an agent ended with an error, by its code.", "agent", "error_type"
)
# -- tools ---------------------------------------------------------------------------
TOOL_CALLS = _counter("agents_tool_calls", "Tool calls, by outcome (ok, error).", "tool", "status")
TOOL_LATENCY = _histogram(
    "agents_tool_latency_ms", "Milliseconds of a tool call, retries included.", LATENCY_MS, "tool"
)
TOOL_TIMEOUTS = _counter("agents_tool_timeouts", "Tool calls that ran past their timeout.", "tool")
TOOL_ERRORS = _counter(
    "agents_tool_errors", "Failed tool calls, by error type.", "tool", "error_type"
)
TOOL_SANDBOX_KILLS = _counter(
    "agents_tool_sandbox_kills",
    "Tool processes killed or dead: a worker or sandbox past its time, or out of a limit.",
    "tool",
)
# -- models --------------------------------------------------------------------------
MODEL_REQUESTS = _counter(
    "agents_model_requests", "Generation requests, by outcome (ok, error).", "model", "status"
)
MODEL_TTFT = _histogram(
    "agents_model_ttft_ms",
    "Milliseconds to a request's first chunk; disaggregated: 'true' if prefilled remotely.",
    LATENCY_MS,
    "model",
    "disaggregated",
)
MODEL_PROMPT_TOKENS = _counter("agents_model_prompt_tokens", "Prompt tokens (in).", "model")
MODEL_COMPLETION_TOKENS = _counter(
    "agents_model_completion_tokens", "Generated tokens (out).", "model"
)
MODEL_CACHED_TOKENS = _counter(
    "agents_model_cached_tokens", "Prompt tokens served from the prefix cache.", "model"
)
MODEL_KV_TRANSFER = _histogram(
    "agents_model_kv_transfer_ms",
    "Disaggregated requests: milliseconds from the prefill replica's reply to the first "
    "decoded chunk (pulling the KV cache, then one decode step).",
    LATENCY_MS,
    "model",
)
# -- API -----------------------------------------------------------------------------
API_REQUESTS = _counter(
    "agents_api_requests", "HTTP requests, by route template, method and status.",
    "route", "method", "status",
)  # fmt: skip
API_LATENCY = _histogram(
    "agents_api_request_latency_ms",
    "Milliseconds of an HTTP request, to the end of its body (streams included).",
    LATENCY_MS,
    "route",
)
API_ACTIVE_STREAMS = Metric(
    "agents_api_active_streams", "gauge", "Server-Sent Event streams open in this replica."
)
API_RATE_LIMITED = _counter(
    "agents_api_rate_limited",
    "Requests refused with 429: 'rate' (requests per minute) or 'streams' (turns per key).",
    "reason",
)
AGENT_TOKENS = _counter(
    "agents_agent_tokens",
    "Tokens an agent's generate calls used, per tenant; kind: prompt or completion.",
    "agent",
    "tenant",
    "kind",
)
API_BACKGROUND_TURNS = _counter(
    "agents_api_background_turns", "Turns started in the background (202).", "agent"
)
TURNS_INTERRUPTED = _counter(
    "agents_turns_interrupted",
    "Running turns a newer message stopped, by policy (interrupt, rollback, cancel).",
    "policy",
)
WEBHOOK_DELIVERIES = _counter(
    "agents_webhook_deliveries",
    "Webhook tries, by outcome: 'delivered', 'retried' (a try got no 2xx), 'failed' (gave up).",
    "outcome",
)

ALL: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric))


class Metrics(abc.ABC):
    """Where a process's metric recordings go."""

    @abc.abstractmethod
    def record(self, metric: Metric, value: float, tags: Mapping[str, str]) -> None:
        """Increment a counter, set a gauge or observe a histogram value."""


class NoMetrics(Metrics):
    """Drops every recording (outside Ray, or with metrics disabled)."""

    def record(self, metric: Metric, value: float, tags: Mapping[str, str]) -> None:
        """Do nothing."""


class MemoryMetrics(Metrics):
    """Keeps recordings in memory, checking each one's tags (tests)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}

    def record(self, metric: Metric, value: float, tags: Mapping[str, str]) -> None:
        """Append ``value`` under the metric and its tags."""
        if set(tags) != set(metric.tags):
            raise ValueError(f"{metric.name}: tags {sorted(tags)}, expected {list(metric.tags)}")
        key = (metric.name, tuple(sorted(tags.items())))
        self.values.setdefault(key, []).append(value)

    def get(self, metric: Metric, **tags: str) -> float:
        """A counter's total (a gauge's last value; a histogram's count)."""
        values = self.values.get((metric.name, tuple(sorted(tags.items()))), [])
        if metric.kind == "counter":
            return sum(values)
        if metric.kind == "gauge":
            return values[-1] if values else 0.0
        return float(len(values))

    def observations(self, metric: Metric, **tags: str) -> list[float]:
        """Every value recorded under the metric and its tags."""
        return list(self.values.get((metric.name, tuple(sorted(tags.items()))), []))


class RayMetrics(Metrics):
    """Ray Serve's metrics API (``ray.serve.metrics``); each metric made on first use.

    Only works in a Ray worker; in a Serve replica Serve adds its own tags. A
    recording that fails is logged (once per metric), never raised: metrics must not
    fail the request they describe.
    """

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def record(self, metric: Metric, value: float, tags: Mapping[str, str]) -> None:
        """Record through the metric's Ray object."""
        if metric.kind == "counter" and value <= 0:
            return  # Ray refuses a zero increment; it would change nothing
        try:
            made = self._made.get(metric.name) or self._make(metric)
            if metric.kind == "counter":
                made.inc(value, dict(tags))
            elif metric.kind == "gauge":
                made.set(value, dict(tags))
            else:
                made.observe(value, dict(tags))
        except Exception:
            if metric.name not in self._failed:
                self._failed.add(metric.name)
                log.warning("could not record metric %s", metric.name, exc_info=True)

    def _make(self, metric: Metric) -> Any:
        from ray.serve import metrics

        with self._lock:
            made = self._made.get(metric.name)
            if made is None:
                tags: Any = metric.tags or None  # Ray types it tuple[str], means tuple[str, ...]
                if metric.kind == "counter":
                    made = metrics.Counter(metric.name, metric.description, tags)
                elif metric.kind == "gauge":
                    made = metrics.Gauge(metric.name, metric.description, tags)
                else:
                    made = metrics.Histogram(
                        metric.name, metric.description, list(metric.boundaries), tags
                    )
                self._made[metric.name] = made
        return made


_current: Metrics = NoMetrics()


def current_metrics() -> Metrics:
    """The process's metrics backend."""
    return _current


def install_metrics(metrics: Metrics) -> Metrics:
    """Make ``metrics`` the process's backend; returns the one it replaces."""
    global _current
    previous, _current = _current, metrics
    return previous


@contextmanager
def use_metrics(metrics: Metrics) -> Iterator[Metrics]:
    """Record into ``metrics`` for the block (tests)."""
    previous = install_metrics(metrics)
    try:
        yield metrics
    finally:
        install_metrics(previous)
