"""Server-Sent Events: the lines of a ``text/event-stream`` turned into turn events.

The decoder follows the WHATWG rules: ``event``/``data``/``id``/``retry`` fields, a
single space after the colon dropped, ``data`` lines joined with newlines, comment
lines (``: ping`` heartbeats) ignored, a blank line ends a message, and a trailing
``\\r`` is stripped (httpx's ``iter_lines`` already splits on CRLF, CR and LF, across
chunk boundaries). It only sees lines, so the sync and async clients share it.

An event type this SDK does not know (from a newer server) is skipped, not an error,
and so is a field it does not know in a known event (the server validates events
strictly; readers accept what a newer server adds). A known type whose data does not
validate is an ``APIResponseValidationError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from pydantic import BaseModel, ValidationError

from agents.client._exceptions import APIResponseValidationError
from agents.events import Event, event_adapter

__all__ = ["KNOWN_EVENT_TYPES", "EventDecoder", "SSEDecoder", "ServerSentEvent"]


def _known_types() -> frozenset[str]:
    union = get_args(Event)[0]
    models: tuple[type[BaseModel], ...] = get_args(union)
    return frozenset(str(model.model_fields["type"].default) for model in models)


_KNOWN = KNOWN_EVENT_TYPES = _known_types()


@dataclass(frozen=True)
class ServerSentEvent:
    """One message of an event stream."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feeds on lines, one at a time; returns a message when a blank line ends one."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line break); the finished message, if any."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._last_id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event, "\n".join(data), self._last_id, self._retry)


class EventDecoder:
    """Lines of the stream of a turn in, typed ``agents.events`` events out."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()

    def decode(self, line: str) -> Event | None:
        """Take one line; the event it completes, or ``None``."""
        message = self._sse.decode(line)
        if message is None or (message.event != "message" and message.event not in _KNOWN):
            return None
        try:
            return event_adapter.validate_json(message.data, extra="ignore")
        except ValidationError as exc:
            if any(error["type"] == "union_tag_invalid" for error in exc.errors()):
                return None  # a newer server's event type, sent without an ``event:`` field
            raise APIResponseValidationError(
                f"malformed {message.event!r} event in the stream: {exc}"
            ) from exc
