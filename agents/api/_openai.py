"""The OpenAI-compatible surface: an agent answers as if it were a model.

``POST /v1/chat/completions`` is stateless: the request's messages are the history.
The turn runs in a conversation of its own that holds that history and is deleted
once the turn ends. The agent's own settings decide sampling and tools: sampling
fields of the request (temperature, max_tokens, ...) are accepted and ignored; ``n``
must be 1; tool messages are refused (agents run their own tools).

System and developer messages reach the agent as user-side context (the agent's own
instructions stay its system prompt).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.api._errors import ApiError
from agents.events import AnswerEvent, DoneEvent, ErrorEvent, Event, MessageEvent, TokenEvent

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ChunkWriter",
    "completion",
    "split_history",
]


class TextPart(BaseModel):
    """A text part of a message's content."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of the request's history."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text, parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """``stream_options``."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``; ``model`` is an agent's name."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="The agent that answers.")
    messages: list[ChatMessage] = Field(min_length=1, description="The whole history.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="Only 1: an agent gives one answer.")


def split_history(
    messages: list[ChatMessage], *, max_chars: int, agent: str
) -> tuple[list[Event], str]:
    """The events of the history before the last message, and the last user message."""
    *before, last = messages
    if last.role != "user" or not last.text():
        raise ApiError("invalid_request", "messages: the last message must be a non-empty user one")
    events: list[Event] = []
    for index, message in enumerate(messages):
        text = message.text()
        if len(text) > max_chars:
            raise ApiError(
                "invalid_request",
                f"messages.{index}.content: {len(text)} characters; the limit is {max_chars}",
            )
        if message.role == "tool":
            raise ApiError(
                "invalid_request",
                f"messages.{index}: tool messages are not accepted; agents run their own tools",
            )
    for message in before:
        text = message.text()
        if message.role == "assistant":
            events.append(AnswerEvent(text=text, agent=agent))
        elif message.role == "user":
            events.append(MessageEvent(content=text))
        elif text:
            events.append(MessageEvent(content=f"({message.role} note) {text}"))
    return events, last.text()


def completion(request_id: str, model: str, events: list[Event]) -> dict[str, Any]:
    """The ``chat.completion`` body for a finished turn (raises for a failed one)."""
    done = next((e for e in reversed(events) if isinstance(e, DoneEvent)), None)
    answer, done = _answered(events, done)
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "length" if answer.truncated else "stop",
            }
        ],
        "usage": _usage(done),
    }


class ChunkWriter:
    """Turns a turn's events into ``chat.completion.chunk`` payloads."""

    def __init__(self, request_id: str, model: str, *, include_usage: bool) -> None:
        self._id = f"chatcmpl-{request_id}"
        self._model = model
        self._created = int(time.time())
        self._include_usage = include_usage
        self._sent = ""  # the answer text streamed so far
        self._started = False
        self._events: list[Event] = []

    def chunks(self, event: Event) -> list[dict[str, Any]]:
        """The chunks one event adds (often none)."""
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if isinstance(event, TokenEvent):
            self._sent += event.text
            out.append(self._chunk({"content": event.text}))
            return out
        self._events.append(event)
        if isinstance(event, AnswerEvent) and event.text.startswith(self._sent):
            rest = event.text[len(self._sent) :]
            if rest:  # an agent that does not stream tokens: the whole answer at once
                self._sent = event.text
                out.append(self._chunk({"content": rest}))
        if isinstance(event, DoneEvent):
            answer, _ = _answered(self._events, event)
            finish = "length" if answer.truncated else "stop"
            out.append(self._chunk({}, finish_reason=finish))
            if self._include_usage:
                out.append({**self._chunk({}), "choices": [], "usage": _usage(event)})
        return out

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }


def _answered(events: list[Event], done: DoneEvent | None) -> tuple[AnswerEvent, DoneEvent]:
    """The turn's answer and done event; ``ApiError`` for a turn that did not answer."""
    answer = next((e for e in reversed(events) if isinstance(e, AnswerEvent)), None)
    if done is not None and done.status == "ok" and answer is not None:
        return answer, done
    if done is not None and done.status == "paused":
        raise ApiError(
            "approval_required",
            "the agent wants to run a tool that needs approval; use the conversations API "
            "(POST /v1/conversations) for agents whose tools need approval",
        )
    error = next((e for e in reversed(events) if isinstance(e, ErrorEvent)), None)
    code = error.code if error is not None else "no_answer"
    message = error.message if error is not None else "the turn ended without an answer"
    if code == "deadline_exceeded":
        raise ApiError("deadline_exceeded", message)
    if code in _UNAVAILABLE:  # a replica or engine that could not be reached in time
        raise ApiError("agent_unavailable", f"{code}: {message}", retry_after_s=1)
    raise ApiError("agent_error", f"{code}: {message}")


# Replicas that died or could not be reached: 503, try again. A failed engine is 502.
_UNAVAILABLE = frozenset(
    {
        "agent_unavailable",
        "agent_lost",
        "engine_lost",
        "runner_lost",
        "tools_unavailable",
        "tools_lost",
    }
)


def _usage(done: DoneEvent) -> dict[str, Any]:
    usage = done.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
