"""Expectations against what a turn did: each check that fails gives a reason.

What a turn did comes from its stored events: the route is the agent of every event
that an agent produced (an ``ask``'s and a ``handoff``'s peer joins it right after),
a run of one agent counted once; the tool calls are its ``tool_call`` events. An asked
peer's own steps are not among the asker's turn events, so its tool calls are not seen.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from agents.evals._dataset import (
    DEFAULT_TOLERANCE,
    AnswerExpect,
    Expect,
    ToolExpect,
    json_schema_validator,
)
from agents.evals._results import ToolCallRecord, TurnRecord
from agents.events import (
    ApprovalEvent,
    AskEvent,
    DoneEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    TokenEvent,
    ToolCallEvent,
)

__all__ = ["answer_text", "check_answer", "check_turn", "numbers_in", "route_of", "tools_of"]

# A number not inside a word or another number: "1,234", "-5", "3.5", ".5", "1e3".
_NUMBER = re.compile(
    r"(?<![\w.])[-+\u2212]?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
)
# Events no agent acted in: the user's message, a person's decision, the turn's end.
_NOT_ACTS = (MessageEvent, ApprovalEvent, TokenEvent, DoneEvent)


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text``, in order."""
    return [
        float(m.group().replace(",", "").replace("\u2212", "-")) for m in _NUMBER.finditer(text)
    ]


def route_of(events: Iterable[Event]) -> list[str]:
    """The agents that acted in these events, in order, a run of one agent once."""
    route: list[str] = []
    for event in events:
        if isinstance(event, _NOT_ACTS) or event.agent is None:
            continue
        agents = [event.agent]
        if isinstance(event, AskEvent | HandoffEvent):
            agents.append(event.to_agent)
        for agent in agents:
            if not route or route[-1] != agent:
                route.append(agent)
    return route


def tools_of(events: Iterable[Event]) -> list[ToolCallRecord]:
    """The tool calls in these events, in order."""
    return [
        ToolCallRecord(name=e.name, arguments=e.arguments)
        for e in events
        if isinstance(e, ToolCallEvent)
    ]


def answer_text(answer: str | None, output: dict[str, Any] | None) -> str:
    """What answer checks read: the structured output's JSON, else the answer."""
    if output is not None:
        return json.dumps(output, ensure_ascii=False)
    return answer or ""


def check_turn(expect: Expect, turn: TurnRecord) -> list[str]:
    """Why ``turn`` does not meet ``expect`` (empty when it does)."""
    failures: list[str] = []
    if turn.status != expect.status:
        got = turn.status
        if turn.error_code or turn.error_message:
            got += f" ({turn.error_code or 'error'}: {_short(turn.error_message or '')})"
        failures.append(f"status: expected {expect.status}, got {got}")
    elif expect.error_code is not None and turn.error_code != expect.error_code:
        failures.append(f"error_code: expected {expect.error_code}, got {turn.error_code}")
    if expect.answer is not None:
        failures += check_answer(expect.answer, turn.answer, turn.output)
    if expect.route is not None and turn.route != expect.route:
        failures.append(f"route: expected {_path(expect.route)}, got {_path(turn.route)}")
    acted = [a for a in expect.route_excludes if a in turn.route]
    if acted:
        failures.append(f"route: {', '.join(acted)} acted (route {_path(turn.route)})")
    if expect.tools is not None:
        failures += _check_tools(expect.tools, turn.tools)
    called = sorted({t.name for t in turn.tools if t.name in expect.tools_excludes})
    if called:
        failures.append(f"tools: {', '.join(called)} called")
    return failures


def check_answer(
    expect: AnswerExpect, answer: str | None, output: dict[str, Any] | None
) -> list[str]:
    """Why the answer fails ``expect`` (empty when it does not)."""
    text = answer_text(answer, output)
    folded = text.casefold()
    shown = _short(text)
    failures = []
    if expect.equals is not None and folded.strip() != expect.equals.strip().casefold():
        failures.append(f"answer: expected {expect.equals!r}, got {shown!r}")
    missing = [s for s in expect.contains if s.casefold() not in folded]
    if missing:
        failures.append(f"answer: {_quoted(missing)} missing from {shown!r}")
    present = [s for s in expect.not_contains if s.casefold() in folded]
    if present:
        failures.append(f"answer: {_quoted(present)} present in {shown!r}")
    if expect.any_of and not any(s.casefold() in folded for s in expect.any_of):
        failures.append(f"answer: none of {_quoted(expect.any_of)} in {shown!r}")
    if expect.regex is not None and not re.search(expect.regex, text, re.IGNORECASE):
        failures.append(f"answer: no match for /{expect.regex}/ in {shown!r}")
    if expect.number is not None:
        target, tolerance = expect.number, expect.tolerance
        found = numbers_in(text)
        if not any(_close(n, target, tolerance) for n in found):
            written = ", ".join(f"{n:g}" for n in found) or "none"
            failures.append(f"answer: no number equals {target:g} (numbers: {written})")
    if expect.json_schema is not None:
        failures += _check_schema(expect.json_schema, answer, output)
    return failures


def _check_schema(
    schema: dict[str, Any], answer: str | None, output: dict[str, Any] | None
) -> list[str]:
    value: Any = output
    if value is None:
        try:
            value = json.loads(answer or "")
        except ValueError:
            return [f"answer: not JSON: {_short(answer or '')!r}"]
    from jsonschema.exceptions import best_match  # there: the validator needed it

    error = best_match(json_schema_validator(schema).iter_errors(value))
    if error is None:
        return []
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return [f"answer: breaks the JSON Schema at {where}: {error.message}"]


def _check_tools(expected: Sequence[ToolExpect], calls: Sequence[ToolCallRecord]) -> list[str]:
    if not expected:
        return [f"tools: expected none, got {_calls(calls)}"] if calls else []
    # Each expected call takes the earliest call after the previous one's that matches:
    # a subsequence match, which taking the earliest never misses.
    remaining = iter(calls)
    for want in expected:
        if not any(_matches(want, call) for call in remaining):
            wanted = _calls(
                [ToolCallRecord(name=w.name, arguments=w.arguments or {}) for w in expected]
            )
            return [f"tools: expected {wanted} in this order, got {_calls(calls)}"]
    return []


def _matches(want: ToolExpect, call: ToolCallRecord) -> bool:
    return want.name == call.name and (
        want.arguments is None or _subset(want.arguments, call.arguments)
    )


def _subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and _subset(v, got[k]) for k, v in want.items()
        )
    return bool(want == got)


def _close(value: float, target: float, tolerance: float | None) -> bool:
    if tolerance is not None:
        return abs(value - target) <= tolerance
    return math.isclose(value, target, rel_tol=DEFAULT_TOLERANCE, abs_tol=DEFAULT_TOLERANCE)


def _calls(calls: Sequence[ToolCallRecord]) -> str:
    return ", ".join(f"{c.name}({json.dumps(c.arguments)})" for c in calls) or "no call"


def _path(route: Sequence[str]) -> str:
    return " > ".join(route) or "(no agent)"


def _quoted(items: Sequence[str]) -> str:
    return ", ".join(repr(s) for s in items)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
