"""What a scripted reply is, shared by both test doubles (engine and generator)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

import jsonschema

from agents.pool.spec import ScriptRule


def match_rule(rules: Sequence[ScriptRule], last: str, system: str = "") -> ScriptRule | None:
    """The first rule whose ``match`` regex finds ``last`` (and ``system`` regex, if it
    has one, the request's system prompt)."""
    return next(
        (
            r
            for r in rules
            if re.search(r.match, last) and (r.system is None or re.search(r.system, system))
        ),
        None,
    )


def reply_pieces(
    rule: ScriptRule,
    last: str,
    max_tokens: int,
    *,
    structured: bool = True,
    router: bool = False,
    decision: bool = False,
) -> tuple[list[Any], str]:
    """The reply as streamed pieces (words with their leading space, or one tool call)
    and its finish reason.

    Like guided decoding, the whole reply satisfies the request's schema (checked by
    the caller on ``rule.render``) and a ``max_tokens`` cut may still break it off.
    """
    if rule.tool_call is not None:
        arguments = json.dumps(rule.tool_call.get("arguments", {}))
        return [
            {
                "index": 0,
                "id": "call_0",
                "type": "function",
                "function": {"name": rule.tool_call["name"], "arguments": arguments},
            }
        ], "tool_calls"
    text = rule.render(last, structured=structured, router=router, decision=decision)
    # Keep whitespace with its word so the pieces join back into the text.
    words = re.findall(r"\s*\S+", text) or [""]
    return words[:max_tokens], "length" if len(words) > max_tokens else "stop"


def decision_step(schema: dict[str, Any] | None) -> bool:
    """Whether ``schema`` is a ``decide_then_act`` decision: the choice alone."""
    return schema is not None and set(schema.get("properties", ())) == {"next"}


def router_schema(schema: dict[str, Any] | None) -> bool:
    """Whether ``schema`` is a router's step: the peer alone, no action name."""
    return schema is not None and set(schema.get("properties", ())) == {"agent"}


def schema_mismatch(schema: dict[str, Any] | None, text: str) -> str | None:
    """Why ``text`` does not satisfy ``schema``, or None."""
    if schema is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return str(exc)
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema)).iter_errors(value))
    return None if error is None else error.message


@functools.lru_cache(maxsize=64)
def _validator(schema: str) -> Any:
    # Checking a schema costs far more than validating against it: do it once per schema.
    parsed = json.loads(schema)
    cls = jsonschema.validators.validator_for(parsed)
    cls.check_schema(parsed)
    return cls(parsed)


def overlap_score(context: str, text: str) -> float:
    """The scripted engines' stand-in for a likelihood: how many of ``text``'s words
    ``context`` holds (case-insensitive), so a test picks a choice by its description."""
    seen = set(re.findall(r"\w+", context.lower()))
    return float(sum(word in seen for word in re.findall(r"\w+", text.lower())))
