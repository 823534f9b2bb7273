"""What a scripted reply is, shared by both test doubles (engine and generator)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import jsonschema

from agents.pool.spec import ScriptRule


def match_rule(rules: Sequence[ScriptRule], last: str) -> ScriptRule | None:
    """The first rule whose ``match`` regex finds ``last``."""
    return next((r for r in rules if re.search(r.match, last)), None)


def reply_pieces(rule: ScriptRule, last: str, max_tokens: int) -> list[Any]:
    """The reply as streamed pieces: words (with their leading space) or one tool call."""
    if rule.tool_call is not None:
        arguments = json.dumps(rule.tool_call.get("arguments", {}))
        return [
            {
                "index": 0,
                "id": "call_0",
                "type": "function",
                "function": {"name": rule.tool_call["name"], "arguments": arguments},
            }
        ]
    text = rule.render(last)
    # Keep whitespace with its word so the pieces join back into the text.
    return re.findall(r"\s*\S+", text)[:max_tokens] or [""]


def schema_mismatch(schema: dict[str, Any] | None, text: str) -> str | None:
    """Why ``text`` does not satisfy ``schema``, or None."""
    if schema is None:
        return None
    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        return str(getattr(exc, "message", exc))
    return None
