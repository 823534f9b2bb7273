"""The generator interface's values: a chat request in, a stream of typed chunks out.

These cross DeploymentHandles, so they are plain pydantic models; the chunk union is
tagged by ``type``. Nothing here imports Ray or vLLM.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "Chunk",
    "Completion",
    "FinishChunk",
    "GenerateRequest",
    "Message",
    "RouteInfo",
    "SamplingParams",
    "ScoreRequest",
    "ScoreResult",
    "TextChunk",
    "ToolCall",
    "ToolCallChunk",
    "Usage",
    "collect",
]

_Strict = ConfigDict(extra="forbid")


class ToolCall(BaseModel):
    """An OpenAI-style function call made by the model."""

    model_config = _Strict

    id: str
    name: str
    arguments: str = Field(description="The arguments as a JSON text.")


class Message(BaseModel):
    """One chat message, in OpenAI roles."""

    model_config = _Strict

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class SamplingParams(BaseModel):
    """How to sample. Defaults are greedy-ish and bounded."""

    model_config = _Strict

    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, description="Most tokens to generate (must be >= 1).")
    min_tokens: int = Field(
        0, ge=0, description="Fewest tokens to generate before a stop (benchmarks: equal work)."
    )
    repetition_penalty: float | None = Field(
        None,
        gt=0,
        le=2,
        description=(
            "vLLM's penalty on tokens already in the prompt or output (> 1 discourages "
            "repeats); unset leaves the engine's default (1.0)."
        ),
    )
    stop: list[str] | None = None
    seed: int | None = None


class GenerateRequest(BaseModel):
    """A chat request to the pool."""

    model_config = _Strict

    model: str = Field(description="A model id of the pool.")
    messages: list[Message]
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = Field(
        None, description="Constrain the output to this JSON schema (guided decoding)."
    )
    tools: list[dict[str, Any]] | None = Field(
        None, description="OpenAI-style tool definitions for native tool calling."
    )
    tool_choice: Literal["auto", "none", "required"] | None = None
    session_id: str | None = Field(
        None, description="A conversation id: requests that share it share replicas."
    )
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    stream: bool = Field(
        True,
        description=(
            "Stream the reply as it is generated. False: the whole reply comes in one "
            "batch at the end, and the engine makes no per-token output on the way (for "
            "a caller that shows no tokens; like a non-streaming OpenAI request)."
        ),
    )
    trace: dict[str, str] = Field(
        default_factory=dict,
        description="The caller's span as W3C trace context ('traceparent'); empty untraced.",
    )


class ScoreRequest(BaseModel):
    """How likely the model finds ``text`` after each of ``contexts`` (no generation:
    one prefill each). An agent that decides by likelihood asks this."""

    model_config = _Strict

    model: str = Field(description="A model id of the pool.")
    contexts: list[str] = Field(min_length=1, max_length=64, description="Raw text, no template.")
    text: str = Field(min_length=1, max_length=8000, description="The text scored after each.")
    session_id: str | None = Field(None, description="As in GenerateRequest.")


class ScoreResult(BaseModel):
    """The sum of ``text``'s token log-probabilities after each context, in order."""

    scores: list[float]
    prompt_tokens: int = Field(0, description="Tokens the engine read for all contexts.")


class Usage(BaseModel):
    """Token counts of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = Field(0, description="Prompt tokens served from the prefix cache.")


class RouteInfo(BaseModel):
    """Where the pool ran a request: for tests, benchmarks and traces."""

    disaggregated: bool = Field(description="Whether a prefill replica computed the prompt.")
    decode_replica: str | None = None
    new_tokens_estimate: int | None = Field(
        None, description="Prompt tokens the router expected the decode cache to miss."
    )
    kv_transfer_ms: float | None = Field(
        None,
        description=(
            "Disaggregated: milliseconds from the prefill replica's reply to the first "
            "decoded chunk (the KV transfer, then one decode step)."
        ),
    )


class TextChunk(BaseModel):
    """A piece of generated text."""

    type: Literal["text"] = "text"
    text: str


class ToolCallChunk(BaseModel):
    """A part of a native tool call; ``arguments`` arrive in pieces keyed by index."""

    type: Literal["tool_call"] = "tool_call"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class FinishChunk(BaseModel):
    """The last chunk of every stream."""

    type: Literal["finish"] = "finish"
    finish_reason: str
    usage: Usage
    route: RouteInfo | None = None


Chunk = Annotated[TextChunk | ToolCallChunk | FinishChunk, Field(discriminator="type")]
chunk_adapter: TypeAdapter[Chunk] = TypeAdapter(Chunk)


class Completion(BaseModel):
    """A whole response, gathered from a chunk stream by ``collect``."""

    text: str
    tool_calls: list[ToolCall]
    finish_reason: str
    usage: Usage
    route: RouteInfo | None = None


def collect(chunks: list[Chunk]) -> Completion:
    """Fold a finished chunk stream into a Completion."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish: FinishChunk | None = None
    for chunk in chunks:
        if isinstance(chunk, TextChunk):
            text.append(chunk.text)
        elif isinstance(chunk, ToolCallChunk):
            call = calls.setdefault(chunk.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = chunk.id or call["id"]
            call["name"] = chunk.name or call["name"]
            call["arguments"] += chunk.arguments
        else:
            finish = chunk
    if finish is None:
        raise ValueError("chunk stream ended without a finish chunk")
    return Completion(
        text="".join(text),
        tool_calls=[ToolCall(**calls[i]) for i in sorted(calls)],
        finish_reason=finish.finish_reason,
        usage=finish.usage,
        route=finish.route,
    )
