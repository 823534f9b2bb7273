"""The ASGI layer under the routes: request ids, and bodies too big to read."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents.api._errors import ApiError, error_response
from agents.observability.logging import bind

__all__ = ["RequestGuard"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class RequestGuard:
    """Gives every request an id (the caller's ``X-Request-ID`` when it sends a sane
    one; bound to the request's log lines) and answers 413 to a body over
    ``max_body_bytes`` before the app reads it.

    ``add_header``: set ``X-Request-ID`` on responses (Ray Serve's proxy already does).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, add_header: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.add_header = add_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if self.add_header and message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("X-Request-ID", request_id)
            await send(message)

        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_id)
                return
        elif scope["method"] in _BODY_METHODS:
            # A chunked body has no length to check: read it (up to the limit) first.
            body, more = b"", True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body_bytes:
                    await self._too_large(scope, receive, send_with_id)
                    return
            receive = _replay(body, receive)
        with bind(request_id=request_id):
            await self.app(scope, receive, send_with_id)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(
            "payload_too_large",
            f"the request body is over the limit of {self.max_body_bytes} bytes",
        )
        await error_response(Request(scope), error)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # the disconnect, when it comes

    return replay
