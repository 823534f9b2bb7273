"""The action format of schema mode: every model step is one JSON action.

Guided decoding holds the model to ``action_schema``, so even a small model always
writes a valid action::

    {"action": "answer", "text": "..."}            (or "output": {...} with an output schema)
    {"action": "tool", "tool": "lookup", "arguments": {...}}
    {"action": "handoff", "agent": "billing", "message": "..."}
    {"action": "ask", "agent": "research", "question": "..."}

``"action"`` comes first and an answer's ``"text"`` right after it, so ``AnswerStream``
can pass the answer's text on token by token while the JSON is still being written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agents.errors import InvalidActionError
from tools.base import ToolDefinition

__all__ = [
    "Action",
    "AnswerStream",
    "action_schema",
    "describe_actions",
    "parse_action",
]

# Bounds what one agent tells another, so a small model cannot ramble to max_tokens.
PEER_TEXT_MAX_CHARS = 400


@dataclass(frozen=True)
class Action:
    """One parsed step: ``kind`` is answer, tool, handoff or ask."""

    kind: str
    text: str = ""
    output: dict[str, Any] | None = None
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    agent: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class ActionSpace:
    """What an agent may do in one step."""

    tools: list[ToolDefinition]
    handoffs: list[str]
    asks: list[str]
    can_answer: bool = True
    output_schema: dict[str, Any] | None = None
    answer_max_chars: int | None = None


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def action_schema(space: ActionSpace) -> dict[str, Any]:
    """The JSON Schema every step's output must satisfy."""
    variants: list[dict[str, Any]] = []
    if space.can_answer:
        body = (
            {"output": space.output_schema}
            if space.output_schema is not None
            else {"text": _text_schema(space.answer_max_chars)}
        )
        variants.append(_object({"action": {"enum": ["answer"]}, **body}))
    for tool in space.tools:
        variants.append(
            _object(
                {
                    "action": {"enum": ["tool"]},
                    "tool": {"enum": [tool.name]},
                    "arguments": tool.parameters,
                }
            )
        )
    if space.handoffs:
        variants.append(
            _object(
                {
                    "action": {"enum": ["handoff"]},
                    "agent": {"enum": list(space.handoffs)},
                    "message": {"type": "string", "maxLength": PEER_TEXT_MAX_CHARS},
                }
            )
        )
    if space.asks:
        variants.append(
            _object(
                {
                    "action": {"enum": ["ask"]},
                    "agent": {"enum": list(space.asks)},
                    "question": {"type": "string", "maxLength": PEER_TEXT_MAX_CHARS},
                }
            )
        )
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _text_schema(max_chars: int | None) -> dict[str, Any]:
    return {"type": "string"} if max_chars is None else {"type": "string", "maxLength": max_chars}


def describe_actions(space: ActionSpace, peers: dict[str, str]) -> str:
    """The part of the system prompt that explains the actions."""
    lines = ["Reply with exactly one JSON action and nothing else:"]
    if space.can_answer:
        if space.output_schema is not None:
            lines.append(
                '- {"action": "answer", "output": {...}}: answer with the structured result.'
            )
        else:
            lines.append('- {"action": "answer", "text": "..."}: answer the user.')
    for tool in space.tools:
        lines.append(
            f'- {{"action": "tool", "tool": "{tool.name}", "arguments": {{...}}}}: '
            f"{tool.description or 'call this tool'}. Arguments schema: "
            f"{json.dumps(tool.parameters)}"
        )
    for name in space.handoffs:
        lines.append(
            f'- {{"action": "handoff", "agent": "{name}", "message": "..."}}: hand the '
            f"conversation to {name} ({peers.get(name) or 'a peer agent'})."
        )
    for name in space.asks:
        lines.append(
            f'- {{"action": "ask", "agent": "{name}", "question": "..."}}: ask {name} '
            f"({peers.get(name) or 'a peer agent'}) and read its answer."
        )
    return "\n".join(lines)


def parse_action(text: str, space: ActionSpace) -> Action:
    """Read a finished step; raises ``InvalidActionError`` saying what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidActionError(f"the model's step is not JSON ({exc}): {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise InvalidActionError(f"the model's step is not a JSON object: {text[:200]!r}")
    kind = data.get("action")
    if kind == "answer" and space.can_answer:
        if space.output_schema is not None:
            output = data.get("output")
            if not isinstance(output, dict):
                raise InvalidActionError("an answer of this agent needs an 'output' object")
            return Action("answer", text=json.dumps(output), output=output)
        return Action("answer", text=_str(data, "text"))
    if kind == "tool":
        name = _str(data, "tool")
        if name not in {t.name for t in space.tools}:
            raise InvalidActionError(f"the model called tool {name!r}, which it does not have")
        arguments = data.get("arguments", {})
        if not isinstance(arguments, dict):
            raise InvalidActionError(f"tool {name!r}: 'arguments' must be an object")
        return Action("tool", tool=name, arguments=arguments)
    if kind in ("handoff", "ask"):
        allowed = space.handoffs if kind == "handoff" else space.asks
        agent = _str(data, "agent")
        if agent not in allowed:
            raise InvalidActionError(f"the agent may not {kind} to {agent!r}")
        body = _str(data, "message" if kind == "handoff" else "question")
        return Action(kind, agent=agent, text=body)
    raise InvalidActionError(f"unknown or forbidden action {kind!r}")


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise InvalidActionError(f"action field {key!r} must be a string")
    return value


_ANSWER_START = re.compile(r'\s*\{\s*"action"\s*:\s*"answer"\s*,\s*"text"\s*:\s*"')
# An escape that may still be cut off at the end of the buffer.
_PARTIAL_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{0,3})?$")
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


class AnswerStream:
    """Pulls an answer's visible text out of a JSON action while it is written.

    ``feed`` takes the model's raw output piece by piece and returns the answer text
    that became known; it returns "" for any other action.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._start: int | None = None
        self._emitted = 0  # characters of the JSON string body already decoded
        self._closed = False
        self.text = ""

    @property
    def started(self) -> bool:
        """Whether the output is an answer whose text has begun."""
        return self._start is not None

    def feed(self, piece: str) -> str:
        """Add raw output; return newly decodable answer text."""
        self._buffer += piece
        if self._closed:
            return ""
        if self._start is None:
            match = _ANSWER_START.match(self._buffer)
            if match is None:
                return ""
            self._start = match.end()
        body = self._buffer[self._start + self._emitted :]
        end = _string_end(body)
        if end is not None:
            self._closed = True
            body = body[:end]
        else:
            body = body[: len(body) - _held_back(body)]
        if not body:
            return ""
        self._emitted += len(body)
        text = str(json.loads(f'"{body}"'))
        self.text += text
        return text


def _string_end(body: str) -> int | None:
    """Index of the unescaped quote that ends the JSON string, if it arrived."""
    escaped = False
    for i, ch in enumerate(body):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return i
    return None


def _held_back(body: str) -> int:
    """Characters at the end to keep until they can be decoded."""
    cut = len(body)
    match = _PARTIAL_ESCAPE.search(body)
    if match is not None and _backslashes_before(body, match.start()) % 2 == 0:
        cut = match.start()
    # A high surrogate waits for its low half.
    if _HIGH_SURROGATE.search(body[:cut]):
        cut -= 6
    return len(body) - cut


def _backslashes_before(body: str, index: int) -> int:
    count = 0
    while index - count - 1 >= 0 and body[index - count - 1] == "\\":
        count += 1
    return count
