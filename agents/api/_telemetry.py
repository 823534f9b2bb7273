"""The API's telemetry, outermost ASGI layer: a span, metrics and a log line a request.

The ``api.request`` span continues the client's trace when it sends a W3C
``traceparent`` header, and is current while the app handles the request, so the
turn it runs (and every deployment that turn reaches) joins the same trace.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents.observability import metrics as m
from agents.observability.scope import Scope as LogScope
from agents.observability.tracing import end_span, start_span

__all__ = ["RequestTelemetry"]

log = logging.getLogger("ray_agents.api")


class RequestTelemetry:
    """Traces, counts and logs each HTTP request; counts the open event streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        span = start_span(
            "api.request",
            parent={k: v for k, v in headers.items() if k in ("traceparent", "tracestate")},
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        response: dict[str, Any] = {"status": 500, "stream": False}

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if kind.startswith(b"text/event-stream"):
                    response["stream"] = True
                    self._streams(+1)
            await send(message)

        try:
            with LogScope(span).active():
                await self.app(scope, receive, observed_send)
        finally:
            if response["stream"]:
                self._streams(-1)
            self._finish(scope, span, response["status"], (time.monotonic() - started) * 1000)

    def _streams(self, change: int) -> None:
        self.streams += change
        m.API_ACTIVE_STREAMS.set(self.streams)

    def _finish(self, scope: Scope, span: Any, status: int, elapsed_ms: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        m.API_REQUESTS.inc(route=route, method=scope["method"], status=str(status))
        m.API_LATENCY.observe(elapsed_ms, route=route)
        request_id = scope.get("state", {}).get("request_id")
        conversation_id = scope.get("path_params", {}).get("conversation_id")
        span.set_attributes(
            {"http.route": route, "http.response.status_code": status}
            | ({"ray_agents.request_id": request_id} if request_id else {})
            | ({"ray_agents.conversation_id": conversation_id} if conversation_id else {})
        )
        with LogScope(span, request_id=request_id, conversation_id=conversation_id).active():
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "ms": round(elapsed_ms, 1),
                },
            )
        end_span(span, f"http {status}" if status >= 500 else None)
