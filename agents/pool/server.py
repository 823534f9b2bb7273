"""The pool's Serve deployment classes: Ray Serve LLM's servers plus ``generate``.

``PoolServer`` (aggregated) and ``PoolDecodeServer`` (disaggregated) subclass Ray's
``LLMServer`` and ``PDDecodeServer``, so Ray's OpenAI ingress, health checks and KV
transfer orchestration work unchanged. Each adds ``generate``: the generator
interface, our typed request in and typed chunks out, run in the same replica as its
engine (no extra hop). ``PoolDecodeServer`` adds conditional disaggregation: a prompt
whose new (not yet cached) tokens are few is prefilled by the decode engine itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ray import serve
from ray.exceptions import RayActorError
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    TokenizeChatRequest,
)
from ray.llm._internal.serve.core.protocol import RawRequestInfo
from ray.llm._internal.serve.core.server.llm_server import LLMServer
from ray.llm._internal.serve.serving_patterns.prefill_decode.pd_server import (
    PDDecodeServer,
    PDPrefillServer,
)
from ray.serve._private.constants import SERVE_SESSION_ID
from ray.serve._private.http_util import session_id_from_headers

from agents.errors import (
    EngineError,
    EngineLostError,
    GenerationError,
    InvalidRequestError,
    UnknownModelError,
)
from agents.observability import configure_from_env
from agents.pool._protocol import chat_request_kwargs, check_request, joined, parse_stream
from agents.pool._sessions import SessionPrefixes
from agents.pool._telemetry import GenerateTelemetry
from agents.pool.types import (
    Chunk,
    FinishChunk,
    GenerateRequest,
    RouteInfo,
    ScoreRequest,
    ScoreResult,
)

# Keys of LLMConfig.experimental_configs that the builder sets for these classes.
MIN_REMOTE_PREFILL_KEY = "ray_agents_min_remote_prefill_tokens"
CPU_BIND_KEY = "ray_agents_cpu_bind"
_MAX_SESSIONS = 4096
log = logging.getLogger("ray_agents.pool")
# When the running request's remote prefill answered (set around each step of it).
_PREFILLED: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "ray_agents_prefilled", default=None
)


class _Generate:
    """``generate``: the pool's generator interface, mixed into an LLMServer."""

    _llm_config: Any
    chat: Any

    def _replica_name(self) -> str:
        return serve.get_replica_context().replica_id.unique_id

    def _route(self, request: GenerateRequest) -> RouteInfo:
        return RouteInfo(disaggregated=False, decode_replica=self._replica_name())

    def _engine_client(self) -> Any:
        engine: Any = getattr(self, "engine", None)
        return getattr(engine, "_engine_client", None) or engine  # vLLM's AsyncLLM

    async def running_requests(self) -> int:
        """Requests this replica's engine is working on now (its unfinished requests)."""
        count = getattr(self._engine_client(), "get_num_unfinished_requests", None)
        return int(count()) if callable(count) else 0

    async def likelihood(self, request: ScoreRequest) -> ScoreResult:
        """Score ``request.text`` after each context on this replica's engine: one
        prefill each with prompt log-probabilities, computed here (never on a prefill
        replica: a decode engine prefills a request without transfer parameters)."""
        if request.model != self._llm_config.model_id:
            raise UnknownModelError(
                f"this replica serves {self._llm_config.model_id!r}, not {request.model!r}"
            )
        client = self._engine_client()
        scorer = getattr(client, "score_text", None)  # the scripted engine's
        if callable(scorer):
            return ScoreResult(scores=[scorer(c, request.text) for c in request.contexts])
        if not hasattr(client, "get_tokenizer"):
            raise InvalidRequestError("this engine cannot score text")
        try:
            scored = await asyncio.gather(
                *(_prompt_logprob(client, c, request.text) for c in request.contexts)
            )
        except GenerationError:
            raise
        except Exception as exc:
            log.warning("scoring failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            raise EngineError(f"the engine failed to score ({type(exc).__name__})") from exc
        return ScoreResult(
            scores=[score for score, _ in scored], prompt_tokens=sum(n for _, n in scored)
        )

    async def generate(self, request: GenerateRequest) -> AsyncIterator[list[Chunk]]:
        """Generate a chat reply as batches of chunks; the last chunk is a FinishChunk."""
        telemetry = GenerateTelemetry(request, self._replica_name())
        try:
            async for batch in joined(self._generate(request)):
                telemetry.batch(batch)
                yield batch
        except GenerationError as exc:
            telemetry.error = exc.code
            raise
        finally:
            telemetry.end()

    async def _generate(self, request: GenerateRequest) -> AsyncIterator[list[Chunk]]:
        check_request(request)
        if request.model != self._llm_config.model_id:
            raise UnknownModelError(
                f"this replica serves {self._llm_config.model_id!r}, not {request.model!r}"
            )
        try:
            chat_request = ChatCompletionRequest(**chat_request_kwargs(request))
        except (ValidationError, ValueError) as exc:
            raise InvalidRequestError(f"invalid generation request: {exc}") from exc
        # The PD servers read the session from this header to pick the prefill replica.
        session = request.session_id
        headers = {SERVE_SESSION_ID: session} if session else {}
        try:
            stream = await self.chat(chat_request, RawRequestInfo(headers=headers))
            async for batch in parse_stream(stream):
                if isinstance(batch[-1], FinishChunk):
                    batch[-1].route = self._route(request)
                yield batch
        except GenerationError:
            raise
        except RayActorError as exc:  # the prefill replica died under the request
            raise EngineLostError(f"a pool replica died: {type(exc).__name__}") from exc
        except Exception as exc:
            # vLLM's message can name files, hosts or devices: the turn's error event
            # (which the caller reads) gets the exception's kind, the log the whole.
            log.warning("the engine failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            raise EngineError(f"the engine failed ({type(exc).__name__})") from exc


async def _prompt_logprob(client: Any, context: str, text: str) -> tuple[float, int]:
    """The log-probability of ``text``'s tokens after ``context`` (and the tokens read)."""
    from vllm import SamplingParams, TokensPrompt

    tokenizer = client.get_tokenizer()
    head = tokenizer.encode(context, add_special_tokens=False)
    ids = tokenizer.encode(context + text, add_special_tokens=False)
    start = next((i for i, (a, b) in enumerate(zip(head, ids, strict=False)) if a != b), len(head))
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    final: Any = None
    async for output in client.generate(
        TokensPrompt(prompt_token_ids=ids), params, request_id=f"score-{uuid.uuid4().hex}"
    ):
        final = output
    logprobs = final.prompt_logprobs if final is not None else None
    if not logprobs:
        raise EngineError("the engine returned no prompt log-probabilities")
    total = sum(logprobs[i][ids[i]].logprob for i in range(max(start, 1), len(ids)))
    return float(total), len(ids)


def _bind_cpus(llm_config: Any) -> None:
    """Pin this replica's engine threads: entry ``rank`` of the configured bindings.

    Set before the engine starts, so the engine process inherits it.
    """
    binds = llm_config.experimental_configs.get(CPU_BIND_KEY)
    if binds:
        rank = serve.get_replica_context().rank.rank
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = binds[rank % len(binds)]


class PoolServer(_Generate, LLMServer):
    """An aggregated engine replica: prefill and decode in one vLLM engine."""

    async def __init__(self, llm_config: Any, **kwargs: Any) -> None:  # type: ignore[misc]
        configure_from_env()
        _bind_cpus(llm_config)
        await super().__init__(llm_config, **kwargs)


class PoolPrefillServer(PDPrefillServer):
    """A prefill replica: computes prompts' KV caches for the decode replicas."""

    async def __init__(self, llm_config: Any, **kwargs: Any) -> None:  # type: ignore[misc]
        configure_from_env()
        _bind_cpus(llm_config)
        await super().__init__(llm_config, **kwargs)


class PoolDecodeServer(_Generate, PDDecodeServer):
    """A decode replica that sends only long new prompts to the prefill replicas."""

    async def __init__(self, llm_config: Any, **kwargs: Any) -> None:  # type: ignore[misc]
        configure_from_env()
        _bind_cpus(llm_config)
        await super().__init__(llm_config, **kwargs)
        self._min_remote = int(llm_config.experimental_configs.get(MIN_REMOTE_PREFILL_KEY, 0))
        self._prefixes = SessionPrefixes(_MAX_SESSIONS)
        self._tokenizer = _local_tokenizer(llm_config) if self._min_remote > 0 else None
        # Route of each request by id, read by generate(); HTTP requests never read
        # theirs, so the map is bounded.
        self._routes: OrderedDict[str, RouteInfo] = OrderedDict()

    def _route(self, request: GenerateRequest) -> RouteInfo:
        return self._routes.pop(request.request_id, None) or super()._route(request)

    async def _pd_handle_request(  # type: ignore[override]
        self, request: Any, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncIterator[Any]:
        session = session_id_from_headers(raw_request_info.headers) if raw_request_info else None
        ids = await self._prompt_ids(request) if self._min_remote > 0 else []
        new = self._prefixes.new_tokens(session, ids)
        remote = self._min_remote == 0 or new >= self._min_remote
        route = RouteInfo(
            disaggregated=remote,
            decode_replica=self._replica_name(),
            new_tokens_estimate=new if ids else None,
        )
        self._routes[request.request_id] = route
        while len(self._routes) > _MAX_SESSIONS:
            self._routes.popitem(last=False)
        stream: AsyncIterator[Any]
        if remote:
            stream = _timing_prefill(super()._pd_handle_request(request, raw_request_info), route)
        else:
            stream = await LLMServer.chat(self, request, raw_request_info)
        last = None
        async for chunk in stream:
            last = chunk
            yield chunk
        self._prefixes.remember(session, ids, _completion_tokens(last))

    def _get_connector_backend(self) -> Any:
        return _OneTokenPrefill(super()._get_connector_backend())

    def _decode_reuse_ids(self, prefill_chunk: Any) -> Any:
        # Ray's PD flow calls this as soon as the prefill replica answered.
        marks = _PREFILLED.get()
        if marks is not None:
            marks.append(time.monotonic())
        return super()._decode_reuse_ids(prefill_chunk)

    async def _prompt_ids(self, request: Any) -> list[int]:
        if self._tokenizer is not None:
            messages = [dict(m) for m in request.messages]
            # Off the event loop: this replica is streaming other requests' tokens.
            ids = await asyncio.to_thread(
                self._tokenizer.apply_chat_template,
                messages,
                add_generation_prompt=True,
                tokenize=True,
            )
            # transformers 5 returns a BatchEncoding; older versions a plain list.
            return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        # No local checkpoint (the scripted engine): ask the engine.
        tokenize = TokenizeChatRequest(
            model=request.model, messages=request.messages, add_generation_prompt=True
        )
        async for response in await self.tokenize(tokenize):
            tokens = getattr(response, "tokens", None)
            if tokens is None:
                raise InvalidRequestError(f"cannot tokenize the prompt: {response}")
            return list(tokens)
        return []


class _OneTokenPrefill:
    """A KV connector backend whose prefill requests carry no ``min_tokens``.

    Ray cuts the prefill to ``max_tokens=1`` but keeps ``min_tokens``, which vLLM then
    refuses (min_tokens > max_tokens): a request with ``min_tokens`` could not be
    prefilled remotely. The decode request keeps it.
    """

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def prepare_prefill_request(self, *, request: Any, peer: Any) -> Any:
        prefill = self._backend.prepare_prefill_request(request=request, peer=peer)
        if getattr(prefill, "min_tokens", 0):
            prefill.min_tokens = 0
        return prefill


async def _timing_prefill(stream: AsyncIterator[Any], route: RouteInfo) -> AsyncIterator[Any]:
    """``stream``; sets ``route.kv_transfer_ms``: from the prefill's answer to the first
    decoded chunk (the decode engine pulls the KV cache, then decodes one step)."""
    marks: list[float] = []
    try:
        while True:
            token = _PREFILLED.set(marks)
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                return
            finally:
                _PREFILLED.reset(token)
            if marks and route.kv_transfer_ms is None:
                route.kv_transfer_ms = (time.monotonic() - marks[0]) * 1000
            yield chunk
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def _completion_tokens(item: Any) -> int:
    """Completion tokens from the usage in the last item of an engine stream."""
    usage = getattr(item, "usage", None)
    if usage is not None:
        return int(getattr(usage, "completion_tokens", 0) or 0)
    for piece in reversed(item if isinstance(item, list) else [item]):
        if isinstance(piece, str) and '"usage"' in piece:
            for line in piece.splitlines():
                data = line.removeprefix("data: ").strip()
                if data.startswith("{") and '"usage"' in data:
                    return int((json.loads(data).get("usage") or {}).get("completion_tokens", 0))
    return 0


def _local_tokenizer(llm_config: Any) -> Any:
    """The checkpoint's tokenizer, when the model source is a local directory."""
    source = Path(llm_config.model_loading_config.model_source)
    if not (source / "tokenizer_config.json").exists():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)
