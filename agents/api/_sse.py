"""Server-Sent Events framing, and the response that streams a turn."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from agents.events import Event

__all__ = ["HEARTBEAT", "EventStreamResponse", "data_frame", "event_frame"]

log = logging.getLogger("ray_agents.api")

HEARTBEAT = b": ping\n\n"
"""A comment line: keeps idle connections open; SSE clients ignore it."""

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_frame(event: Event) -> bytes:
    """An event as ``event: <type>``, ``id: <seq>`` (once stored) and ``data: <json>``."""
    head = f"event: {event.type}\n" + ("" if event.seq is None else f"id: {event.seq}\n")
    return f"{head}data: {event.model_dump_json()}\n\n".encode()


def data_frame(payload: dict[str, Any] | str) -> bytes:
    """A bare ``data:`` frame (the OpenAI stream format)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that runs ``cleanup`` however it ends.

    A client that goes away before or during the stream cancels the request; the
    cleanup then closes the turn (which stores its end) and frees its limits.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(body, media_type="text/event-stream", headers=_HEADERS)
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the body, then clean up."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()
