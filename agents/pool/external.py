"""External engines: a pool model served by an OpenAI-compatible server that already
runs elsewhere (a vLLM, TGI or SGLang fleet): ``source: openai+http://HOST:PORT/v1``.

No engine starts for such a model. Its pool deployment (``pool-<id>``, the same name
and the same ``generate`` interface as a local engine's, so agents cannot tell the
difference) streams chat completions from the server with httpx:

- structured output goes as the server's ``response_format`` (JSON Schema), tools as
  OpenAI ``tools``; the conversation's session id travels in a header
  (``endpoint.session_header``) for routers that keep a session on one server;
- a request the server did not start answering (refused, reset, timed out connecting,
  502/503/504) is tried again with backoff (tenacity), ``endpoint.attempts`` times in
  all, then fails with ``engine_unavailable``; a reply cut off midway fails with
  ``engine_lost``, which the turn retries (its step runs again);
- the server's 4xx answers map to ``invalid_generation_request``, ``prompt_too_long``
  and ``unknown_model``, as a local engine's do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from agents.errors import (
    EngineError,
    EngineLostError,
    EngineUnavailableError,
    GenerationError,
    UnknownModelError,
)
from agents.pool._protocol import (
    chat_request_kwargs,
    check_request,
    error_from_response,
    joined,
    parse_stream,
)
from agents.pool._telemetry import GenerateTelemetry
from agents.pool.generator import Generator
from agents.pool.spec import ExternalEndpoint, ModelSpec
from agents.pool.types import (
    Chunk,
    FinishChunk,
    GenerateRequest,
    RouteInfo,
    ScoreRequest,
    ScoreResult,
)
from agents.pool.weights import external_url

__all__ = ["ExternalEngine", "ExternalModelServer"]

log = logging.getLogger("ray_agents.pool")

_RETRIED_STATUS = frozenset({502, 503, 504})


class _NotStarted(Exception):
    """The server did not start answering; the request may be sent again."""


class ExternalEngine(Generator):
    """Chat completions of one model from an OpenAI-compatible server, as chunks."""

    def __init__(self, model: ModelSpec, *, http: httpx.AsyncClient | None = None) -> None:
        self.model_id = model.id
        self.url = external_url(model.source)
        self.endpoint = model.endpoint or ExternalEndpoint()
        e = self.endpoint
        timeout = httpx.Timeout(e.timeout_s, connect=e.connect_timeout_s)
        limits = httpx.Limits(max_connections=e.max_connections)
        headers = {}
        if e.api_key_env and os.environ.get(e.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[e.api_key_env]}"
        self._http = http or httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers)
        self._served = e.served_model
        self._served_lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Stream the server's reply; the last chunk is a ``FinishChunk``."""
        async for batch in self.batches(request):
            for chunk in batch:
                yield chunk

    async def batches(self, request: GenerateRequest) -> AsyncIterator[list[Chunk]]:
        """The reply as batches of chunks, one per read from the server."""
        check_request(request)
        if request.model != self.model_id:
            raise UnknownModelError(f"this replica serves {self.model_id!r}, not {request.model!r}")
        body = chat_request_kwargs(request)
        headers = {"X-Request-Id": body.pop("request_id")}
        body["model"] = await self._served_model()
        if self.endpoint.session_header and request.session_id:
            headers[self.endpoint.session_header] = request.session_id
        if not request.stream:
            response = await self._start(body, headers, stream=False)
            yield await _whole_reply(response)
            return
        response = await self._start(body, headers, stream=True)
        try:
            async for batch in parse_stream(_lines(response)):
                yield batch
        except httpx.TransportError as exc:  # cut off midway: the step may run again
            raise EngineLostError(
                f"the external engine broke off its reply ({type(exc).__name__})"
            ) from exc
        finally:
            await response.aclose()

    async def _served_model(self) -> str:
        """The model's name at the server: configured, or the first it lists."""
        if self._served is not None:
            return self._served
        async with self._served_lock:
            if self._served is None:
                response = await self._with_retries(
                    lambda: self._http.send(self._http.build_request("GET", f"{self.url}/models"))
                )
                listed = response.json().get("data") or []
                if not listed:
                    raise EngineError(f"the external engine at {self.url} lists no model")
                self._served = str(listed[0]["id"])
        return self._served

    async def _start(
        self, body: dict[str, Any], headers: dict[str, str], *, stream: bool
    ) -> httpx.Response:
        """Send the request until the server starts answering; its response (open)."""
        request = self._http.build_request(
            "POST", f"{self.url}/chat/completions", json=body, headers=headers
        )
        return await self._with_retries(lambda: self._http.send(request, stream=stream))

    async def _with_retries(self, send: Any) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.endpoint.attempts),
            wait=wait_exponential(multiplier=0.25, max=2.0),
            retry=retry_if_exception_type(_NotStarted),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        response: httpx.Response = await send()
                    except (
                        httpx.ConnectError,
                        httpx.ConnectTimeout,
                        httpx.RemoteProtocolError,
                    ) as exc:
                        raise _NotStarted(type(exc).__name__) from exc
                    except httpx.TimeoutException as exc:
                        raise EngineError(
                            f"the external engine did not answer in {self.endpoint.timeout_s:g} s"
                        ) from exc
                    if response.status_code in _RETRIED_STATUS:
                        await response.aclose()
                        raise _NotStarted(f"HTTP {response.status_code}")
                    if response.is_error:
                        raise await _error(response)
                    return response
        except _NotStarted as exc:
            raise EngineUnavailableError(
                f"the external engine at {self.url} is unavailable ({exc}; "
                f"{self.endpoint.attempts} tries)"
            ) from exc
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    """The SSE text as it arrives, cut at line ends (a piece holds whole lines only)."""
    pending = ""
    async for text in response.aiter_text():
        pending += text
        cut = pending.rfind("\n")
        if cut >= 0:
            yield pending[: cut + 1]
            pending = pending[cut + 1 :]
    if pending:
        yield pending


async def _whole_reply(response: httpx.Response) -> list[Chunk]:
    """A non-streamed reply (``request.stream`` False) as chunks."""
    await response.aread()
    data = response.json()
    # A whole reply has ``message`` where a streamed one has ``delta``.
    for choice in data.get("choices", []):
        delta = choice.pop("message", None) or {}
        for index, call in enumerate(delta.get("tool_calls") or []):
            call.setdefault("index", index)
        choice["delta"] = delta

    async def one() -> AsyncIterator[str]:
        yield "data: " + json.dumps(data) + "\n"

    return [chunk async for batch in parse_stream(one()) for chunk in batch]


async def _error(response: httpx.Response) -> GenerationError:
    """The error a 4xx/5xx answer means, from its JSON body (vLLM's and OpenAI's shapes)."""
    await response.aread()
    try:
        data = response.json()
    except ValueError:
        data = {"message": response.text[:500]}
    info = data.get("error", data) if isinstance(data, dict) else {"message": str(data)}
    if isinstance(info, dict):
        info = {**info, "code": info.get("code") or response.status_code}
        if not isinstance(info["code"], int):
            info["code"] = response.status_code
    else:
        info = {"message": str(info), "code": response.status_code}
    error = error_from_response(info)
    log.warning("the external engine answered %s: %s", response.status_code, error.message)
    return error


class ExternalModelServer:
    """The pool deployment of an external model: ``generate`` like a local engine's
    (``pool-<id>``), over HTTP to the server. Holds no engine: its replicas need no CPU."""

    def __init__(self, model: dict[str, Any]) -> None:
        from agents.observability import configure_from_env

        configure_from_env()
        self._engine = ExternalEngine(ModelSpec.model_validate(model))
        self._running = 0

    def _replica_name(self) -> str:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id

    async def running_requests(self) -> int:
        """Requests this replica is streaming from the server now."""
        return self._running

    async def likelihood(self, request: ScoreRequest) -> ScoreResult:
        """Refused (an OpenAI-compatible server has no scoring route we rely on): an
        agent deciding by likelihood decides by grammar on this model."""
        return await self._engine.likelihood(request)

    async def generate(self, request: GenerateRequest) -> AsyncIterator[list[Chunk]]:
        """Generate a chat reply as batches of chunks; the last chunk is a FinishChunk."""
        replica = self._replica_name()
        telemetry = GenerateTelemetry(request, replica)
        self._running += 1
        try:
            async for batch in joined(self._engine.batches(request)):
                if isinstance(batch[-1], FinishChunk):
                    batch[-1].route = RouteInfo(disaggregated=False, decode_replica=replica)
                telemetry.batch(batch)
                yield batch
        except GenerationError as exc:
            telemetry.error = exc.code
            raise
        finally:
            self._running -= 1
            telemetry.end()
