"""A scripted engine: a test double that runs inside the real Serve deployments.

``ScriptedEngine`` implements Ray Serve LLM's engine protocol, so the pool's real
``PoolServer`` / ``PoolDecodeServer`` / prefill servers run it through Serve exactly as
they run vLLM (injected with ``engine_cls``). Replies follow rules from the pool spec
(``ModelSpec.scripted``): the first rule whose ``match`` regex finds the last message's
text wins; no rule matching is an error, so a test cannot pass on an unplanned reply.

Tokens are whitespace-separated words. The engine mimics what tests rely on: a prefix
cache (``cached_tokens``), context-length and ``max_tokens`` checks with vLLM's
messages, and the KV hand-off fields of prefill/decode disaggregation.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionResponse,
    ErrorInfo,
    ErrorResponse,
    TokenizeResponse,
)
from ray.llm._internal.serve.core.engine.protocol import LLMEngine

from agents.pool._script import (
    decision_step,
    match_rule,
    overlap_score,
    reply_pieces,
    router_schema,
    schema_mismatch,
)
from agents.pool._sessions import common_prefix_len
from agents.pool.spec import ScriptRule

__all__ = ["ScriptRule", "ScriptedEngine"]


def _words(text: str) -> list[str]:
    return text.split()


def _token_ids(words: list[str]) -> list[int]:
    return [zlib.crc32(w.encode()) & 0xFFFF for w in words]


class _EngineDead(RuntimeError):
    pass


class ScriptedEngine(LLMEngine):  # type: ignore[misc]
    """Ray Serve LLM engine protocol, answered from ``ScriptRule``s.

    The request methods are async generators, as in Ray's own VLLMEngine; the protocol
    annotates them as coroutines, hence the ``override`` ignores.
    """

    SCRIPT_KEY = "ray_agents_script"

    def __init__(self, llm_config: Any) -> None:
        self.llm_config = llm_config
        rules = llm_config.experimental_configs.get(self.SCRIPT_KEY) or []
        self.rules = [ScriptRule.model_validate(r) for r in rules]
        self.max_model_len = int(llm_config.engine_kwargs.get("max_model_len", 4096))
        self._prompts: deque[list[int]] = deque(maxlen=64)
        self._dead = False
        self._streaming = 0
        self.engine_id = f"scripted-{id(self):x}"
        if llm_config.engine_kwargs.get("kv_transfer_config"):
            # What VLLMEngine does: sets up the KV connector backend PD servers need.
            llm_config.setup_engine_backend()

    async def start(self) -> None:
        """Nothing to load."""

    def get_num_unfinished_requests(self) -> int:
        """Replies being streamed now (vLLM's ``AsyncLLM`` has the same method)."""
        return self._streaming

    def routing_stats(self) -> dict[str, Any]:
        """No routing stats."""
        return {}

    async def resolve_lora(self, lora_model: Any) -> None:
        """LoRA is not scripted."""

    async def reset_prefix_cache(self) -> None:
        """Forget every cached prompt."""
        self._prompts.clear()

    async def check_health(self) -> None:
        """Fail once a ``crash`` rule ran, as a dead vLLM engine does."""
        if self._dead:
            raise _EngineDead("scripted engine is dead")

    async def tokenize(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncIterator[Any]:
        """Word tokens of the chat prompt."""
        ids = _token_ids(self._prompt_words(request.messages))
        yield TokenizeResponse(count=len(ids), max_model_len=self.max_model_len, tokens=ids)

    async def chat(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncIterator[Any]:
        """Stream (or return) the reply of the first matching rule."""
        if self._dead:
            raise _EngineDead("scripted engine is dead")
        words = self._prompt_words(request.messages)
        problem = self._check(request, len(words))
        if problem is not None:
            yield problem
            return
        last = _content(request.messages[-1])
        system = next((_content(m) for m in request.messages if _role(m) == "system"), "")
        rule = match_rule(self.rules, last, system)
        if rule is None:
            yield self._error(500, f"scripted engine: no rule matches {last[:80]!r}")
            return
        if rule.error == "crash":
            self._dead = True
        if rule.error is not None:
            raise _EngineDead(f"scripted engine failure ({rule.error})")
        ids = _token_ids(words)
        cached = self._cached(ids)
        kv_in = request.kv_transfer_params or {}
        if kv_in.get("do_remote_decode"):
            self._prompts.append(ids)
            # Prefill side of disaggregation: compute the prompt, hand back the blocks.
            yield ChatCompletionResponse(
                id=request.request_id,
                created=int(time.time()),
                model=request.model,
                choices=[{"index": 0, "message": {"role": "assistant", "content": ""}}],  # type: ignore[list-item]
                usage=self._usage(len(ids), 1, cached),  # type: ignore[arg-type]
                kv_transfer_params={
                    "do_remote_prefill": True,
                    "do_remote_decode": False,
                    "remote_engine_id": self.engine_id,
                    "remote_block_ids": list(range(len(ids) // 16 + 1)),
                    "remote_host": "127.0.0.1",
                    "remote_port": 0,
                },
            )
            return
        max_tokens = request.max_tokens or 16
        structured = getattr(request, "response_format", None) is not None
        router = router_schema(_json_schema(request))
        decision = decision_step(_json_schema(request))
        shape = {"structured": structured, "router": router, "decision": decision}
        pieces, reason = reply_pieces(rule, last, max_tokens, **shape)
        text = rule.render(last, **shape)
        mismatch = None if rule.tool_call else schema_mismatch(_json_schema(request), text)
        if mismatch is not None:
            yield self._error(500, f"scripted reply breaks the requested JSON schema: {mismatch}")
            return
        usage = self._usage(len(ids), len(pieces), cached)
        # Like vLLM, cache the prompt and the reply: the next turn's history shares both.
        reply = "".join(p for p in pieces if isinstance(p, str))
        self._prompts.append(ids + _token_ids(["<assistant>", *_words(reply)]))
        self._streaming += 1
        try:
            for piece in pieces:
                if rule.token_delay_s:  # generating takes as long, streamed or not
                    await asyncio.sleep(rule.token_delay_s)
                if request.stream:
                    delta = (
                        {"content": piece} if isinstance(piece, str) else {"tool_calls": [piece]}
                    )
                    yield _sse(request, {"choices": [{"index": 0, "delta": delta}]})
        finally:  # a cancelled request stops here, as vLLM aborts one
            self._streaming -= 1
        if not request.stream:
            calls = [p for p in pieces if not isinstance(p, str)]
            message = {"role": "assistant", "content": reply or None, "tool_calls": calls}
            yield ChatCompletionResponse(
                id=request.request_id,
                created=int(time.time()),
                model=request.model,
                choices=[{"index": 0, "message": message, "finish_reason": reason}],  # type: ignore[list-item]
                usage=usage,  # type: ignore[arg-type]
            )
            return
        yield _sse(request, {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
        yield _sse(request, {"choices": [], "usage": usage})
        yield "data: [DONE]\n\n"

    async def completions(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncIterator[Any]:
        """Not scripted."""
        yield self._error(400, "the scripted engine answers chat requests only")

    async def embeddings(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncIterator[Any]:
        """Not scripted."""
        yield self._error(400, "the scripted engine answers chat requests only")

    async def transcriptions(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncIterator[Any]:
        """Not scripted."""
        yield self._error(400, "the scripted engine answers chat requests only")

    def score_text(self, context: str, text: str) -> float:
        """A likelihood stand-in for ``likelihood`` requests (see ``overlap_score``)."""
        return overlap_score(context, text)

    def _prompt_words(self, messages: list[Any]) -> list[str]:
        words: list[str] = []
        for message in messages:
            words += [f"<{_field(message, 'role')}>", *_words(_content(message))]
        return words

    def _check(self, request: Any, prompt_tokens: int) -> Any:
        if request.model != self.llm_config.model_id:
            return self._error(404, f"The model `{request.model}` does not exist.")
        if request.max_tokens is not None and request.max_tokens < 1:
            return self._error(400, f"max_tokens must be at least 1, got {request.max_tokens}.")
        min_tokens = getattr(request, "min_tokens", 0) or 0
        if request.max_tokens is not None and min_tokens > request.max_tokens:
            # vLLM's own check, which a prefill clamped to one token must not trip.
            return self._error(
                400,
                f"min_tokens must be less than or equal to max_tokens={request.max_tokens}, "
                f"got {min_tokens}.",
            )
        if prompt_tokens + (request.max_tokens or 0) > self.max_model_len:
            return self._error(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. "
                f"However, you requested {prompt_tokens + (request.max_tokens or 0)} tokens.",
            )
        return None

    def _cached(self, ids: list[int]) -> int:
        return max((common_prefix_len(previous, ids) for previous in self._prompts), default=0)

    @staticmethod
    def _usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }

    @staticmethod
    def _error(code: int, message: str) -> Any:
        kind = {400: "BadRequestError", 404: "NotFoundError"}.get(code, "InternalServerError")
        return ErrorResponse(error=ErrorInfo(message=message, type=kind, code=code))


def _json_schema(request: Any) -> dict[str, Any] | None:
    """The request's JSON schema (OpenAI's ``response_format``), or None."""
    fmt = getattr(request, "response_format", None)
    spec = getattr(fmt, "json_schema", None) if fmt is not None else None
    return getattr(spec, "json_schema", None)


def _field(message: Any, name: str) -> Any:
    return message.get(name) if isinstance(message, dict) else getattr(message, name, None)


def _role(message: Any) -> str:
    return str(_field(message, "role") or "")


def _content(message: Any) -> str:
    content = _field(message, "content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content or ""


def _sse(request: Any, body: dict[str, Any]) -> str:
    body = {
        "id": request.request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.model,
        **body,
    }
    return f"data: {json.dumps(body)}\n\n"
