"""How an application observes itself, as config: traces, logs and metrics.

``ObservabilitySpec`` travels to every deployment as one environment variable
(``env_vars()``), read back by ``ObservabilitySpec.from_env()`` when a replica starts.
"""

from __future__ import annotations

import os
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ENV_VAR", "LogsSpec", "MetricsSpec", "ObservabilitySpec", "TracingSpec"]

ENV_VAR = "RAY_AGENTS_OBSERVABILITY"
_Strict = ConfigDict(extra="forbid", frozen=True)


class TracingSpec(BaseModel):
    """OpenTelemetry traces: off unless an exporter is chosen."""

    model_config = _Strict

    exporter: Literal["none", "console", "otlp"] = Field(
        "none",
        description=(
            "'none': no spans are recorded; 'console': spans printed to stderr as JSON; "
            "'otlp': spans sent over OTLP/HTTP (protobuf) to `endpoint`."
        ),
    )
    endpoint: str | None = Field(
        None,
        description=(
            "The OTLP/HTTP traces URL, e.g. 'http://collector:4318/v1/traces' (otlp "
            "exporter); unset: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or the OTLP default."
        ),
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded; a call inside a trace follows its caller.",
    )
    service_name: str = Field(
        "ray-agents", min_length=1, description="The `service.name` of every span."
    )


class LogsSpec(BaseModel):
    """The ``ray_agents`` loggers: format, level, and whether contents are logged."""

    model_config = _Strict

    format: Literal["json", "text"] = Field(
        "json",
        description=(
            "'json': one JSON object a line, with request id, conversation id, agent "
            "and trace id; 'text': the same fields in a readable line."
        ),
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="The least severe level written."
    )
    log_content: bool = Field(
        False,
        description=(
            "Add message contents (user messages, answers, tool arguments and results) "
            "to log lines. Off: lines name what happened, never what was said."
        ),
    )


class MetricsSpec(BaseModel):
    """Metrics through Ray's metrics API, exported on Ray's Prometheus endpoint."""

    model_config = _Strict

    enabled: bool = Field(True, description="Record the ray_agents_* metrics.")


class ObservabilitySpec(BaseModel):
    """Traces, logs and metrics of every deployment of an app."""

    model_config = _Strict

    tracing: TracingSpec = Field(default_factory=TracingSpec, description="Spans.")
    logs: LogsSpec = Field(default_factory=LogsSpec, description="Log lines.")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Metrics.")

    @model_validator(mode="after")
    def _endpoint_needs_otlp(self) -> Self:
        if self.tracing.endpoint is not None and self.tracing.exporter != "otlp":
            raise ValueError("tracing.endpoint is only used by the otlp exporter")
        return self

    def env_vars(self) -> dict[str, str]:
        """This spec as the environment variables a deployment's runtime_env carries."""
        return {ENV_VAR: self.model_dump_json()}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ObservabilitySpec:
        """The spec ``env_vars`` encoded, or the defaults when the variable is unset."""
        value = (os.environ if environ is None else environ).get(ENV_VAR)
        return cls() if not value else cls.model_validate_json(value)
