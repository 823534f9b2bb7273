"""Structured log lines: JSON (or text) with the request, conversation, agent and trace.

``bind(conversation_id=..., agent=...)`` adds fields to every ``ray_agents`` log line
written in its block (a context variable, so concurrent turns keep theirs apart);
the current span's trace and span ids are added too. Message contents go into log
lines only through ``content(...)``, which is empty unless ``log_content`` is on.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any

from opentelemetry import trace

from agents.observability.spec import LogsSpec

__all__ = [
    "CONTEXT_FIELDS",
    "ContextFilter",
    "JsonFormatter",
    "bind",
    "configure_logging",
    "content",
    "reset_logging",
]

LOGGER = "ray_agents"
CONTEXT_FIELDS = ("request_id", "conversation_id", "agent", "trace_id", "span_id")
_NONE: Mapping[str, str] = MappingProxyType({})
_fields: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "ray_agents_log_fields", default=_NONE
)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
_log_content = False


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (None ones left out) to the log lines written in the block."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def content(**fields: Any) -> dict[str, Any]:
    """``fields`` as a log record's extras if contents may be logged, else nothing."""
    return fields if _log_content else {}


class ContextFilter(logging.Filter):
    """Adds the process's ``static`` fields (its deployment and replica), the bound
    fields and the current span's ids to each record."""

    def __init__(self, static: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; never drops it."""
        for key, value in self.static.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        fields = dict(_fields.get())
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            fields.setdefault("trace_id", trace.format_trace_id(span.trace_id))
            fields["span_id"] = trace.format_span_id(span.span_id)
        for key in CONTEXT_FIELDS:
            if not hasattr(record, key):
                setattr(record, key, fields.get(key))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """A readable line with the context fields that are set."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as text."""
        base = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_") and v is not None
        ]
        return f"{base} [{' '.join(extras)}]" if extras else base


_handler: logging.Handler | None = None


def configure_logging(
    spec: LogsSpec, stream: IO[str] | None = None, static: Mapping[str, str] | None = None
) -> logging.Handler:
    """Write the ``ray_agents`` loggers' lines to ``stream`` (stderr) as ``spec`` says;
    ``static`` fields (e.g. the replica) go on every line."""
    global _handler, _log_content
    reset_logging()
    handler = logging.StreamHandler(stream or sys.stderr)
    if spec.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ContextFilter(static))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(spec.level)
    logger.propagate = False
    _handler, _log_content = handler, spec.log_content
    return handler


def reset_logging() -> None:
    """Undo ``configure_logging``: the loggers propagate to the root logger again."""
    global _handler, _log_content
    logger = logging.getLogger(LOGGER)
    if _handler is not None:
        logger.removeHandler(_handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    _handler, _log_content = None, False
