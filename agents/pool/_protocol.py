"""Translate between the generator interface and the OpenAI protocol that Ray Serve LLM
speaks: requests out, SSE strings back in, ErrorResponses into typed exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from agents.errors import (
    EngineError,
    GenerationError,
    InvalidRequestError,
    PromptTooLongError,
    UnknownModelError,
)
from agents.pool.types import (
    Chunk,
    FinishChunk,
    GenerateRequest,
    TextChunk,
    ToolCallChunk,
    Usage,
)


def check_request(request: GenerateRequest) -> None:
    """Reject what the engine would reject, before it costs an engine call."""
    if request.sampling.max_tokens < 1:
        raise InvalidRequestError(
            f"max_tokens must be at least 1, got {request.sampling.max_tokens}"
        )
    if request.sampling.min_tokens > request.sampling.max_tokens:
        raise InvalidRequestError(
            f"min_tokens ({request.sampling.min_tokens}) must not exceed max_tokens "
            f"({request.sampling.max_tokens})"
        )
    if not request.messages:
        raise InvalidRequestError("messages must not be empty")
    if request.json_schema is not None:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(request.json_schema)
        except jsonschema.SchemaError as exc:
            raise InvalidRequestError(f"invalid JSON schema: {exc.message}") from exc


def chat_request_kwargs(request: GenerateRequest) -> dict[str, Any]:
    """The OpenAI chat-completion body for ``request`` (streamed with usage, unless
    ``request.stream`` is False)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [m.model_dump(exclude_none=True) for m in request.messages],
        "temperature": request.sampling.temperature,
        "top_p": request.sampling.top_p,
        "max_tokens": request.sampling.max_tokens,
        "stream": request.stream,
        "request_id": request.request_id,
    }
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    for message in body["messages"]:
        for call in message.get("tool_calls", []):
            call["type"] = "function"
            call["function"] = {"name": call.pop("name"), "arguments": call.pop("arguments")}
    if request.sampling.stop:
        body["stop"] = request.sampling.stop
    if request.sampling.seed is not None:
        body["seed"] = request.sampling.seed
    if request.sampling.min_tokens:
        body["min_tokens"] = request.sampling.min_tokens
    if request.sampling.repetition_penalty is not None:
        body["repetition_penalty"] = request.sampling.repetition_penalty
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
        }
    if request.tools:
        body["tools"] = request.tools
        body["tool_choice"] = request.tool_choice or "auto"
    return body


def error_from_response(error: Any) -> GenerationError:
    """Map a vLLM/Ray ``ErrorResponse`` (or its ``error`` dict) to our exception."""
    info = getattr(error, "error", error)
    if isinstance(info, dict):
        message, code = str(info.get("message", "")), info.get("code")
    else:
        message, code = str(getattr(info, "message", info)), getattr(info, "code", None)
    lowered = message.lower()
    if code == 404 or "does not exist" in lowered:
        return UnknownModelError(message)
    if code == 400 or (code is None and "invalid" in lowered):
        if "context length" in lowered or "max_model_len" in lowered or "too long" in lowered:
            return PromptTooLongError(message)
        return InvalidRequestError(message)
    return EngineError(message or f"engine error (code {code})")


async def parse_stream(items: AsyncIterator[Any]) -> AsyncIterator[list[Chunk]]:
    """Turn the engine's output (lists of SSE strings, or ErrorResponses) into chunks.

    Each yielded list is one batch, so the handle stream carries as few items as the
    engine's batching allows. The last batch ends with a FinishChunk.
    """
    finish_reason = "stop"
    usage = Usage()
    async for item in items:
        batch: list[Chunk] = []
        for piece in item if isinstance(item, list) else [item]:
            if not isinstance(piece, str):
                if getattr(piece, "choices", None) is None:
                    raise error_from_response(piece)
                chunks, finish, whole = _response_chunks(piece)  # a non-streamed reply
                batch.extend(chunks)
                finish_reason, usage = finish or finish_reason, whole or usage
                continue
            for event in _sse_events(piece):
                if "error" in event:
                    raise error_from_response(event["error"])
                if event.get("usage"):
                    usage = _usage(event["usage"])
                for choice in event.get("choices", []):
                    finish_reason = choice.get("finish_reason") or finish_reason
                    batch.extend(_delta_chunks(choice.get("delta", {})))
        if batch:
            yield batch
    yield [FinishChunk(finish_reason=finish_reason, usage=usage)]


async def joined(batches: AsyncIterator[list[Chunk]]) -> AsyncIterator[list[Chunk]]:
    """``batches`` with adjacent text chunks joined into one (fewer objects to send)."""
    async for batch in batches:
        out: list[Chunk] = []
        for chunk in batch:
            last = out[-1] if out else None
            if isinstance(chunk, TextChunk) and isinstance(last, TextChunk):
                out[-1] = TextChunk(text=last.text + chunk.text)
            else:
                out.append(chunk)
        yield out


def _response_chunks(response: Any) -> tuple[list[Chunk], str | None, Usage | None]:
    """A non-streamed ``ChatCompletionResponse``: its chunks, finish reason and usage."""
    chunks: list[Chunk] = []
    finish = None
    for choice in response.choices:
        finish = choice.finish_reason or finish
        message = choice.message
        if message.content:
            chunks.append(TextChunk(text=message.content))
        for index, call in enumerate(message.tool_calls or []):
            chunks.append(
                ToolCallChunk(
                    index=index,
                    id=call.id,
                    name=call.function.name,
                    arguments=call.function.arguments or "",
                )
            )
    raw = response.usage
    usage = _usage(raw.model_dump() if hasattr(raw, "model_dump") else raw) if raw else None
    return chunks, finish, usage


def _sse_events(text: str) -> Iterable[dict[str, Any]]:
    for line in text.splitlines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ").strip()
        if data == "[DONE]":
            continue
        yield json.loads(data)


def _delta_chunks(delta: dict[str, Any]) -> list[Chunk]:
    chunks: list[Chunk] = []
    if delta.get("content"):
        chunks.append(TextChunk(text=delta["content"]))
    for call in delta.get("tool_calls") or []:
        function = call.get("function") or {}
        chunks.append(
            ToolCallChunk(
                index=call.get("index", 0),
                id=call.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        )
    return chunks


def _usage(raw: dict[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=raw.get("prompt_tokens", 0),
        completion_tokens=raw.get("completion_tokens", 0),
        cached_tokens=details.get("cached_tokens") or 0,
    )
